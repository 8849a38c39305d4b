"""An independent re-implementation of the authors' test path, for parity tests.

Written from docs/architecture.md alone: the networks are a few layer tables, the forward pass
is torch.nn.functional applied to a flat state dict with the official key names
(``netE.* / netS.* / netG.*``), and AdaConv loops over the batch exactly as the authors do.
Nothing here imports ``infusionnet.models``: a mistake there must not hide by being repeated
here. Keep it that way.

It also describes the official state dict (every key and shape, derived from the layer tables),
builds seeded random weights in that layout and wraps them the way the authors' checkpoints
are saved, so checkpoint tests never depend on the project's own model to produce their input.
"""
import math
from collections import OrderedDict, namedtuple
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

ALPHA = 0.5
SLOPE = 0.01
VARIANTS = ("infusionnet", "aesfa")
PARTS = ("netE", "netS", "netG")
STYLE_CHANNELS = {"infusionnet": 512, "aesfa": 128}
# architecture.md, "Parameters" (published for InfusionNet only).
PUBLISHED_PARAMETERS = {"infusionnet": {"netE": 88448, "netS": 668416, "netG": 4690531}}

State = Dict[str, Tensor]
Pair = Tuple[Tensor, Tensor]

# One octave convolution of a layer table; ``kind`` is the official ``type``.
Oct = namedtuple("Oct", "name cin cout k stride padding groups kind")


def halves(channels: int) -> Tuple[int, int]:
    high = int(channels * (1 - ALPHA))
    return high, channels - high


# ---------------------------------------------------------------------------------------------
# Layer tables (architecture.md). nf = 64 everywhere.

def encoder_table(aesfa: bool) -> List[Oct]:
    table = [Oct("OctConv1_1", 64, 64, 3, 2, 1, 1, "first"),
             Oct("OctConv1_2", 64, 128, 1, 1, 0, 1, "normal")]
    if aesfa:
        table.append(Oct("OctConv1_3", 128, 128, 3, 1, 1, 1, "normal"))
    table += [Oct("OctConv2_1", 128, 128, 3, 2, 1, 128, "normal"),
              Oct("OctConv2_2", 128, 256, 1, 1, 0, 1, "normal")]
    if aesfa:
        table.append(Oct("OctConv2_3", 256, 256, 3, 1, 1, 1, "normal"))
    return table


STYLE_ENCODER_TABLE = [Oct("OctConv1_1", 256, 256, 3, 2, 1, 256, "normal"),
                       Oct("OctConv1_2", 256, 512, 1, 1, 0, 1, "normal"),
                       Oct("OctConv2_1", 512, 512, 3, 2, 1, 512, "normal"),
                       Oct("OctConv2_2", 512, 512, 1, 1, 0, 1, "normal")]
# InfusionNet's per-half tail of netS: (name, cin, cout, k, stride, padding, groups); with bias.
STYLE_TAIL = {"high": [("OctConv3_1_high", 256, 256, 3, 2, 1, 256), ("OctConv3_2_high", 256, 512, 1, 1, 0, 1)],
              "low": [("OctConv3_1_low", 256, 256, 3, 1, 1, 256), ("OctConv3_2_low", 256, 512, 1, 1, 0, 1)]}
# netG's adaptive layers: (name, channels, group_div).
ADAPTIVE = [("AdaOctConv1_1", 256, 1), ("AdaOctConv2_1", 128, 2), ("AdaOctConv3_1", 64, 4)]
DECODER_OCT = {"OctConv1_2": Oct("OctConv1_2", 256, 128, 1, 1, 0, 1, "normal"),
               "OctConv2_2": Oct("OctConv2_2", 128, 64, 1, 1, 0, 1, "normal"),
               "OctConv3_2": Oct("OctConv3_2", 64, 32, 1, 1, 0, 1, "last")}
AFTER_UPSAMPLE = [("oct_conv_aftup_1", 128), ("oct_conv_aftup_2", 64)]


def adaptive_octconv(channels: int) -> Oct:
    """The depthwise OctConv inside AdaOctConv: OctConv(in, out, 3, 1, 1, groups=in)."""
    return Oct("OctConv", channels, channels, 3, 1, 1, channels, "normal")


def octconv_parts(spec: Oct) -> List[Tuple[str, int, int, int]]:
    """(conv name, in, out, groups) of every Conv2d inside an OctConv."""
    hi, li = halves(spec.cin)
    ho, lo = halves(spec.cout)
    g = spec.groups
    if spec.kind == "first":
        return [("convh", spec.cin, ho, 1), ("convl", spec.cin, lo, 1)]
    if spec.kind == "last":
        return [("convh", hi, spec.cout, 1), ("convl", li, spec.cout, 1)]
    parts = [("H2H", hi, ho, math.ceil(g - ALPHA * g)), ("L2L", li, lo, math.ceil(ALPHA * g))]
    if g != spec.cin:  # depthwise OctConvs have no cross-frequency paths
        parts += [("L2H", li, ho, g), ("H2L", hi, lo, g)]
    return parts


# ---------------------------------------------------------------------------------------------
# The official state dict: keys and shapes.

def state_shapes(variant: str) -> "OrderedDict[str, Tuple[int, ...]]":
    """Every key of the authors' checkpoint (flattened to ``netX.key``) with its shape."""
    check_variant(variant)
    shapes = OrderedDict()

    def conv(key, cin, cout, k, groups=1, bias=True):
        shapes[key + ".weight"] = (cout, cin // groups, k, k)
        if bias:
            shapes[key + ".bias"] = (cout,)

    def octconv(prefix, spec):
        for name, cin, cout, groups in octconv_parts(spec):
            conv(f"{prefix}.{name}", cin, cout, spec.k, groups, bias=False)

    def encoder(part, aesfa):
        conv(f"{part}.conv", 3, 64, 7)
        for spec in encoder_table(aesfa):
            octconv(f"{part}.{spec.name}", spec)

    aesfa = variant == "aesfa"
    encoder("netE", aesfa)
    if aesfa:
        encoder("netS", True)
    else:
        for spec in STYLE_ENCODER_TABLE:
            octconv(f"netS.{spec.name}", spec)
        for half in ("high", "low"):
            for name, cin, cout, k, _, _, groups in STYLE_TAIL[half]:
                conv(f"netS.{name}", cin, cout, k, groups)
    style = STYLE_CHANNELS[variant]
    for layer, channels, group_div in ADAPTIVE:
        for half, ch in zip("hl", halves(channels)):
            n_groups = ch // group_div
            conv(f"netG.{layer}.kernelPredictor_{half}.spatial", style, ch * ch // n_groups, 3)
            conv(f"netG.{layer}.kernelPredictor_{half}.pointwise.1", style, ch * ch // n_groups, 1)
            conv(f"netG.{layer}.kernelPredictor_{half}.bias.1", style, ch, 1)
        for half, ch in zip("hl", halves(channels)):
            conv(f"netG.{layer}.AdaConv_{half}.conv", ch, ch, 3)
        octconv(f"netG.{layer}.OctConv", adaptive_octconv(channels))
    for spec in DECODER_OCT.values():
        octconv(f"netG.{spec.name}", spec)
    for name, channels in AFTER_UPSAMPLE:
        for half, ch in zip("hl", halves(channels)):
            conv(f"netG.{name}.conv_{half}", ch, ch, 3)
    conv("netG.conv4", 32, 3, 1)
    return shapes


def parameter_counts(variant: str) -> Dict[str, int]:
    counts = {part: 0 for part in PARTS}
    for key, shape in state_shapes(variant).items():
        counts[key.split(".", 1)[0]] += math.prod(shape)
    return counts


def random_state(variant: str, seed: int) -> "OrderedDict[str, Tensor]":
    """Seeded random weights in the official layout, scaled (He init, small biases) so that
    activations keep a moderate size through the whole network (outputs within about +-100)."""
    generator = torch.Generator().manual_seed(seed)
    state = OrderedDict()
    for key, shape in state_shapes(variant).items():
        tensor = torch.randn(shape, generator=generator)
        if key.endswith(".weight"):
            tensor *= math.sqrt(2.0 / math.prod(shape[1:]))  # He: 2 / fan_in
        else:
            tensor *= 0.1
        if ".kernelPredictor_" in key:
            # Predicted kernels multiply activations a second time; without this damping the
            # output grows to ~1e4 and small errors would hide under the scale.
            tensor *= 0.1
        state[key] = tensor
    return state


def official_checkpoint(state: State, module_prefix: bool = False, optimizers: bool = True) -> dict:
    """The dict the authors ``torch.save``: ``{'netE': sd, 'netS': sd, 'netG': sd, 'optim_E': ...}``.
    ``module_prefix`` writes keys as a DataParallel model would (``module.conv.weight``)."""
    checkpoint = {}
    for part in PARTS:
        prefix = part + "."
        checkpoint[part] = OrderedDict(
            (("module." if module_prefix else "") + key[len(prefix):], tensor)
            for key, tensor in state.items() if key.startswith(prefix))
    if optimizers:
        for suffix in "ESG":
            checkpoint[f"optim_{suffix}"] = adam_state()
    return checkpoint


def adam_state() -> dict:
    """A real (tiny) Adam state dict with the official settings, as saved beside the weights."""
    param = torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([param], lr=1e-4, betas=(0.0, 0.99))
    param.sum().backward()
    optimizer.step()
    return optimizer.state_dict()


def check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}")


# ---------------------------------------------------------------------------------------------
# Functional forward pass.

def lrelu(pair: Pair) -> Pair:
    return F.leaky_relu(pair[0], SLOPE), F.leaky_relu(pair[1], SLOPE)


def up2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2, mode="nearest")


def down2(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, 2, 2)


def conv(x: Tensor, weight: Tensor, bias: Optional[Tensor] = None, stride: int = 1, padding: int = 0,
         groups: int = 1, reflect: bool = True) -> Tensor:
    """Conv2d; with ``reflect`` the padding is reflect padding (padding_mode='reflect')."""
    if padding and reflect:
        x = F.pad(x, (padding,) * 4, mode="reflect")
        padding = 0
    return F.conv2d(x, weight, bias, stride, padding, 1, groups)


def octconv(sd: State, prefix: str, spec: Oct, x):
    groups = {name: g for name, _, _, g in octconv_parts(spec)}

    def apply(name, tensor):
        return conv(tensor, sd[f"{prefix}.{name}.weight"], None, spec.stride, spec.padding, groups[name])

    if spec.kind == "first":
        return apply("convh", x), apply("convl", down2(x))
    hf, lf = x
    if spec.kind == "last":
        out_h, out_l = apply("convh", hf), apply("convl", up2(lf))
        return out_h * 1 + out_l * 1, out_h, out_l  # freq_ratio = [1, 1]
    if "L2H" not in groups:
        return apply("H2H", hf), apply("L2L", lf)
    return apply("H2H", hf) + apply("L2H", up2(lf)), apply("L2L", lf) + apply("H2L", down2(hf))


def encoder(sd: State, part: str, image: Tensor, aesfa: bool) -> Pair:
    out = conv(image, sd[f"{part}.conv.weight"], sd[f"{part}.conv.bias"], padding=3, reflect=False)
    for spec in encoder_table(aesfa):
        out = lrelu(octconv(sd, f"{part}.{spec.name}", spec, out))
    return out


def style_encoder(sd: State, features: Pair) -> Pair:
    """InfusionNet's netS on netE's output for the style image."""
    out = features
    for spec in STYLE_ENCODER_TABLE:
        out = lrelu(octconv(sd, f"netS.{spec.name}", spec, out))
    code = []
    for x, half in zip(out, ("high", "low")):
        for name, _, _, _, stride, padding, groups in STYLE_TAIL[half]:
            x = F.leaky_relu(conv(x, sd[f"netS.{name}.weight"], sd[f"netS.{name}.bias"], stride, padding, groups),
                             SLOPE)
        code.append(F.adaptive_avg_pool2d(x, 3))
    return code[0], code[1]


def kernel_predictor(sd: State, prefix: str, style: Tensor, cin: int, cout: int, n_groups: int):
    batch = style.shape[0]
    spatial = conv(style, sd[f"{prefix}.spatial.weight"], sd[f"{prefix}.spatial.bias"], padding=1)
    spatial = spatial.reshape(batch, cout, cin // n_groups, 3, 3)
    pooled = F.adaptive_avg_pool2d(style, 1)
    pointwise = F.conv2d(pooled, sd[f"{prefix}.pointwise.1.weight"], sd[f"{prefix}.pointwise.1.bias"])
    pointwise = pointwise.reshape(batch, cout, cout // n_groups, 1, 1)
    bias = F.conv2d(pooled, sd[f"{prefix}.bias.1.weight"], sd[f"{prefix}.bias.1.bias"]).reshape(batch, cout)
    return spatial, pointwise, bias


def adaconv(sd: State, prefix: str, x: Tensor, w_spatial: Tensor, w_pointwise: Tensor, bias: Tensor,
            n_groups: int) -> Tensor:
    """The authors' AdaConv2d.forward: instance norm, then one sample at a time."""
    assert len(x) == len(w_spatial) == len(w_pointwise) == len(bias)
    x = F.instance_norm(x)
    ys = []
    for i in range(len(x)):
        padding = (w_spatial[i].size(-1) - 1) / 2
        pad = (math.ceil(padding), math.floor(padding), math.ceil(padding), math.floor(padding))
        y = F.pad(x[i:i + 1], pad=pad, mode="reflect")
        y = F.conv2d(y, w_spatial[i], groups=n_groups)
        y = F.conv2d(y, w_pointwise[i], groups=n_groups, bias=bias[i])
        ys.append(y)
    ys = torch.cat(ys, dim=0)
    return conv(ys, sd[f"{prefix}.conv.weight"], sd[f"{prefix}.conv.bias"], padding=1)


def predict_kernels(sd: State, code: Pair) -> Dict[str, Tensor]:
    """Kernels of every adaptive layer, named ``<layer>.<h|l>.<spatial|pointwise|bias>``."""
    kernels = OrderedDict()
    for layer, channels, group_div in ADAPTIVE:
        for half, ch, style in zip("hl", halves(channels), code):
            parts = kernel_predictor(sd, f"netG.{layer}.kernelPredictor_{half}", style, ch, ch, ch // group_div)
            for part, tensor in zip(("spatial", "pointwise", "bias"), parts):
                kernels[f"{layer}.{half}.{part}"] = tensor
    return kernels


def ada_octconv(sd: State, layer: str, channels: int, group_div: int, x: Pair, kernels: Dict[str, Tensor]):
    out = []
    for half, ch, feat in zip("hl", halves(channels), x):
        out.append(adaconv(sd, f"netG.{layer}.AdaConv_{half}", feat, kernels[f"{layer}.{half}.spatial"],
                           kernels[f"{layer}.{half}.pointwise"], kernels[f"{layer}.{half}.bias"],
                           ch // group_div))
    return lrelu(octconv(sd, f"netG.{layer}.OctConv", adaptive_octconv(channels), lrelu(tuple(out))))


def after_upsample(sd: State, name: str, x: Pair) -> Pair:
    """up2 on both halves, then Oct_Conv_aftup (one reflect-padded 3x3 conv per half)."""
    return tuple(conv(up2(t), sd[f"netG.{name}.conv_{half}.weight"], sd[f"netG.{name}.conv_{half}.bias"],
                      padding=1) for half, t in zip("hl", x))


def decoder(sd: State, content: Pair, kernels: Dict[str, Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    out = ada_octconv(sd, "AdaOctConv1_1", 256, 1, content, kernels)
    out = octconv(sd, "netG.OctConv1_2", DECODER_OCT["OctConv1_2"], out)
    out = after_upsample(sd, "oct_conv_aftup_1", out)
    out = ada_octconv(sd, "AdaOctConv2_1", 128, 2, out, kernels)
    out = octconv(sd, "netG.OctConv2_2", DECODER_OCT["OctConv2_2"], out)
    out = after_upsample(sd, "oct_conv_aftup_2", out)
    out = ada_octconv(sd, "AdaOctConv3_1", 64, 4, out, kernels)
    out, out_h, out_l = octconv(sd, "netG.OctConv3_2", DECODER_OCT["OctConv3_2"], out)
    w, b = sd["netG.conv4.weight"], sd["netG.conv4.bias"]
    return F.conv2d(out, w, b), F.conv2d(out_h, w, b), F.conv2d(out_l, w, b)


def content_features(sd: State, variant: str, content: Tensor) -> Pair:
    check_variant(variant)
    return encoder(sd, "netE", content, aesfa=variant == "aesfa")


def style_code(sd: State, variant: str, style: Tensor) -> Pair:
    check_variant(variant)
    if variant == "infusionnet":
        return style_encoder(sd, encoder(sd, "netE", style, aesfa=False))
    high, low = encoder(sd, "netS", style, aesfa=True)
    return F.adaptive_avg_pool2d(high, 3), F.adaptive_avg_pool2d(low, 3)


@torch.no_grad()
def stylize(sd: State, variant: str, content: Tensor, style: Tensor,
            style_low: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
    """(stylized, high-frequency image, low-frequency image). Style batch must equal the content
    batch, as in the authors' code; ``style_low`` supplies the low-frequency code (style mixing)."""
    code = style_code(sd, variant, style)
    if style_low is not None:
        code = (code[0], style_code(sd, variant, style_low)[1])
    return decoder(sd, content_features(sd, variant, content), predict_kernels(sd, code))


def relative_error(actual: Tensor, expected: Tensor) -> float:
    """max |actual - expected| over max |expected|: the parity metric (float32 rounding ~1e-7)."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = expected.abs().max().clamp_min(1e-12)
    return float((actual - expected).abs().max() / scale)
