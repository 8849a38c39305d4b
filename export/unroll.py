"""Unroll AdaConv into plain grouped convolutions that the ONNX exporter can write.

``models.blocks.adaconv_batched`` folds the batch into the groups of one convolution, but it
reads every size from tensor shapes. While the legacy exporter traces, shape entries are traced
values, so the reshaped weights have unknown sizes and the exporter stops with "ONNX export of
convolution for kernel of unknown shape". Here the same arithmetic takes its sizes from the
kernel predictor's configuration and the export batch, which are Python constants: weights
reshape to a known (B*out, in/g, k, k) and every AdaConv becomes

    Pad(reflect) -> Reshape(1, B*C, H, W) -> Conv(group=B*g) -> Reshape(B, C, H, W)

with the pointwise kernel folded into the spatial one (``models.blocks.fold_pointwise``: one
small MatMul per AdaConv on kernel-sized tensors, instead of a second convolution over every
pixel). The fold sits in the graph that applies the kernels, so the style graph's outputs, the
content graph's inputs and every runtime's tensor names stay the 18 predicted tensors; in a
baked graph the exporter's constant folding turns it into a plain initializer.

Only the image height and width stay traced, so ``--dynamic-size`` keeps working.
"""
import math
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import torch.nn.functional as F
from torch import Tensor, nn

from infusionnet.models.blocks import AdaConv2d, AdaOctConv, fold_pointwise


class FoldedAdaConv2d(AdaConv2d):
    """AdaConv2d whose dynamic convolution uses static sizes (set by ``unrolled_adaconv``)."""

    batch: int
    channels: int
    n_groups: int
    kernel_size: int

    def forward(self, x: Tensor, spatial: Tensor, pointwise: Tensor, bias: Tensor) -> Tensor:
        return self.conv(self.dynamic_conv(F.instance_norm(x, eps=1e-5), spatial, pointwise, bias))

    def dynamic_conv(self, x: Tensor, spatial: Tensor, pointwise: Tensor, bias: Tensor) -> Tensor:
        batch, channels, groups, k = self.batch, self.channels, self.n_groups, self.kernel_size
        folded_channels, folded_groups = batch * channels, batch * groups
        height, width = x.shape[2], x.shape[3]
        pad = (math.ceil((k - 1) / 2), math.floor((k - 1) / 2)) * 2
        x = F.pad(x, pad, mode="reflect")
        x = x.reshape(1, folded_channels, x.shape[2], x.shape[3])
        per_group = channels // groups
        weight = fold_pointwise(spatial, pointwise, folded_groups, per_group, per_group, k)
        x = F.conv2d(x, weight, bias.reshape(folded_channels), groups=folded_groups)
        return x.reshape(batch, channels, height, width)


def _adaconv_pairs(model: nn.Module) -> List[Tuple[AdaConv2d, object]]:
    pairs = []
    for module in model.modules():
        if isinstance(module, AdaOctConv):
            pairs.append((module.AdaConv_h, module.kernelPredictor_h))
            pairs.append((module.AdaConv_l, module.kernelPredictor_l))
    return pairs


@contextmanager
def unrolled_adaconv(model: nn.Module, batch: int) -> Iterator[nn.Module]:
    """Make every AdaConv of ``model`` a ``FoldedAdaConv2d`` for ``batch`` while exporting.

    The swap changes the class only (same parameters, same state dict) and is undone on exit.
    """
    pairs = _adaconv_pairs(model)
    if not pairs:
        raise ValueError(f"{type(model).__name__} has no AdaOctConv layers to unroll")
    for adaconv, predictor in pairs:
        if predictor.in_channels != predictor.out_channels:
            raise ValueError("AdaConv unrolling assumes square kernels (in == out channels)")
    try:
        for adaconv, predictor in pairs:
            adaconv.__class__ = FoldedAdaConv2d
            adaconv.batch = int(batch)
            adaconv.channels = predictor.in_channels
            adaconv.kernel_size = predictor.kernel_size
        yield model
    finally:
        for adaconv, _ in pairs:
            adaconv.__class__ = AdaConv2d
            for name in ("batch", "channels", "kernel_size"):
                adaconv.__dict__.pop(name, None)
