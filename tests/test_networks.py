"""The two networks: structure, parameter counts, shapes, batching, style mixing, seeding, and
parity with the authors' test path (official_reference.py, an independent functional
re-implementation of architecture.md)."""
import pytest
import torch

import official_reference as ref
from infusionnet.models import (ADAPTIVE_LAYERS, MIN_STYLE_SIZE, AesFA, InfusionNet, build_model,
                                validate_content_size, validate_style_size)
from infusionnet.models.encoders import Encoder, StyleEncoder
from infusionnet.runtime.errors import InfusionNetError

VARIANTS = ref.VARIANTS
STYLE = 96  # smallest InfusionNet style size; keeps the suite fast
CONTENT_SIZES = [(16, 16), (32, 48), (40, 24), (24, 64)]  # multiples of 8, square and not


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# Structure

def test_infusionnet_parameter_counts_per_part(seeded_models):
    model = seeded_models["infusionnet"]
    counts = {part: count(getattr(model, part)) for part in ref.PARTS}
    assert counts == {"netE": 88_448, "netS": 668_416, "netG": 4_690_531}
    assert counts == ref.parameter_counts("infusionnet")  # the reference tables agree with the paper


@pytest.mark.parametrize("variant", VARIANTS)
def test_state_dict_keys_and_shapes_are_the_official_ones(seeded_models, variant):
    model = seeded_models[variant]
    actual = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert actual == dict(ref.state_shapes(variant))


def test_infusionnet_structure(seeded_models):
    model = seeded_models["infusionnet"]
    assert isinstance(model, InfusionNet)
    assert type(model.netE) is Encoder and type(model.netS) is StyleEncoder
    assert not hasattr(model.netE, "OctConv1_3") and not hasattr(model.netE, "OctConv2_3")
    assert model.config == {"variant": "infusionnet", "nf": 64, "style_channels": [512, 512]}


def test_aesfa_structure(seeded_models):
    model = seeded_models["aesfa"]
    assert isinstance(model, AesFA)
    # netE and netS: the same Encoder class (with the two extra full 3x3 OctConvs), own weights
    assert type(model.netE) is type(model.netS) is Encoder
    for encoder in (model.netE, model.netS):
        assert encoder.layer_names == ["OctConv1_1", "OctConv1_2", "OctConv1_3", "OctConv2_1", "OctConv2_2",
                                       "OctConv2_3"]
        assert encoder.OctConv1_3.H2H.weight.shape == (64, 64, 3, 3) and hasattr(encoder.OctConv1_3, "L2H")
        assert encoder.OctConv2_3.H2H.weight.shape == (128, 128, 3, 3) and hasattr(encoder.OctConv2_3, "H2L")
    assert count(model.netE) == count(model.netS)
    assert not torch.equal(model.netE.conv.weight, model.netS.conv.weight)
    # the decoder takes 128-channel style codes
    assert model.netG.AdaOctConv1_1.kernelPredictor_h.spatial.in_channels == 128
    assert model.config["style_channels"] == [128, 128]
    assert {part: count(getattr(model, part)) for part in ref.PARTS} == ref.parameter_counts("aesfa")


def test_models_are_built_in_eval_mode(seeded_models):
    for model in seeded_models.values():
        assert not model.training and not any(m.training for m in model.modules())


# ---------------------------------------------------------------------------------------------
# Shapes

@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("size", CONTENT_SIZES)
def test_output_shapes(seeded_models, make_image, variant, size):
    model = seeded_models[variant]
    content = make_image(2, *size, seed=1)
    style = make_image(2, STYLE, STYLE, seed=2)
    with torch.no_grad():
        out = model(content, style)
        stylized, high, low = model(content, style, return_frequencies=True)
    assert out.shape == stylized.shape == high.shape == low.shape == (2, 3, *size)
    assert torch.equal(out, stylized)
    # conv4 is linear and the frequency ratio is [1, 1]: out = high + low - conv4.bias
    bias = model.netG.conv4.bias.view(1, 3, 1, 1)
    torch.testing.assert_close(stylized, high + low - bias, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("variant,channels", [("infusionnet", 512), ("aesfa", 128)])
@pytest.mark.parametrize("style_size", [(96, 96), (128, 128), (96, 160)])
def test_style_code_shapes(seeded_models, make_image, variant, channels, style_size):
    model = seeded_models[variant]
    with torch.no_grad():
        high, low = model.encode_style(make_image(2, *style_size, seed=3))
        hf, lf = model.encode_content(make_image(2, 32, 48, seed=4))
    assert high.shape == low.shape == (2, channels, 3, 3)
    assert hf.shape == (2, 128, 8, 12) and lf.shape == (2, 128, 4, 6)


@pytest.mark.parametrize("variant", VARIANTS)
def test_predict_kernels_names_and_shapes(seeded_models, make_image, variant):
    model = seeded_models[variant]
    with torch.no_grad():
        kernels = model.predict_kernels(model.encode_style(make_image(2, STYLE, STYLE, seed=5)))
    names = [f"{layer}.{half}.{part}" for layer in ADAPTIVE_LAYERS for half in "hl"
             for part in ("spatial", "pointwise", "bias")]
    assert list(kernels) == names and len(names) == 18
    # (channels per half, channels per group) of AdaOctConv1_1 / 2_1 / 3_1 (group_div 1, 2, 4)
    for layer, (ch, per_group) in zip(ADAPTIVE_LAYERS, [(128, 1), (64, 2), (32, 4)]):
        for half in "hl":
            assert kernels[f"{layer}.{half}.spatial"].shape == (2, ch, per_group, 3, 3)
            assert kernels[f"{layer}.{half}.pointwise"].shape == (2, ch, per_group, 1, 1)
            assert kernels[f"{layer}.{half}.bias"].shape == (2, ch)


# ---------------------------------------------------------------------------------------------
# Batching and style mixing

@pytest.mark.parametrize("variant", VARIANTS)
def test_each_sample_with_its_own_style_equals_running_it_alone(seeded_models, make_image, variant):
    model = seeded_models[variant]
    content = make_image(3, 32, 48, seed=6)
    style = make_image(3, STYLE, STYLE, seed=7)
    with torch.no_grad():
        together = model(content, style, return_frequencies=True)
        for i in range(3):
            alone = model(content[i:i + 1], style[i:i + 1], return_frequencies=True)
            for a, b in zip(together, alone):
                assert ref.relative_error(a[i:i + 1], b) < 1e-5
    assert not torch.allclose(together[0][0], together[0][1])


@pytest.mark.parametrize("variant", VARIANTS)
def test_single_style_is_broadcast_over_the_content_batch(seeded_models, make_image, variant):
    model = seeded_models[variant]
    content = make_image(3, 32, 48, seed=8)
    style = make_image(1, STYLE, STYLE, seed=9)
    with torch.no_grad():
        broadcast = model(content, style)
        repeated = model(content, style.expand(3, -1, -1, -1))
    assert broadcast.shape == (3, 3, 32, 48)
    assert ref.relative_error(broadcast, repeated) < 1e-5


def test_mismatched_batches_raise(seeded_models, make_image):
    model = seeded_models["infusionnet"]
    with pytest.raises(ValueError, match="style batch"):
        with torch.no_grad():
            model(make_image(3, 32, 48), make_image(2, STYLE, STYLE))


@pytest.mark.parametrize("variant", VARIANTS)
def test_style_mixing_combines_high_code_of_one_style_with_low_code_of_another(
        seeded_models, make_image, variant):
    model = seeded_models[variant]
    content = make_image(1, 32, 48, seed=10)
    style_a, style_b = make_image(1, STYLE, STYLE, seed=11), make_image(1, STYLE, STYLE, seed=12)
    with torch.no_grad():
        mixed = model(content, style_a, style_low=style_b, return_frequencies=True)
        code = (model.encode_style(style_a)[0], model.encode_style(style_b)[1])
        manual = model.decode(model.encode_content(content), model.predict_kernels(code))
        plain = model(content, style_a)
    for a, b in zip(mixed, manual):
        assert torch.equal(a, b)
    assert not torch.allclose(mixed[0], plain)


# ---------------------------------------------------------------------------------------------
# Seeding

@pytest.mark.parametrize("variant", VARIANTS)
def test_build_model_seed_is_deterministic_and_leaves_global_rng_alone(variant):
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first, second = build_model(variant, seed=7), build_model(variant, seed=7)
    assert torch.equal(torch.get_rng_state(), state)
    for (key, a), (_, b) in zip(first.state_dict().items(), second.state_dict().items()):
        assert torch.equal(a, b), key
    other = build_model(variant, seed=8)
    assert not torch.equal(first.netG.conv4.weight, other.netG.conv4.weight)


def test_build_model_rejects_unknown_variant():
    with pytest.raises(ValueError, match="unknown variant"):
        build_model("stylegan")


def test_use_reference_adaconv_switches_every_adaconv_and_keeps_outputs(make_image):
    model = build_model("infusionnet", seed=3)  # own copy: the flag is switched in place
    content, style = make_image(2, 32, 48, seed=13), make_image(2, STYLE, STYLE, seed=14)
    with torch.no_grad():
        batched = model(content, style)
        assert model.use_reference_adaconv(True) is model
        flags = [m.loop_over_batch for m in model.modules() if hasattr(m, "loop_over_batch")]
        looped = model(content, style)
    assert flags == [True] * 6
    assert ref.relative_error(batched, looped) < 1e-5
    model.use_reference_adaconv(False)
    assert not any(getattr(m, "loop_over_batch", False) for m in model.modules())


# ---------------------------------------------------------------------------------------------
# Size rules

@pytest.mark.parametrize("variant", VARIANTS)
def test_accepted_style_sizes_run_and_rejected_multiples_fail(seeded_models, make_image, variant):
    model = seeded_models[variant]
    smallest = MIN_STYLE_SIZE[variant]
    validate_style_size(variant, smallest)
    with torch.no_grad():
        assert model.encode_style(make_image(1, smallest, smallest))[0].shape[-2:] == (3, 3)
    with pytest.raises(InfusionNetError):
        validate_style_size(variant, smallest - 8)
    if variant == "infusionnet":
        # 112 is a multiple of 8 but not of 32: the octave halves stop lining up in netS
        with pytest.raises(InfusionNetError):
            validate_style_size(variant, 112)
        with pytest.raises(RuntimeError), torch.no_grad():
            model.encode_style(make_image(1, 112, 112))


def test_content_size_rules():
    validate_content_size(16, 24)
    for bad in [(12, 16), (16, 20), (8, 8)]:
        with pytest.raises(InfusionNetError):
            validate_content_size(*bad)


# ---------------------------------------------------------------------------------------------
# Parity with the authors' test path

@pytest.fixture(scope="module")
def official_models(official_states):
    """variant -> the project model holding the synthetic official weights (strict load)."""
    models = {}
    for variant, state in official_states.items():
        model = build_model(variant)
        model.load_state_dict(state, strict=True)
        models[variant] = model
    return models


PARITY = 1e-5  # max |project - reference| relative to the reference output's magnitude


def assert_parity(outputs, expected):
    for name, actual, wanted in zip(("stylized", "high", "low"), outputs, expected):
        assert actual.shape == wanted.shape, name
        error = ref.relative_error(actual, wanted)
        assert error < PARITY, f"{name}: relative error {error:.3g}"


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("reference_adaconv", [False, True])
def test_parity_with_official_test_path(official_models, official_states, make_image, variant, reference_adaconv):
    model = official_models[variant]
    content = make_image(2, 32, 48, seed=20)
    style = make_image(2, 96, 128, seed=21)  # non-square style: uneven adaptive pooling windows
    model.use_reference_adaconv(reference_adaconv)
    try:
        with torch.no_grad():
            outputs = model(content, style, return_frequencies=True)
    finally:
        model.use_reference_adaconv(False)
    expected = ref.stylize(official_states[variant], variant, content, style)
    assert_parity(outputs, expected)
    assert expected[0].abs().max() > 1  # a real signal, not a collapsed output


@pytest.mark.parametrize("variant", VARIANTS)
def test_parity_of_stages(official_models, official_states, make_image, variant):
    model, state = official_models[variant], official_states[variant]
    content, style = make_image(1, 40, 24, seed=22), make_image(1, 128, 128, seed=23)
    with torch.no_grad():
        features, code = model.encode_content(content), model.encode_style(style)
        kernels = model.predict_kernels(code)
    for a, b in zip(features, ref.content_features(state, variant, content)):
        assert ref.relative_error(a, b) < PARITY
    for a, b in zip(code, ref.style_code(state, variant, style)):
        assert ref.relative_error(a, b) < PARITY
    expected_kernels = ref.predict_kernels(state, ref.style_code(state, variant, style))
    assert list(kernels) == list(expected_kernels)
    for name in kernels:
        assert ref.relative_error(kernels[name], expected_kernels[name]) < PARITY, name


@pytest.mark.parametrize("variant", VARIANTS)
def test_parity_with_style_mixing_and_broadcast(official_models, official_states, make_image, variant):
    model, state = official_models[variant], official_states[variant]
    content = make_image(2, 24, 40, seed=24)
    style_a, style_b = make_image(1, STYLE, STYLE, seed=25), make_image(1, STYLE, STYLE, seed=26)
    with torch.no_grad():
        outputs = model(content, style_a, style_low=style_b, return_frequencies=True)
    # the authors' code needs one style per content image: repeat the single style explicitly
    expected = ref.stylize(state, variant, content, style_a.expand(2, -1, -1, -1),
                           style_low=style_b.expand(2, -1, -1, -1))
    assert_parity(outputs, expected)


def test_parity_check_is_sensitive(official_models, official_states, make_image):
    """Guard against a vacuous parity test: one changed weight must show up clearly."""
    state = dict(official_states["infusionnet"])
    state["netG.AdaOctConv3_1.kernelPredictor_l.bias.1.bias"] = state[
        "netG.AdaOctConv3_1.kernelPredictor_l.bias.1.bias"] + 0.05
    content, style = make_image(1, 32, 48, seed=27), make_image(1, STYLE, STYLE, seed=28)
    with torch.no_grad():
        outputs = official_models["infusionnet"](content, style, return_frequencies=True)
    changed = ref.stylize(state, "infusionnet", content, style)
    assert ref.relative_error(outputs[0], changed[0]) > 100 * PARITY
