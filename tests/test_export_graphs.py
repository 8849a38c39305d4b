"""Exported FP32 graphs: structure (what TensorRT will see) and agreement with PyTorch.

The matrix covers every graph kind x both variants x batch 1 and 2 x static and dynamic size.
The fast set is pairwise (each kind sees both variants, both batches and both size modes); the
other combinations run as slow tests. Each case is exported once per module and shared.
"""
import itertools
from collections import Counter

import numpy as np
import pytest
import torch

from export_cases import small_tensors_for_module, exported_by_case  # noqa: F401 (fixtures)
from export_cases import CONTENT_SIZE, STYLE_SIZE
from infusionnet.export import calibration as calib
from infusionnet.export.pipeline import verification_feeds
from infusionnet.export.simplify import FORBIDDEN_OPS, conv_groups, dynamic_weight_convs, initializer_names
from infusionnet.export.verify import TorchReference, verify
from infusionnet.models.stages import decode, kernel_names
from infusionnet.runtime.compare import second_size
from infusionnet.runtime.manifest import HEIGHT, WIDTH

FAST = [("full", "infusionnet", 1, False), ("full", "aesfa", 2, True),
        ("split", "infusionnet", 1, False), ("split", "aesfa", 2, True),
        ("baked", "infusionnet", 2, True), ("baked", "aesfa", 1, False)]
SLOW = [case for case in itertools.product(("full", "split", "baked"), ("infusionnet", "aesfa"), (1, 2),
                                           (False, True)) if case not in FAST]
CASES = FAST + [pytest.param(case, marks=pytest.mark.slow) for case in SLOW]
IDS = ["-".join([kind, variant, f"b{batch}", "dynamic" if dynamic else "static"])
       for kind, variant, batch, dynamic in FAST + SLOW]
# AdaConv groups per layer and half (architecture.md): 128 channels / 1, 64 / 2, 32 / 4 per half.
ADACONV_GROUPS = [128, 128, 32, 32, 8, 8]


def _dims(value):
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_graph_structure(exported, case):
    export = exported(case)
    roles = {"full": ["full"], "split": ["style", "content"], "baked": ["baked"]}[export.kind]
    assert list(export.models) == roles
    hw = [HEIGHT, WIDTH] if export.dynamic else list(CONTENT_SIZE)
    style_size = STYLE_SIZE[export.variant]
    for role, model in export.models.items():
        ops = Counter(node.op_type for node in model.graph.node)
        assert not set(ops) & FORBIDDEN_OPS, role
        assert model.opset_import[0].version == 17
        inputs = {value.name: _dims(value) for value in model.graph.input}
        outputs = {value.name: _dims(value) for value in model.graph.output}
        if role != "style":
            assert inputs["content"] == [export.batch, 3] + hw
            assert outputs == {"stylized": [export.batch, 3] + hw}
        if role in ("full", "style"):
            assert inputs["style"] == [export.batch, 3, style_size, style_size]
        # The 3x3 style pooling is two constant MatMuls per half, only where a style is encoded;
        # each AdaConv that applies predicted kernels folds its pointwise kernel into the spatial
        # one with one MatMul (a baked graph's folds are constants).
        pooling = 4 if role in ("full", "style") else 0
        folds = len(ADACONV_GROUPS) if role in ("full", "content") else 0
        assert ops.get("MatMul", 0) == pooling + folds
        dynamic = dynamic_weight_convs(model)
        if role in ("full", "content"):
            # Each AdaConv: one Conv (spatial and pointwise folded) with group = batch * n_groups.
            assert sorted(conv_groups(node) for node in dynamic) == \
                sorted(export.batch * g for g in ADACONV_GROUPS)
        else:
            assert dynamic == []
        if role == "baked":
            constants = initializer_names(model)
            assert all(node.input[1] in constants for node in model.graph.node if node.op_type == "Conv")
            assert ops["InstanceNormalization"] == 6


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_graph_matches_pytorch(exported, case):
    export = exported(case)
    feeds = verification_feeds(export.config)
    assert len(feeds) == (3 if export.dynamic else 2)
    if export.dynamic:
        assert feeds[2].feed["content"].shape[2:] == second_size(CONTENT_SIZE) != CONTENT_SIZE
    result = verify({role: str(path) for role, path in export.paths.items()},
                    TorchReference(export.model, export.baked), feeds, "fp32")
    expected = {"full": ["full"], "split": ["style", "content", "style -> content"], "baked": ["baked"]}[export.kind]
    assert [check.graphs for check in result.rows] == expected * len(feeds)
    assert result.passed, [check.to_dict() for check in result.failures()]
    assert max(check.max_abs for check in result.rows) < 1e-4


def test_split_names_chain_and_equal_the_models_kernel_names(exported, seeded_models):
    for case in (("split", "infusionnet", 1, False), ("split", "aesfa", 2, True)):
        export = exported(case)
        names = kernel_names(seeded_models[export.variant])
        assert len(names) == 18 and names[0] == "AdaOctConv1_1.h.spatial"
        style_outputs = [value.name for value in export.models["style"].graph.output]
        content_inputs = [value.name for value in export.models["content"].graph.input]
        assert style_outputs == names
        assert content_inputs == ["content"] + names
        shapes = {value.name: _dims(value) for value in export.models["style"].graph.output}
        assert shapes == {value.name: _dims(value) for value in export.models["content"].graph.input
                          if value.name != "content"}


def test_split_chain_in_onnxruntime_equals_full_graph(exported):
    import onnxruntime as ort

    split, full = exported(("split", "aesfa", 2, True)), exported(("full", "aesfa", 2, True))
    sessions = {role: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                for role, path in list(split.paths.items()) + list(full.paths.items())}
    feed = calib.random_pairs(2, (40, 64), STYLE_SIZE["aesfa"], 1, seed=9)[0]
    names = [o.name for o in sessions["style"].get_outputs()]
    kernels = dict(zip(names, sessions["style"].run(None, {"style": feed["style"]})))
    chained = sessions["content"].run(None, dict(kernels, content=feed["content"]))[0]
    whole = sessions["full"].run(None, feed)[0]
    assert chained.shape == (2, 3, 40, 64)
    np.testing.assert_allclose(chained, whole, rtol=0, atol=1e-5)
    # Per-sample kernels: swapping the styles swaps the outputs, so kernels never mix across samples.
    swapped = {k: v[::-1].copy() for k, v in kernels.items()}
    content = np.ascontiguousarray(np.concatenate([feed["content"][:1]] * 2))
    out = sessions["content"].run(None, dict(swapped, content=content))[0]
    ref = sessions["content"].run(None, dict(kernels, content=content))[0]
    np.testing.assert_allclose(out[0], ref[1], rtol=0, atol=1e-5)


def test_baked_graph_uses_the_baked_style(exported):
    export = exported(("baked", "infusionnet", 2, True))
    import onnxruntime as ort

    session = ort.InferenceSession(str(export.paths["baked"]), providers=["CPUExecutionProvider"])
    content = calib.random_pairs(2, (24, 40), 96, 1, seed=3)[0]["content"]
    other_style = calib.random_pairs(1, CONTENT_SIZE, 96, 1, seed=4)[0]["style"]
    reference = TorchReference(export.model, export.baked)

    @torch.no_grad()
    def decode(kernels):  # the model's own decoder, kernels broadcast over the batch
        tensors = {k: torch.as_tensor(v) for k, v in kernels.items()}
        return export.model.decode(export.model.encode_content(torch.from_numpy(content)), tensors)[0].numpy()

    got = session.run(None, {"content": content})[0]
    baked = decode(reference.baked_kernels)
    np.testing.assert_allclose(got, baked, rtol=0, atol=1e-4)
    different = decode(reference.kernels(np.concatenate([other_style] * 2)))
    assert np.abs(got - different).max() > 10 * np.abs(got - baked).max()


@pytest.mark.parametrize("variant", ["infusionnet", "aesfa"])
def test_exported_decoder_tail_equals_the_models(seeded_models, variant):
    """decode() upsamples after the last 1x1 convolutions instead of before: same image."""
    model = seeded_models[variant]
    generator = torch.Generator().manual_seed(3)
    content = torch.rand(2, 3, 48, 64, generator=generator)
    style = torch.rand(2, 3, STYLE_SIZE[variant], STYLE_SIZE[variant], generator=generator)
    # A wrong reordering (conv4's bias added twice, a ratio lost) would move the image by about this much.
    assert model.netG.conv4.bias.abs().max() > 1e-2
    with torch.no_grad():
        kernels = model.style_kernels(style)
        expected = model.netG(model.encode_content(content), kernels)[0]
        rewritten = decode(model, content, kernels)
    assert rewritten.shape == expected.shape
    torch.testing.assert_close(rewritten, expected, rtol=1e-5, atol=1e-6)
