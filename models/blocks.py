"""Building blocks shared by InfusionNet and AesFA (architecture.md, "Building blocks").

Attribute names are the official state-dict names and must not change: the authors'
checkpoints load into these modules with ``strict=True``.

Octave features travel as a tuple ``(hf, lf)``: the high-frequency half at full resolution
and the low-frequency half at half resolution. alpha = 0.5 everywhere, so a map of C
channels splits into ``int(C * 0.5)`` high and ``C - int(C * 0.5)`` low channels.
"""
import math
from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

ALPHA = 0.5
LEAKY_SLOPE = 0.01
Octave = Tuple[Tensor, Tensor]


def split_channels(channels: int) -> Tuple[int, int]:
    """(high, low) channel counts of an octave map with ``channels`` channels."""
    high = int(channels * (1 - ALPHA))
    return high, channels - high


def oct_leaky_relu(x: Octave) -> Octave:
    return F.leaky_relu(x[0], LEAKY_SLOPE), F.leaky_relu(x[1], LEAKY_SLOPE)


def upsample2(x: Tensor) -> Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def avg_pool2(x: Tensor) -> Tensor:
    return F.avg_pool2d(x, kernel_size=2, stride=2)


class OctConv(nn.Module):
    """Octave convolution; ``kind`` is the official ``type``: "first", "normal" or "last"."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1,
                 padding: int = 0, groups: int = 1, pad_type: str = "reflect", kind: str = "normal",
                 freq_ratio=(1.0, 1.0)):
        super().__init__()
        if kind not in ("first", "normal", "last"):
            raise ValueError(f"OctConv kind must be first, normal or last, not {kind!r}")
        self.kind = kind
        self.freq_ratio = tuple(freq_ratio)
        hf_in, lf_in = split_channels(in_channels)
        hf_out, lf_out = split_channels(out_channels)

        def conv(cin, cout, conv_groups=1):
            return nn.Conv2d(cin, cout, kernel_size, stride, padding, groups=conv_groups,
                             padding_mode=pad_type, bias=False)

        self.is_depthwise = groups == in_channels
        if kind == "first":
            self.convh = conv(in_channels, hf_out)
            self.convl = conv(in_channels, lf_out)
        elif kind == "last":
            self.convh = conv(hf_in, out_channels)
            self.convl = conv(lf_in, out_channels)
        else:
            self.H2H = conv(hf_in, hf_out, math.ceil(groups - ALPHA * groups))
            self.L2L = conv(lf_in, lf_out, math.ceil(ALPHA * groups))
            if not self.is_depthwise:
                self.L2H = conv(lf_in, hf_out, groups)
                self.H2L = conv(hf_in, lf_out, groups)

    def forward(self, x):
        if self.kind == "first":
            return self.convh(x), self.convl(avg_pool2(x))
        hf, lf = x
        if self.kind == "last":
            out_h = self.convh(hf)
            out_l = self.convl(upsample2(lf))
            return out_h * self.freq_ratio[0] + out_l * self.freq_ratio[1], out_h, out_l
        if self.is_depthwise:
            return self.H2H(hf), self.L2L(lf)
        return self.H2H(hf) + self.L2H(upsample2(lf)), self.L2L(lf) + self.H2L(avg_pool2(hf))


class OctConvAfterUpsample(nn.Module):
    """Official ``Oct_Conv_aftup``: one plain convolution (with bias) per half."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 padding: int = 1, pad_type: str = "reflect"):
        super().__init__()
        hf_in, lf_in = split_channels(in_channels)
        hf_out, lf_out = split_channels(out_channels)
        self.conv_h = nn.Conv2d(hf_in, hf_out, kernel_size, stride, padding, padding_mode=pad_type)
        self.conv_l = nn.Conv2d(lf_in, lf_out, kernel_size, stride, padding, padding_mode=pad_type)

    def forward(self, x: Octave) -> Octave:
        return self.conv_h(x[0]), self.conv_l(x[1])


class KernelPredictor(nn.Module):
    """Predicts one AdaConv kernel set per sample from a style code (B, style_ch, 3, 3)."""

    def __init__(self, in_channels: int, out_channels: int, n_groups: int, style_channels: int,
                 kernel_size: int = 3):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, out_channels
        self.n_groups, self.kernel_size = n_groups, kernel_size
        self.spatial = nn.Conv2d(style_channels, in_channels * out_channels // n_groups,
                                 kernel_size, padding=(kernel_size - 1) // 2, padding_mode="reflect")
        self.pointwise = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(style_channels, out_channels * out_channels // n_groups, 1))
        self.bias = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(style_channels, out_channels, 1))

    def forward(self, style: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Returns (spatial (B,out,in/g,k,k), pointwise (B,out,out/g,1,1), bias (B,out))."""
        batch = style.shape[0]
        k = self.kernel_size
        spatial = self.spatial(style).reshape(
            batch, self.out_channels, self.in_channels // self.n_groups, k, k)
        pointwise = self.pointwise(style).reshape(
            batch, self.out_channels, self.out_channels // self.n_groups, 1, 1)
        bias = self.bias(style).reshape(batch, self.out_channels)
        return spatial, pointwise, bias


def fold_pointwise(spatial: Tensor, pointwise: Tensor, groups: int, out_per_group: int, in_per_group: int,
                   k: int) -> Tensor:
    """One grouped kxk kernel (groups*out_per_group, in_per_group, k, k) that does what the
    spatial kernel followed by the pointwise one does.

    The pointwise 1x1 convolution has the same groups as the spatial one, so within each group
    it is a (out, out) matrix applied to the spatial kernel's outputs: by linearity
    ``P (S * x) = (P S) * x``, and the product of the two kernels is one small MatMul per group.
    That is exact arithmetic (only the summation order changes) and removes a full-resolution
    convolution from every AdaConv. ``groups`` counts every group of the folded batch, so the
    sizes are plain ints (the exporter needs static kernel shapes).
    """
    rows = pointwise.reshape(groups, out_per_group, out_per_group)
    columns = spatial.reshape(groups, out_per_group, in_per_group * k * k)
    return torch.matmul(rows, columns).reshape(groups * out_per_group, in_per_group, k, k)


def adaconv_batched(x: Tensor, spatial: Tensor, pointwise: Tensor, bias: Tensor,
                    n_groups: int) -> Tensor:
    """Per-sample dynamic convolution with the batch folded into the groups.

    Same arithmetic as the official per-sample loop (``adaconv_looped``): sample i's channels
    become groups i*n_groups .. (i+1)*n_groups-1 of one grouped convolution, so kernels never
    mix across samples, and the pointwise kernel is folded into the spatial one
    (``fold_pointwise``): one convolution instead of two. ``x`` is already instance-normalized.
    """
    batch, channels, height, width = x.shape
    k = spatial.shape[-1]
    pad = (math.ceil((k - 1) / 2), math.floor((k - 1) / 2)) * 2
    folded = F.pad(x, pad, mode="reflect").reshape(1, batch * channels, height + pad[2] + pad[3],
                                                    width + pad[0] + pad[1])
    weight = fold_pointwise(spatial, pointwise, batch * n_groups, spatial.shape[1] // n_groups,
                            spatial.shape[2], k)
    folded = F.conv2d(folded, weight, bias.reshape(-1), groups=batch * n_groups)
    return folded.reshape(batch, -1, height, width)


def adaconv_looped(x: Tensor, spatial: Tensor, pointwise: Tensor, bias: Tensor,
                   n_groups: int) -> Tensor:
    """The authors' formulation: a Python loop over the batch (the reference path)."""
    k = spatial.shape[-1]
    pad = (math.ceil((k - 1) / 2), math.floor((k - 1) / 2)) * 2
    outputs = []
    for i in range(x.shape[0]):
        y = F.pad(x[i:i + 1], pad, mode="reflect")
        y = F.conv2d(y, spatial[i], groups=n_groups)
        outputs.append(F.conv2d(y, pointwise[i], bias[i], groups=n_groups))
    return torch.cat(outputs, dim=0)


class AdaConv2d(nn.Module):
    """Instance norm, per-sample predicted kernels, then one static 3x3 convolution."""

    def __init__(self, in_channels: int, out_channels: int, n_groups: int):
        super().__init__()
        self.n_groups = n_groups
        # The authors loop over the batch; the batched form is the default. Flip this to run
        # the reference formulation (benchmarks' reference row, parity tests).
        self.loop_over_batch = False
        self.conv = nn.Conv2d(in_channels, out_channels, 3, padding=1, padding_mode="reflect")

    def forward(self, x: Tensor, spatial: Tensor, pointwise: Tensor, bias: Tensor) -> Tensor:
        x = F.instance_norm(x, eps=1e-5)
        apply = adaconv_looped if self.loop_over_batch else adaconv_batched
        return self.conv(apply(x, spatial, pointwise, bias, self.n_groups))


KERNEL_PARTS = ("spatial", "pointwise", "bias")


class AdaOctConv(nn.Module):
    """AdaConv on each octave half with kernels predicted from that half's style code,
    LReLU, a depthwise OctConv, and LReLU again unless ``kind == "last"``."""

    def __init__(self, in_channels: int, out_channels: int, group_div: int,
                 style_channels=(512, 512), kind: str = "normal"):
        super().__init__()
        h_in = int(in_channels * ALPHA)
        l_in = in_channels - h_in
        n_groups_h, n_groups_l = h_in // group_div, l_in // group_div
        self.kernelPredictor_h = KernelPredictor(h_in, h_in, n_groups_h, style_channels[0])
        self.kernelPredictor_l = KernelPredictor(l_in, l_in, n_groups_l, style_channels[1])
        self.AdaConv_h = AdaConv2d(h_in, h_in, n_groups_h)
        self.AdaConv_l = AdaConv2d(l_in, l_in, n_groups_l)
        self.OctConv = OctConv(in_channels, out_channels, 3, 1, 1, groups=in_channels, kind=kind)

    def predict_kernels(self, style: Octave) -> Dict[str, Tensor]:
        """Kernels for both halves, keyed ``h.spatial`` ... ``l.bias``."""
        kernels = {}
        for half, predictor, code in (("h", self.kernelPredictor_h, style[0]),
                                      ("l", self.kernelPredictor_l, style[1])):
            for part, tensor in zip(KERNEL_PARTS, predictor(code)):
                kernels[f"{half}.{part}"] = tensor
        return kernels

    def apply_kernels(self, content: Octave, kernels: Dict[str, Tensor]):
        hf = self.AdaConv_h(content[0], *(kernels[f"h.{p}"] for p in KERNEL_PARTS))
        lf = self.AdaConv_l(content[1], *(kernels[f"l.{p}"] for p in KERNEL_PARTS))
        out = self.OctConv(oct_leaky_relu((hf, lf)))
        if self.OctConv.kind != "last":
            out = oct_leaky_relu(out)
        return out

    def forward(self, content: Octave, style: Octave):
        return self.apply_kernels(content, self.predict_kernels(style))
