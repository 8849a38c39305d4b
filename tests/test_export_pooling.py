"""Static-window 3x3 pooling and AdaConv unrolling: the two export rewrites of the model."""
import warnings

import onnx
import pytest
import torch
import torch.nn.functional as F

from infusionnet.export.pooling import (StaticAdaptiveAvgPool2d, adaptive_windows, pooling_matrix,
                                        static_style_pooling)
from infusionnet.export.simplify import simplify
from infusionnet.export.unroll import FoldedAdaConv2d, unrolled_adaconv
from infusionnet.models.blocks import AdaConv2d


def test_windows_are_pytorchs_adaptive_windows():
    # n=4 -> out 3: [0,2), [1,3), [2,4): overlapping windows of equal length.
    assert adaptive_windows(4, 3) == [(0, 2), (1, 3), (2, 4)]
    # n=5: [0,2), [1,4), [3,5): lengths differ.
    assert adaptive_windows(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert adaptive_windows(3, 3) == [(0, 1), (1, 2), (2, 3)]
    rows = pooling_matrix(5, 3)
    assert torch.allclose(rows.sum(dim=1), torch.ones(3))
    assert rows[1, 1:4].tolist() == pytest.approx([1 / 3] * 3)


@pytest.mark.parametrize("size", range(3, 18))
def test_static_pool_equals_adaptive_avg_pool(size):
    generator = torch.Generator().manual_seed(size)
    pool = StaticAdaptiveAvgPool2d(3)
    for height, width in ((size, size), (size, size + 2)):
        x = torch.randn(2, 5, height, width, generator=generator)
        torch.testing.assert_close(pool(x), F.adaptive_avg_pool2d(x, 3), rtol=0, atol=1e-6)


def test_static_pool_exports_as_matmuls_without_gathers(tmp_path):
    x = torch.randn(1, 4, 7, 5)
    path = tmp_path / "pool.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(StaticAdaptiveAvgPool2d(3), (x,), str(path), dynamo=False, opset_version=17)
    simplify(path)
    model = onnx.load(str(path))
    assert [node.op_type for node in model.graph.node] == ["MatMul", "MatMul"]
    # The pooling matrices are constants: rows (3, 7) on the left, columns (5, 3) on the right.
    assert sorted(tuple(init.dims) for init in model.graph.initializer) == [(3, 7), (5, 3)]


@pytest.mark.parametrize("variant, owner", [("infusionnet", "netS"), ("aesfa", None)])
def test_style_pooling_swapped_and_restored(seeded_models, variant, owner):
    model = seeded_models[variant]
    holder = getattr(model, owner) if owner else model
    original = holder.pool
    size = 96 if variant == "infusionnet" else 40  # aesfa: 10x10 and 5x5 halves, 3 divides neither
    style = torch.rand(1, 3, size, size)
    with torch.no_grad():
        expected = model.encode_style(style)
        with static_style_pooling(model):
            assert isinstance(holder.pool, StaticAdaptiveAvgPool2d)
            got = model.encode_style(style)
    assert holder.pool is original
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


def test_style_pooling_restored_after_an_error(seeded_models):
    model = seeded_models["aesfa"]
    original = model.pool
    with pytest.raises(RuntimeError, match="boom"):
        with static_style_pooling(model):
            raise RuntimeError("boom")
    assert model.pool is original


@pytest.mark.parametrize("variant", ["infusionnet", "aesfa"])
@pytest.mark.parametrize("batch", [1, 2])
def test_unrolled_adaconv_matches_the_model(seeded_models, variant, batch):
    model = seeded_models[variant]
    style = torch.rand(batch, 3, 96, 96)
    content = torch.rand(batch, 3, 32, 48)
    with torch.no_grad():
        expected = model(content, style)
        with unrolled_adaconv(model, batch):
            layers = [m for m in model.modules() if isinstance(m, AdaConv2d)]
            assert len(layers) == 6 and all(type(m) is FoldedAdaConv2d for m in layers)
            got = model(content, style)
    assert all(type(m) is AdaConv2d for m in model.modules() if isinstance(m, AdaConv2d))
    assert not hasattr(layers[0], "batch")
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
