"""Training losses against direct reference computations on small tensors."""
import itertools
import math

import numpy as np
import pytest
import torch
from torch import nn

from infusionnet.models import build_model
from infusionnet.models.train.losses import (CONTENT_TAP, DEFAULT_LOSS_WEIGHTS, LossWeights, StyleTransferLoss,
                                             VGGError, colour_projections, efdm_distances, efdm_loss,
                                             effective_negatives, encoder_taps, load_vgg, nearest_negatives,
                                             output_side, random_colour_directions, random_vgg, sorted_channels,
                                             style_contrastive_loss, style_side, vgg_layers)
from infusionnet.models.train.trainer import TrainingNetwork


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: on a shared 2-core machine, two OpenMP threads spin-wait for each
    other and these small convolutions cost several times more CPU."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# ------------------------------------------------------------------------------------- VGG

def adain_state(seed=0, full=True):
    """A state dict in the layout of AdaIN's vgg_normalised.pth (keys "0.weight" ...), with the
    layers past relu4_1 that the real file has when ``full``."""
    torch.manual_seed(seed)
    state = nn.Sequential(*vgg_layers()).state_dict()
    if full:  # the real file continues to relu5_4 (index 52)
        state["31.weight"] = torch.zeros(512, 512, 3, 3)
        state["31.bias"] = torch.zeros(512)
        state["51.weight"] = torch.zeros(512, 512, 3, 3)
    return state


def test_vgg_layout_matches_adain_indices():
    layers = vgg_layers()
    assert len(layers) == 31  # input .. relu4_1
    convs = {i: (l.in_channels, l.out_channels, l.kernel_size) for i, l in enumerate(layers)
             if isinstance(l, nn.Conv2d)}
    assert convs == {0: (3, 3, (1, 1)), 2: (3, 64, (3, 3)), 5: (64, 64, (3, 3)), 9: (64, 128, (3, 3)),
                     12: (128, 128, (3, 3)), 16: (128, 256, (3, 3)), 19: (256, 256, (3, 3)),
                     22: (256, 256, (3, 3)), 25: (256, 256, (3, 3)), 29: (256, 512, (3, 3))}
    assert [i for i, l in enumerate(layers) if isinstance(l, nn.MaxPool2d)] == [7, 14, 27]
    assert all(layers[i].ceil_mode for i in (7, 14, 27))
    assert all(isinstance(layers[i - 1], nn.ReflectionPad2d) for i in convs if i)
    assert all(isinstance(layers[i + 1], nn.ReLU) for i in convs if i)


def test_load_vgg_reads_adain_file_and_checks_it(tmp_path):
    state = adain_state()
    path = tmp_path / "vgg_normalised.pth"
    torch.save(state, path)
    vgg = load_vgg(path)
    assert torch.equal(vgg.layers[29].weight, state["29.weight"])
    assert not any(p.requires_grad for p in vgg.parameters())

    broken = dict(state)
    del broken["16.bias"]
    torch.save(broken, tmp_path / "missing.pth")
    with pytest.raises(VGGError, match=r"missing\.pth.*missing keys 16\.bias"):
        load_vgg(tmp_path / "missing.pth")

    wrong = dict(state, **{"2.weight": torch.zeros(64, 3, 5, 5)})
    torch.save(wrong, tmp_path / "shape.pth")
    with pytest.raises(VGGError, match=r"2\.weight \(expected \(64, 3, 3, 3\), found \(64, 3, 5, 5\)\)"):
        load_vgg(tmp_path / "shape.pth")

    torch.save(dict(state, **{"decoder.weight": torch.zeros(1)}), tmp_path / "extra.pth")
    with pytest.raises(VGGError, match="unexpected keys decoder.weight"):
        load_vgg(tmp_path / "extra.pth")

    with pytest.raises(VGGError, match="not found"):
        load_vgg(tmp_path / "absent.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(VGGError, match="junk.pth: cannot read"):
        load_vgg(tmp_path / "junk.pth")


class _Payload:
    pass


def test_load_vgg_refuses_pickled_code(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"0.weight": _Payload()}, path)
    with pytest.raises(VGGError, match="evil.pth: cannot read"):
        load_vgg(path)


def test_vgg_taps_are_the_released_pre_relu_convs(make_image):
    conv, relu = random_vgg(3, "conv"), random_vgg(3, "relu")
    images = make_image(2, 24, 24)
    conv_feats, relu_feats = conv(images), relu(images)
    assert [f.shape[1] for f in conv_feats] == [64, 128, 256, 512]
    assert conv_feats[0].shape[-1] == 24 and conv_feats[3].shape[-1] == 3
    for c, r in zip(conv_feats, relu_feats):
        assert torch.equal(torch.relu(c), r)
    assert (conv_feats[1] < 0).any()  # pre-activation: negative values survive
    # The VGG sees [0, 1] RGB: the ImageNet normalization is undone first.
    first = conv.layers[0](images * conv.std + conv.mean)
    assert torch.allclose(conv.layers[2](conv.layers[1](first)), conv_feats[0], atol=1e-5)
    conv.train()
    assert not conv.training


# ------------------------------------------------------------------------------------- EFDM

def explicit_efdm(output, target):
    """EFDM by explicit sorting loops: k-th smallest of the output against the k-th smallest of
    the target, channel by channel; mean over everything."""
    out = output.detach().double().flatten(2).tolist()
    tgt = target.detach().double().flatten(2).tolist()
    total, count = 0.0, 0
    for b in range(len(out)):
        for c in range(len(out[b])):
            for o, t in zip(sorted(out[b][c]), sorted(tgt[b][c])):
                total += (o - t) ** 2
                count += 1
    return total / count


def test_efdm_loss_matches_explicit_sorting():
    generator = torch.Generator().manual_seed(1)
    output = torch.randn(2, 3, 4, 5, generator=generator, requires_grad=True)
    target = torch.randn(2, 3, 4, 5, generator=generator) * 2 + 1
    loss = efdm_loss(output, target)
    assert loss.item() == pytest.approx(explicit_efdm(output, target), rel=1e-6)

    # Gradient: 2 (o - t_rank(o)) / n, the target value matched to each output value by rank.
    loss.backward()
    expected = torch.zeros_like(output)
    n = output.numel()
    for b, c in itertools.product(range(2), range(3)):
        o = output.detach()[b, c].flatten()
        t = sorted(target[b, c].flatten().tolist())
        for rank, position in enumerate(o.argsort().tolist()):
            expected[b, c].view(-1)[position] = 2 * (o[position] - t[rank]) / n
    assert torch.allclose(output.grad, expected, atol=1e-7)


def test_efdm_gradient_also_reaches_the_target():
    generator = torch.Generator().manual_seed(2)
    output = torch.randn(1, 2, 3, 3, generator=generator, requires_grad=True)
    target = torch.randn(1, 2, 3, 3, generator=generator, requires_grad=True)
    efdm_loss(output, target).backward()
    # The loss is symmetric in its arguments, so the gradients are too.
    assert torch.allclose(target.grad.sum(), -output.grad.sum(), atol=1e-6)
    assert target.grad.abs().sum() > 0


def test_efdm_resamples_style_of_another_size():
    generator = torch.Generator().manual_seed(3)
    output = torch.randn(1, 2, 3, 3, generator=generator)   # 9 values per channel
    style = torch.randn(1, 2, 4, 4, generator=generator)    # 16 values per channel
    resampled = sorted_channels(style, 9)
    for c in range(2):
        quantiles = np.sort(style[0, c].flatten().numpy())
        expected = np.interp(np.linspace(0, 15, 9), np.arange(16), quantiles)
        assert np.allclose(resampled[0, c].numpy(), expected, atol=1e-6)
    out_sorted = output.flatten(2).sort(-1).values
    assert efdm_loss(output, style).item() == pytest.approx(
        ((out_sorted - resampled) ** 2).mean().item(), rel=1e-6)


def test_efdm_distances_are_per_sample():
    generator = torch.Generator().manual_seed(4)
    a, b = torch.randn(3, 2, 4, 4, generator=generator), torch.randn(3, 2, 4, 4, generator=generator)
    per_sample = efdm_distances(a, b)
    assert per_sample.shape == (3,)
    for i in range(3):
        assert per_sample[i].item() == pytest.approx(explicit_efdm(a[i:i + 1], b[i:i + 1]), rel=1e-6)


# ------------------------------------------------------------------------------------- negatives

def constant_maps(values, channels=2, size=3):
    """(B, C, size, size) maps, sample i filled with values[i]: EFDM distance = squared difference."""
    return torch.tensor(values, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, channels, size, size).clone()


def test_nearest_negatives_are_the_k_nearest_other_styles():
    output_values = [0.0, 10.0, 4.0, 7.0, 1.0]
    style_values = [0.5, 9.0, 3.0, 8.0, 2.0]
    # Two VGG "layers": distances add up across them.
    outputs = [constant_maps(output_values), constant_maps(output_values, channels=3, size=2)]
    styles = [constant_maps(style_values), constant_maps(style_values, channels=3, size=2)]
    for k in (1, 3, 4):
        picked = nearest_negatives(outputs, styles, k)
        for a, o in enumerate(output_values):
            others = sorted((b for b in range(5) if b != a), key=lambda b: ((o - style_values[b]) ** 2, b))
            assert picked[a].tolist() == others[:k]
    # Sample 0 (value 0) is nearest to its own style (0.5), which must never be its negative.
    assert nearest_negatives(outputs, styles, 1)[0].item() == 4
    # Unlike the released code's bug, the picks are not all the last index.
    assert set(nearest_negatives(outputs, styles, 1).flatten().tolist()) != {4}


def test_nearest_negatives_break_ties_by_lower_index():
    outputs = [constant_maps([0.0, 0.0, 0.0])]
    styles = [constant_maps([1.0, 1.0, 1.0])]
    assert nearest_negatives(outputs, styles, 1).flatten().tolist() == [1, 0, 0]


def test_negative_count_is_clamped_to_the_other_styles():
    assert effective_negatives(3, 8) == 3
    assert effective_negatives(7, 3) == 2
    with pytest.raises(ValueError, match="at least 2"):
        effective_negatives(3, 1)
    with pytest.raises(ValueError):
        nearest_negatives([constant_maps([0.0, 1.0])], [constant_maps([0.0, 1.0])], 2)


def explicit_efdm_single(style, trans):
    """The released ``efdm_single(style, trans)`` for (1, C, H, W) maps, written out with loops."""
    return explicit_efdm(trans, style)


def test_style_contrastive_loss_matches_reference():
    generator = torch.Generator().manual_seed(5)
    batch = 4

    def octave(channels, size):
        return (torch.randn(batch, channels, size, size, generator=generator),
                torch.randn(batch, channels, size // 2, size // 2, generator=generator))

    style = [octave(3, 4), octave(2, 6)]
    output = [octave(3, 4), octave(2, 6)]
    negatives = torch.tensor([[1, 2], [0, 3], [3, 1], [2, 0]])
    loss = style_contrastive_loss(style, output, negatives)

    expected = 0.0
    for b in range(batch):
        positive = negative = 0.0
        for s_pair, o_pair in zip(style, output):
            for s, o in zip(s_pair, o_pair):
                positive += explicit_efdm_single(s[b:b + 1], o[b:b + 1])
                for n in negatives[b].tolist():
                    negative += explicit_efdm_single(s[n:n + 1], o[b:b + 1])
        expected += positive / negative
    assert loss.item() == pytest.approx(expected, rel=1e-5)


def test_style_contrastive_gradients_reach_both_sides():
    generator = torch.Generator().manual_seed(6)
    style = [(torch.randn(3, 2, 4, 4, generator=generator, requires_grad=True),
              torch.randn(3, 2, 2, 2, generator=generator, requires_grad=True))]
    output = [(torch.randn(3, 2, 4, 4, generator=generator, requires_grad=True),
               torch.randn(3, 2, 2, 2, generator=generator, requires_grad=True))]
    style_contrastive_loss(style, output, torch.tensor([[1], [2], [0]])).backward()
    for tensor in (*style[0], *output[0]):
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------- network features

@pytest.mark.parametrize("variant,size", [("infusionnet", 96), ("aesfa", 32)])
def test_contrastive_features_follow_the_networks(seeded_models, make_image, variant, size):
    model = seeded_models[variant]
    content, style = make_image(2, size, size, seed=1), make_image(2, size, size, seed=2)
    with torch.no_grad():
        code, style_features = style_side(model, style)
        reference_code = model.encode_style(style)
        assert torch.equal(code[0], reference_code[0]) and torch.equal(code[1], reference_code[1])
        encoded, taps = encoder_taps(model.netE, content)
        reference = model.netE(content)
        assert torch.equal(encoded[0], reference[0]) and torch.equal(encoded[1], reference[1])
        output, train_style_features, output_features = TrainingNetwork(model)(content, style)
        assert torch.equal(output, model(content, style))
        assert torch.equal(output_side(model, output)[0][0], output_features[0][0])
    expected_pairs = {"infusionnet": 6, "aesfa": 5}[variant]  # released enc_feat + sty_feat lists
    assert len(style_features) == len(output_features) == expected_pairs
    for s, o in zip(style_features, output_features):
        assert s[0].shape == o[0].shape and s[1].shape == o[1].shape
    assert tuple(style_features[-1][0].shape[-2:]) == (3, 3)  # the pooled style code comes last


def test_style_transfer_loss_weights_its_parts(make_image):
    assert DEFAULT_LOSS_WEIGHTS == {"infusionnet": (1.0, 15.0, 15.0), "aesfa": (1.0, 10.0, 5.0)}
    model = build_model("aesfa", seed=0)
    vgg = random_vgg(0)
    content, style = make_image(3, 32, 32, seed=3), make_image(3, 32, 32, seed=4)
    output, style_features, output_features = TrainingNetwork(model)(content, style)
    weights = LossWeights(2.0, 3.0, 5.0)
    with pytest.warns(UserWarning, match="using 2"):
        total, parts = StyleTransferLoss(vgg, weights, negatives=7)(content, style, output, style_features,
                                                                   output_features)
    assert total.item() == pytest.approx(2 * parts["content"].item() + 3 * parts["style"].item()
                                         + 5 * parts["contrastive"].item(), rel=1e-5)
    with torch.no_grad():
        out_vgg, content_vgg = vgg(output), vgg(content)
    assert parts["content"].item() == pytest.approx(
        torch.mean((out_vgg[CONTENT_TAP] - content_vgg[CONTENT_TAP]) ** 2).item(), rel=1e-5)
    assert math.isfinite(total.item())
    total.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_content_tap_four_compares_the_fourth_tap(make_image):
    model = build_model("aesfa", seed=0)
    vgg = random_vgg(0)
    content, style = make_image(2, 32, 32, seed=3), make_image(2, 32, 32, seed=4)
    output, style_features, output_features = TrainingNetwork(model)(content, style)
    with torch.no_grad():
        out_vgg, content_vgg = vgg(output), vgg(content)
        third, fourth = (StyleTransferLoss(vgg, LossWeights(), negatives=1, content_tap=tap)(
            content, style, output, style_features, output_features)[1]["content"].item() for tap in (3, 4))
    assert fourth == pytest.approx(torch.mean((out_vgg[3] - content_vgg[3]) ** 2).item(), rel=1e-5)
    assert third == pytest.approx(torch.mean((out_vgg[2] - content_vgg[2]) ** 2).item(), rel=1e-5)
    assert abs(third - fourth) > 1e-3 * max(third, fourth)
    with pytest.raises(ValueError, match="content tap 2"):
        StyleTransferLoss(vgg, LossWeights(), content_tap=2)


def test_pixel_tap_adds_the_images_colour_histograms_to_the_style_loss(make_image):
    model = build_model("aesfa", seed=0)
    vgg = random_vgg(0)
    content, style = make_image(2, 32, 32, seed=3), make_image(2, 32, 32, seed=4)
    output, style_features, output_features = TrainingNetwork(model)(content, style)
    weights = LossWeights(1.0, 1.0, 1.0)
    _, plain = StyleTransferLoss(vgg, weights, negatives=1)(content, style, output, style_features, output_features)
    total, with_pixels = StyleTransferLoss(vgg, weights, negatives=1, pixel_tap=4.0)(
        content, style, output, style_features, output_features)
    pixels = efdm_loss(output, style).item()
    assert pixels > 0
    assert with_pixels["style"].item() == pytest.approx(plain["style"].item() + 4.0 * pixels, rel=1e-5)
    # A colour histogram is all it sees: the style's own pixels shuffled score zero.
    shuffled = style.flatten(2)[..., torch.randperm(32 * 32)].view_as(style)
    assert efdm_loss(shuffled, style).item() == pytest.approx(0.0, abs=1e-10)
    total.backward()
    assert all(p.grad is not None for p in model.parameters())


def test_sliced_pixel_tap_sees_which_colours_go_together(make_image):
    torch.manual_seed(0)
    style = make_image(1, 32, 32, seed=4)
    # Each channel shuffled on its own: the same three histograms, other colours.
    scrambled = torch.stack([style[0, c].flatten()[torch.randperm(32 * 32)].view(32, 32) for c in range(3)])[None]
    per_channel = StyleTransferLoss(random_vgg(0), LossWeights(), negatives=1, pixel_tap=1.0)
    sliced = StyleTransferLoss(random_vgg(0), LossWeights(), negatives=1, pixel_tap=1.0, pixel_slices=8)
    assert per_channel.pixel_distance(scrambled, style).item() == pytest.approx(0.0, abs=1e-10)
    assert sliced.pixel_distance(scrambled, style).item() > 1e-3
    # The style's own pixels in another order are still the same colours.
    shuffled = style.flatten(2)[..., torch.randperm(32 * 32)].view_as(style)
    assert sliced.pixel_distance(shuffled, style).item() == pytest.approx(0.0, abs=1e-10)


def test_colour_projections_along_the_rgb_axes_are_the_channels(make_image):
    images = make_image(2, 8, 8, seed=1)
    assert torch.equal(colour_projections(images, torch.eye(3)), images)
    directions = random_colour_directions(5)
    assert directions.shape == (5, 3)
    assert torch.allclose(directions.norm(dim=1), torch.ones(5))
