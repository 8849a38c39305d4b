"""Unit tests of the building blocks (architecture.md, "Building blocks").

Each block is checked for its official state-dict names and shapes, its grouping and padding
mode, its output shapes, and its output against the functional re-implementation in
official_reference.py (written from architecture.md, not from models/)."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import official_reference as ref
from infusionnet.models.blocks import (AdaConv2d, AdaOctConv, KernelPredictor, OctConv, OctConvAfterUpsample,
                                       adaconv_batched, adaconv_looped, fold_pointwise, split_channels)
from infusionnet.models.encoders import Encoder, StyleEncoder

Oct = ref.Oct


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def prefixed(module: nn.Module, prefix: str) -> dict:
    """A module's state dict with keys as the reference expects them (``prefix.key``)."""
    return {f"{prefix}.{key}": value for key, value in module.state_dict().items()}


def shapes(module: nn.Module) -> dict:
    return {key: tuple(value.shape) for key, value in module.state_dict().items()}


def assert_matches(actual, expected, rel=1e-6):
    assert actual.shape == expected.shape
    error = ref.relative_error(actual, expected)
    assert error <= rel, f"relative error {error:.3g} > {rel:g}"


def test_split_channels_is_int_of_half_then_remainder():
    assert split_channels(64) == (32, 32)
    assert split_channels(3) == (1, 2)  # int(1.5) high, the rest low (official hf/lf split)


# ---------------------------------------------------------------------------------------------
# OctConv

# (spec, state-dict shapes exactly as the authors' checkpoints hold them, output shapes for the
# input built by octave_input below)
OCTCONV_CASES = {
    "first": (Oct("x", 64, 64, 3, 2, 1, 1, "first"),
              {"convh.weight": (32, 64, 3, 3), "convl.weight": (32, 64, 3, 3)},
              [(2, 32, 8, 12), (2, 32, 4, 6)]),
    "normal-1x1": (Oct("x", 64, 128, 1, 1, 0, 1, "normal"),
                   {"H2H.weight": (64, 32, 1, 1), "L2L.weight": (64, 32, 1, 1),
                    "L2H.weight": (64, 32, 1, 1), "H2L.weight": (64, 32, 1, 1)},
                   [(2, 64, 8, 12), (2, 64, 4, 6)]),
    "normal-3x3-full": (Oct("x", 128, 128, 3, 1, 1, 1, "normal"),
                        {"H2H.weight": (64, 64, 3, 3), "L2L.weight": (64, 64, 3, 3),
                         "L2H.weight": (64, 64, 3, 3), "H2L.weight": (64, 64, 3, 3)},
                        [(2, 64, 8, 12), (2, 64, 4, 6)]),
    # groups=8 (not depthwise): H2H/L2L get ceil(8 - 0.5*8) = ceil(0.5*8) = 4, cross paths 8.
    "normal-grouped": (Oct("x", 64, 64, 3, 1, 1, 8, "normal"),
                       {"H2H.weight": (32, 8, 3, 3), "L2L.weight": (32, 8, 3, 3),
                        "L2H.weight": (32, 4, 3, 3), "H2L.weight": (32, 4, 3, 3)},
                       [(2, 32, 8, 12), (2, 32, 4, 6)]),
    # depthwise (groups == in): no L2H/H2L at all; H2H/L2L get groups 64 each.
    "depthwise-stride2": (Oct("x", 128, 128, 3, 2, 1, 128, "normal"),
                          {"H2H.weight": (64, 1, 3, 3), "L2L.weight": (64, 1, 3, 3)},
                          [(2, 64, 4, 6), (2, 64, 2, 3)]),
    "depthwise-adaptive": (Oct("x", 64, 64, 3, 1, 1, 64, "normal"),
                           {"H2H.weight": (32, 1, 3, 3), "L2L.weight": (32, 1, 3, 3)},
                           [(2, 32, 8, 12), (2, 32, 4, 6)]),
    "last": (Oct("x", 64, 32, 1, 1, 0, 1, "last"),
             {"convh.weight": (32, 32, 1, 1), "convl.weight": (32, 32, 1, 1)},
             [(2, 32, 8, 12)] * 3),
}


def build_octconv(spec: Oct) -> OctConv:
    torch.manual_seed(0)
    return OctConv(spec.cin, spec.cout, spec.k, spec.stride, spec.padding, groups=spec.groups,
                   kind=spec.kind).eval()


def octave_input(spec: Oct, seed=1):
    if spec.kind == "first":
        return randn(2, spec.cin, 16, 24, seed=seed)
    high, low = split_channels(spec.cin)
    return randn(2, high, 8, 12, seed=seed), randn(2, low, 4, 6, seed=seed + 1)


@pytest.mark.parametrize("case", list(OCTCONV_CASES))
def test_octconv_state_dict_names_and_shapes(case):
    spec, expected, _ = OCTCONV_CASES[case]
    assert shapes(build_octconv(spec)) == expected


@pytest.mark.parametrize("case", list(OCTCONV_CASES))
def test_octconv_convs_are_bias_free_reflect_and_grouped_as_documented(case):
    spec, _, _ = OCTCONV_CASES[case]
    module = build_octconv(spec)
    documented = {name: groups for name, _, _, groups in ref.octconv_parts(spec)}
    convs = dict(module.named_children())
    assert set(convs) == set(documented)
    for name, conv in convs.items():
        assert isinstance(conv, nn.Conv2d)
        assert conv.groups == documented[name], name
        assert conv.bias is None, name
        assert conv.padding_mode == "reflect", name
        assert conv.stride == (spec.stride,) * 2 and conv.padding == (spec.padding,) * 2, name


def test_octconv_grouping_uses_ceil_of_the_documented_expressions():
    # H2H: ceil(groups - 0.5*groups); L2L: ceil(0.5*groups); cross paths: groups.
    module = OctConv(64, 64, 3, 1, 1, groups=8)
    assert (module.H2H.groups, module.L2L.groups, module.L2H.groups, module.H2L.groups) == (4, 4, 8, 8)
    depthwise = OctConv(512, 512, 3, 2, 1, groups=512)
    assert (depthwise.H2H.groups, depthwise.L2L.groups) == (256, 256)
    assert not hasattr(depthwise, "L2H") and not hasattr(depthwise, "H2L")


@pytest.mark.parametrize("case", list(OCTCONV_CASES))
def test_octconv_output_shapes_and_values_match_reference(case):
    spec, _, out_shapes = OCTCONV_CASES[case]
    module = build_octconv(spec)
    x = octave_input(spec)
    with torch.no_grad():
        out = module(x)
    expected = ref.octconv(prefixed(module, "m"), "m", spec, x)
    assert [tuple(t.shape) for t in out] == out_shapes
    for actual, wanted in zip(out, expected):
        assert_matches(actual, wanted)


def test_octconv_last_returns_sum_of_its_two_frequency_outputs():
    module = build_octconv(OCTCONV_CASES["last"][0])
    with torch.no_grad():
        out, out_h, out_l = module(octave_input(OCTCONV_CASES["last"][0]))
    torch.testing.assert_close(out, out_h + out_l)  # freq_ratio = [1, 1]
    assert not torch.allclose(out_h, out_l)


def test_octconv_depthwise_has_no_cross_frequency_path():
    spec = OCTCONV_CASES["depthwise-adaptive"][0]
    module = build_octconv(spec)
    hf, lf = octave_input(spec)
    with torch.no_grad():
        out_h, out_l = module((hf, lf))
        out_h2, out_l2 = module((hf, lf * 5 + 1))  # changing the low half must not reach the high one
    assert torch.equal(out_h, out_h2)
    assert not torch.allclose(out_l, out_l2)


def test_octconv_rejects_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        OctConv(8, 8, 1, kind="middle")


# ---------------------------------------------------------------------------------------------
# Padding modes across whole networks

def test_every_spatial_conv_pads_by_reflection_except_encoder_stem(seeded_models):
    checked = 0
    for model in seeded_models.values():
        encoders = {name for name, m in model.named_modules() if isinstance(m, Encoder)}
        for name, module in model.named_modules():
            if not isinstance(module, nn.Conv2d):
                continue
            parent = name.rsplit(".", 1)[0]
            if parent in encoders and name.endswith(".conv"):
                # The 7x7 stem is a plain Conv2d(3, 64, 7, padding=3): zero padding, with bias.
                assert module.padding_mode == "zeros" and module.padding == (3, 3), name
                assert module.kernel_size == (7, 7) and module.bias is not None, name
            elif module.kernel_size != (1, 1):
                assert module.padding_mode == "reflect", name
                checked += 1
    assert checked > 60  # the walk really visited the octave, AdaConv and predictor convs


def test_kernel_predictor_spatial_and_adaconv_static_conv_pad_by_reflection():
    predictor = KernelPredictor(16, 16, 8, 32)
    assert predictor.spatial.padding_mode == "reflect" and predictor.spatial.padding == (1, 1)
    adaconv = AdaConv2d(16, 16, 8)
    assert adaconv.conv.padding_mode == "reflect" and adaconv.conv.bias is not None
    after = OctConvAfterUpsample(64, 64)
    assert after.conv_h.padding_mode == after.conv_l.padding_mode == "reflect"
    assert shapes(after) == {"conv_h.weight": (32, 32, 3, 3), "conv_h.bias": (32,),
                             "conv_l.weight": (32, 32, 3, 3), "conv_l.bias": (32,)}


def test_style_encoder_tail_convs():
    net = StyleEncoder()
    for name in ("OctConv3_1_high", "OctConv3_1_low"):
        conv = getattr(net, name)
        assert conv.groups == 256 and conv.padding_mode == "reflect" and conv.bias is not None
    assert net.OctConv3_1_high.stride == (2, 2) and net.OctConv3_1_low.stride == (1, 1)
    assert net.OctConv3_2_high.weight.shape == net.OctConv3_2_low.weight.shape == (512, 256, 1, 1)


# ---------------------------------------------------------------------------------------------
# KernelPredictor

@pytest.mark.parametrize("channels,group_div,style_channels", [(128, 1, 512), (64, 2, 512), (32, 4, 128)])
def test_kernel_predictor_shapes_names_and_values(channels, group_div, style_channels):
    n_groups = channels // group_div
    torch.manual_seed(0)
    predictor = KernelPredictor(channels, channels, n_groups, style_channels).eval()
    per_group = channels // n_groups
    assert shapes(predictor) == {
        "spatial.weight": (channels * per_group, style_channels, 3, 3), "spatial.bias": (channels * per_group,),
        "pointwise.1.weight": (channels * per_group, style_channels, 1, 1),
        "pointwise.1.bias": (channels * per_group,),
        "bias.1.weight": (channels, style_channels, 1, 1), "bias.1.bias": (channels,)}
    code = randn(2, style_channels, 3, 3, seed=3)
    with torch.no_grad():
        spatial, pointwise, bias = predictor(code)
    assert spatial.shape == (2, channels, per_group, 3, 3)
    assert pointwise.shape == (2, channels, per_group, 1, 1)
    assert bias.shape == (2, channels)
    expected = ref.kernel_predictor(prefixed(predictor, "k"), "k", code, channels, channels, n_groups)
    for actual, wanted in zip((spatial, pointwise, bias), expected):
        assert_matches(actual, wanted)


def test_kernel_predictor_keeps_samples_apart():
    predictor = KernelPredictor(16, 16, 8, 32).eval()
    code = randn(2, 32, 3, 3, seed=4)
    changed = code.clone()
    changed[1] += 3
    with torch.no_grad():
        first, second = predictor(code), predictor(changed)
    for a, b in zip(first, second):
        assert torch.equal(a[0], b[0]) and not torch.allclose(a[1], b[1])


# ---------------------------------------------------------------------------------------------
# AdaConv: batched (batch folded into groups) vs the authors' per-sample loop

def random_kernels(batch, channels, n_groups, seed):
    per_group = channels // n_groups
    spatial = randn(batch, channels, per_group, 3, 3, seed=seed) * 0.3
    pointwise = randn(batch, channels, per_group, 1, 1, seed=seed + 1) * 0.5
    bias = randn(batch, channels, seed=seed + 2)
    return spatial, pointwise, bias


def scaled_error(actual, expected):
    """max abs difference relative to the output's magnitude (at least 1)."""
    return float((actual - expected).abs().max() / max(1.0, float(expected.abs().max())))


@pytest.mark.parametrize("batch", [1, 2, 3])
@pytest.mark.parametrize("n_groups", [16, 8, 4])
def test_adaconv_batched_equals_looped(batch, n_groups):
    x = randn(batch, 16, 8, 12, seed=5)
    kernels = random_kernels(batch, 16, n_groups, seed=6)
    if batch > 1:
        assert not torch.allclose(kernels[0][0], kernels[0][1])  # every sample has its own kernels
    looped = adaconv_looped(x, *kernels, n_groups)
    batched = adaconv_batched(x, *kernels, n_groups)
    assert batched.shape == looped.shape == (batch, 16, 8, 12)
    assert scaled_error(batched, looped) < 1e-6


@pytest.mark.parametrize("n_groups", [16, 4, 1])
def test_folded_kernel_equals_spatial_then_pointwise(n_groups):
    """One grouped conv with the folded kernel does what the two grouped convs do."""
    x = F.pad(randn(2, 16, 8, 12, seed=30), (1, 1, 1, 1), mode="reflect").reshape(1, 32, 10, 14)
    spatial, pointwise, bias = random_kernels(2, 16, n_groups, seed=31)
    groups, per_group = 2 * n_groups, 16 // n_groups
    two = F.conv2d(F.conv2d(x, spatial.reshape(32, per_group, 3, 3), groups=groups),
                   pointwise.reshape(32, per_group, 1, 1), bias.reshape(32), groups=groups)
    folded = fold_pointwise(spatial, pointwise, groups, per_group, per_group, 3)
    assert folded.shape == (32, per_group, 3, 3)
    one = F.conv2d(x, folded, bias.reshape(32), groups=groups)
    assert scaled_error(one, two) < 1e-6
    assert not torch.allclose(folded, spatial.reshape(32, per_group, 3, 3))  # the pointwise part is in it


@pytest.mark.parametrize("batch", [2, 3])
def test_adaconv_batched_does_not_mix_samples(batch):
    x = randn(batch, 16, 8, 12, seed=7)
    kernels = random_kernels(batch, 16, 4, seed=8)
    before = adaconv_batched(x, *kernels, 4)
    changed = [k.clone() for k in kernels]
    for tensor in changed:
        tensor[1] = tensor[1] * -2 + 0.5  # new kernels for sample 1 only
    after = adaconv_batched(x, *changed, 4)
    assert torch.equal(before[0], after[0])
    assert not torch.allclose(before[1], after[1])
    if batch == 3:
        assert torch.equal(before[2], after[2])
    # each sample equals the same sample run alone
    for i in range(batch):
        alone = adaconv_batched(x[i:i + 1], *(k[i:i + 1] for k in kernels), 4)
        assert scaled_error(before[i:i + 1], alone) < 1e-6


@pytest.mark.parametrize("batch", [1, 2, 3])
def test_adaconv_module_flag_and_reference(batch):
    torch.manual_seed(0)
    module = AdaConv2d(16, 16, 8).eval()
    assert module.loop_over_batch is False  # batched is the default
    x = randn(batch, 16, 8, 12, seed=9) * 4 + 2
    kernels = random_kernels(batch, 16, 8, seed=10)
    with torch.no_grad():
        batched = module(x, *kernels)
        module.loop_over_batch = True
        looped = module(x, *kernels)
    expected = ref.adaconv(prefixed(module, "a"), "a", x, *kernels, 8)
    assert scaled_error(batched, looped) < 1e-6
    assert scaled_error(batched, expected) < 1e-6


def test_adaconv_instance_normalizes_its_input():
    module = AdaConv2d(16, 16, 8).eval()
    x = randn(2, 16, 8, 12, seed=11)
    kernels = random_kernels(2, 16, 8, seed=12)
    # a positive per-sample, per-channel affine change of the input is normalized away
    scale = randn(2, 16, 1, 1, seed=13).abs() + 0.5
    shift = randn(2, 16, 1, 1, seed=14)
    with torch.no_grad():
        plain, moved = module(x, *kernels), module(x * scale + shift, *kernels)
    assert scaled_error(moved, plain) < 1e-4


# ---------------------------------------------------------------------------------------------
# AdaOctConv

def test_ada_octconv_names_kernels_and_reference():
    torch.manual_seed(0)
    block = AdaOctConv(128, 128, group_div=2, style_channels=(512, 512)).eval()
    keys = set(block.state_dict())
    for half in "hl":
        assert {f"kernelPredictor_{half}.spatial.weight", f"kernelPredictor_{half}.pointwise.1.bias",
                f"kernelPredictor_{half}.bias.1.weight", f"AdaConv_{half}.conv.weight"} <= keys
    assert {k for k in keys if k.startswith("OctConv.")} == {"OctConv.H2H.weight", "OctConv.L2L.weight"}
    assert block.OctConv.H2H.groups == 64 and block.AdaConv_h.n_groups == 32

    code = (randn(2, 512, 3, 3, seed=15), randn(2, 512, 3, 3, seed=16))
    content = (randn(2, 64, 8, 12, seed=17), randn(2, 64, 4, 6, seed=18))
    with torch.no_grad():
        kernels = block.predict_kernels(code)
        out = block(content, code)
    assert list(kernels) == ["h.spatial", "h.pointwise", "h.bias", "l.spatial", "l.pointwise", "l.bias"]
    assert kernels["h.spatial"].shape == (2, 64, 2, 3, 3)
    assert kernels["l.pointwise"].shape == (2, 64, 2, 1, 1)
    assert kernels["l.bias"].shape == (2, 64)

    sd = prefixed(block, "netG.X")
    ref_kernels = {}
    for half, style in zip("hl", code):
        parts = ref.kernel_predictor(sd, f"netG.X.kernelPredictor_{half}", style, 64, 64, 32)
        ref_kernels.update({f"X.{half}.{p}": t for p, t in zip(("spatial", "pointwise", "bias"), parts)})
    expected = ref.ada_octconv(sd, "X", 128, 2, content, ref_kernels)
    for actual, wanted in zip(out, expected):
        assert actual.shape == wanted.shape
        assert_matches(actual, wanted)
    assert out[0].min() < 0  # LeakyReLU, not ReLU: negative values survive, scaled by 0.01
