"""Adaptive average pooling to 3x3 with static windows, for export.

Both networks pool the style features to a 3x3 code with ``nn.AdaptiveAvgPool2d(3)``
(InfusionNet: ``model.netS.pool``; AesFA: ``model.pool``). When 3 does not divide the input
size the windows overlap and differ in length; the legacy ONNX exporter refuses that and the
dynamo exporter emits gathers, both bad news for TensorRT (deployment-facts.md). The style size
is fixed at export, so the windows are known: pooling becomes ``P_h @ x @ P_w`` with two constant
averaging matrices, which exports as two MatMuls with initializers.
"""
import math
from contextlib import contextmanager
from typing import Dict, Iterator, List, Tuple

import torch
from torch import Tensor, nn


def adaptive_windows(size: int, out: int) -> List[Tuple[int, int]]:
    """PyTorch's adaptive pooling windows: [floor(i*n/out), ceil((i+1)*n/out)) for each i."""
    return [((i * size) // out, math.ceil((i + 1) * size / out)) for i in range(out)]


def pooling_matrix(size: int, out: int) -> Tensor:
    """(out, size) matrix whose row i averages window i of ``adaptive_windows(size, out)``."""
    matrix = torch.zeros(out, size, dtype=torch.float64)
    for row, (start, end) in enumerate(adaptive_windows(size, out)):
        matrix[row, start:end] = 1.0 / (end - start)
    return matrix.float()


class StaticAdaptiveAvgPool2d(nn.Module):
    """Drop-in for ``nn.AdaptiveAvgPool2d(out)`` whose windows are fixed per input size.

    Windows are computed from the input size at call time, which is a constant while tracing a
    graph whose style size is fixed. Separable: averaging rows then columns equals averaging
    each 2-D window, since every 2-D window is the product of a row and a column window.
    """

    def __init__(self, output_size: int = 3):
        super().__init__()
        self.output_size = int(output_size)
        self._matrices: Dict[Tuple[int, int], Tuple[Tensor, Tensor]] = {}

    def matrices(self, height: int, width: int) -> Tuple[Tensor, Tensor]:
        key = (height, width)
        if key not in self._matrices:
            self._matrices[key] = (pooling_matrix(height, self.output_size),
                                   pooling_matrix(width, self.output_size).t().contiguous())
        return self._matrices[key]

    def forward(self, x: Tensor) -> Tensor:
        rows, cols = self.matrices(int(x.shape[-2]), int(x.shape[-1]))
        return torch.matmul(torch.matmul(rows.to(x.dtype), x), cols.to(x.dtype))


def _pool_owners(model: nn.Module) -> List[nn.Module]:
    """Modules holding the style code's 3x3 ``pool`` (InfusionNet: netS; AesFA: the model)."""
    owners = []
    for owner in (model, getattr(model, "netS", None)):
        pool = getattr(owner, "pool", None) if owner is not None else None
        if isinstance(pool, nn.AdaptiveAvgPool2d):
            owners.append(owner)
    return owners


@contextmanager
def static_style_pooling(model: nn.Module) -> Iterator[nn.Module]:
    """Swap the model's adaptive 3x3 style pooling for ``StaticAdaptiveAvgPool2d`` while
    exporting; the original modules are put back afterwards, even on error."""
    owners = _pool_owners(model)
    if not owners:
        raise ValueError(f"{type(model).__name__} has no adaptive style pooling (netS.pool or pool)")
    originals = [owner.pool for owner in owners]
    try:
        for owner, pool in zip(owners, originals):
            size = pool.output_size
            size = size if isinstance(size, int) else size[0]
            owner.pool = StaticAdaptiveAvgPool2d(size)
        yield model
    finally:
        for owner, pool in zip(owners, originals):
            owner.pool = pool
