"""FP16 and INT8 (QDQ) graphs, calibration feeds and the verification limits."""
import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from export_cases import small_tensors_for_module, exported_by_case  # noqa: F401 (fixtures)
from export_cases import CONTENT_SIZE, STYLE_SIZE
from infusionnet.export import calibration as calib
from infusionnet.export.pipeline import verification_feeds
from infusionnet.export.precision import FP32_OPS, fp16_fraction, to_fp16, to_int8
from infusionnet.export.simplify import FORBIDDEN_OPS, dynamic_weight_convs
from infusionnet.export.trace import ExportError
from infusionnet.export.verify import Tolerances, TorchReference, verification_comparator, verify
from infusionnet.runtime.compare import Row
from infusionnet.runtime.errors import CheckError
from infusionnet.runtime.metrics import image_metrics, kernel_metrics, psnr


def _convert(export, precision, directory, method="minmax", placement=None):
    """All graphs of ``export`` in ``precision`` under ``directory``: role -> path."""
    reference = TorchReference(export.model, export.baked)
    content, style, _ = calib.image_pairs(None)
    pairs = calib.PairFeed(content, style, export.batch, CONTENT_SIZE, STYLE_SIZE[export.variant], limit=3)
    paths = {}
    for role, source in export.paths.items():
        target = directory / f"{role}.{precision}.onnx"
        if precision == "fp16":
            to_fp16(source, target)
        else:
            to_int8(source, target, calib.RoleFeed(pairs, role, reference.kernels), method, placement=placement)
        paths[role] = str(target)
    return paths, reference


def _producers(model):
    return {out: node for node in model.graph.node for out in node.output}


def _verify(export, paths, reference, precision):
    result = verify(paths, reference, verification_feeds(export.config), precision)
    assert result.passed, [c.to_dict() for c in result.failures()]
    return result


# -- FP16 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", [("full", "infusionnet", 1, False), ("split", "aesfa", 2, True)],
                         ids=["full-infusionnet-b1-static", "split-aesfa-b2-dynamic"])
def test_fp16_graphs(exported, tmp_path, case):
    export = exported(case)
    paths, reference = _convert(export, "fp16", tmp_path)
    for role, path in paths.items():
        model = onnx.load(path)
        # FP32 inputs and outputs: the runtime feeds the same buffers at every precision.
        for value in list(model.graph.input) + list(model.graph.output):
            assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT, (role, value.name)
        assert fp16_fraction(model) > 0.9
        inferred = onnx.shape_inference.infer_shapes(model)
        types = {v.name: v.type.tensor_type.elem_type for v in
                 list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output)}
        kept = [node for node in model.graph.node if node.op_type in FP32_OPS]
        assert {node.op_type for node in kept} >= ({"InstanceNormalization"} if role != "style" else set())
        for node in kept:  # normalization, reductions and the pooling MatMuls compute in FP32
            assert all(types.get(name, onnx.TensorProto.FLOAT) == onnx.TensorProto.FLOAT
                       for name in list(node.input) + list(node.output) if name), (role, node.name)
        convs = [node for node in model.graph.node if node.op_type == "Conv"]
        assert all(types[node.output[0]] == onnx.TensorProto.FLOAT16 for node in convs)
        assert not {node.op_type for node in model.graph.node} & FORBIDDEN_OPS
    result = _verify(export, paths, reference, "fp16")
    worst = min(min(c.psnr_db, c.range_psnr_db) for c in result.rows if c.is_image)
    assert worst >= 60.0  # measured ~80-90 dB; the default floor is 40


# -- INT8 ----------------------------------------------------------------------------------------

def _qdq_checks(model, role):
    """Symmetric INT8 Q/DQ (zero point 0), per-channel weights, no INT32 bias, dynamic convs float."""
    inits = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    producers = _producers(model)
    quantize = [node for node in model.graph.node if node.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert quantize, role
    for node in quantize:
        zero_point = inits.get(node.input[2]) if len(node.input) > 2 else None
        assert zero_point is not None and zero_point.dtype == np.int8 and not zero_point.any(), node.name
    static_convs = [node for node in model.graph.node if node.op_type == "Conv"
                    and node.input[1] in producers and producers[node.input[1]].op_type == "DequantizeLinear"]
    dynamic = dynamic_weight_convs(model)
    assert len(static_convs) + len(dynamic) == sum(n.op_type == "Conv" for n in model.graph.node)
    for conv in static_convs:
        weight_dq = producers[conv.input[1]]
        assert inits[weight_dq.input[0]].dtype == np.int8
        assert inits[weight_dq.input[1]].ndim == 1  # one scale per output channel
        # The activation input is quantized too; a bias, if any, stays float.
        assert producers[conv.input[0]].op_type == "DequantizeLinear"
        if len(conv.input) > 2:
            assert conv.input[2] in inits and inits[conv.input[2]].dtype == np.float32
    for conv in dynamic:  # predicted kernels cannot be quantized offline
        assert producers[conv.input[1]].op_type != "DequantizeLinear"
    # TensorRT's placement: an activation is quantized only where a weighted layer reads it.
    assert _output_only_quantizers(model) == [], role
    return static_convs, dynamic


def _output_only_quantizers(model):
    """Q nodes on activations whose DQ feeds no convolution (a convolution's output quantized
    for elementwise consumers: ONNX Runtime's default layout)."""
    consumers = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    inits = {init.name for init in model.graph.initializer}
    found = []
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits:
            continue
        dequantized = [c.output[0] for c in consumers.get(node.output[0], []) if c.op_type == "DequantizeLinear"]
        if not any(c.op_type == "Conv" for name in dequantized for c in consumers.get(name, [])):
            found.append(node.name)
    return found


def test_int8_baked_graph_is_fully_quantized(exported, tmp_path):
    export = exported(("baked", "aesfa", 1, False))
    paths, reference = _convert(export, "int8", tmp_path)
    static, dynamic = _qdq_checks(onnx.load(paths["baked"]), "baked")
    assert dynamic == [] and len(static) == sum(n.op_type == "Conv" for n in export.models["baked"].graph.node)
    result = _verify(export, paths, reference, "int8")
    assert min(c.range_psnr_db for c in result.rows) >= 40.0  # measured ~57 dB; the floor is 25


def test_onnxruntime_placement_also_quantizes_conv_outputs(exported, tmp_path):
    """The layout used before (kept selectable for the placement measurement) puts Q/DQ after
    convolution outputs that only elementwise ops read; TensorRT's does not."""
    export = exported(("baked", "aesfa", 1, False))
    ort_paths, _ = _convert(export, "int8", tmp_path, placement="onnxruntime")
    (tmp_path / "trt").mkdir()
    trt_paths, _ = _convert(export, "int8", tmp_path / "trt")
    ort, trt = onnx.load(ort_paths["baked"]), onnx.load(trt_paths["baked"])
    assert _output_only_quantizers(ort) and _output_only_quantizers(trt) == []
    count = lambda m: sum(n.op_type == "QuantizeLinear" for n in m.graph.node)  # noqa: E731
    assert count(trt) < count(ort)
    with pytest.raises(ExportError, match="unknown Q/DQ placement 'outputs'"):
        to_int8(export.paths["baked"], tmp_path / "x.onnx", None, placement="outputs")


def test_int8_split_graphs_leave_dynamic_convs_in_float(exported, tmp_path):
    export = exported(("split", "aesfa", 2, True))
    paths, reference = _convert(export, "int8", tmp_path)
    _, dynamic = _qdq_checks(onnx.load(paths["content"]), "content")
    assert len(dynamic) == 6  # one folded conv per AdaConv
    _qdq_checks(onnx.load(paths["style"]), "style")
    result = _verify(export, paths, reference, "int8")
    assert {c.graphs for c in result.rows} == {"style", "content", "style -> content"}


@pytest.mark.slow
def test_int8_full_graph(exported, tmp_path):
    export = exported(("full", "infusionnet", 1, False))
    paths, reference = _convert(export, "int8", tmp_path, method="percentile")
    _, dynamic = _qdq_checks(onnx.load(paths["full"]), "full")
    assert len(dynamic) == 6  # one folded conv per AdaConv
    _verify(export, paths, reference, "int8")


@pytest.mark.slow
def test_calibration_methods_differ(exported, tmp_path):
    # ORT's own entropy default (128 bins) degenerates to minmax; ours must not.
    export = exported(("baked", "aesfa", 1, False))
    scales = {}
    for method in ("minmax", "entropy"):
        directory = tmp_path / method
        directory.mkdir()
        paths, _ = _convert(export, "int8", directory, method)
        model = onnx.load(paths["baked"])
        inits = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
        scales[method] = np.array([float(inits[node.input[1]]) for node in model.graph.node
                                   if node.op_type == "QuantizeLinear" and inits[node.input[1]].size == 1])
    assert scales["minmax"].shape == scales["entropy"].shape
    assert not np.allclose(scales["minmax"], scales["entropy"])
    assert (scales["entropy"] <= scales["minmax"] * (1 + 1e-6)).all()  # entropy only ever clips


# -- feeds ---------------------------------------------------------------------------------------

def test_role_feeds_follow_the_onnxruntime_protocol(seeded_models):
    reference = TorchReference(seeded_models["aesfa"])
    pairs = calib.random_pairs(2, (16, 24), 24, count=2)
    content = calib.RoleFeed(pairs, "content", reference.kernels)
    feeds = list(content)
    assert len(content) == 2 and set(feeds[0]) == {"content"} | set(reference.kernels(pairs[0]["style"]))
    assert feeds[0]["content"].shape == (2, 3, 16, 24) and feeds[0]["AdaOctConv3_1.l.bias"].shape == (2, 32)
    assert set(next(iter(calib.RoleFeed(pairs, "style")))) == {"style"}
    assert set(next(iter(calib.RoleFeed(pairs, "full")))) == {"content", "style"}
    baked = calib.RoleFeed(pairs, "baked")
    assert [set(baked.get_next()), set(baked.get_next()), baked.get_next()] == [{"content"}, {"content"}, None]
    baked.rewind()
    np.testing.assert_array_equal(baked.get_next()["content"], pairs[0]["content"])
    with pytest.raises(ValueError, match="kernels_of"):
        calib.RoleFeed(pairs, "content")


def test_sample_and_folder_pairs(tmp_path):
    from infusionnet.runtime.images import write_image

    content, style, description = calib.image_pairs(None)
    assert len(content) == len(style) >= 5 and "built-in samples" in description
    feed = calib.PairFeed(content, style, 2, (24, 40), 32, limit=2)
    batches = list(feed)
    assert len(batches) == 2 and batches[0]["content"].shape == (2, 3, 24, 40)
    assert batches[0]["style"].shape == (2, 3, 32, 32) and batches[0]["style"].dtype == np.float32
    rng = np.random.default_rng(0)
    for index in range(3):
        write_image(tmp_path / f"{index}.png", rng.integers(0, 256, (20 + index, 30, 3), dtype=np.uint8))
    content, style, description = calib.image_pairs(str(tmp_path))
    assert [p.name for p in content] == ["0.png", "1.png", "2.png"]
    assert [p.name for p in style] == ["1.png", "2.png", "0.png"] and description.startswith("3 images")
    with pytest.raises(calib.CalibrationError, match="missing: cannot list images .* no such folder"):
        calib.image_pairs(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(calib.CalibrationError, match="no images in"):
        calib.image_pairs(str(tmp_path / "empty"))


# -- limits --------------------------------------------------------------------------------------

def test_psnr_and_compare():
    a = np.zeros((1, 3, 4, 4), np.float32)
    assert psnr(a, a, 255.0) == 100.0
    assert psnr(np.full(4, 10.0), np.zeros(4), 255.0) == pytest.approx(20 * np.log10(25.5))
    reference = np.linspace(-1, 1, 48, dtype=np.float32).reshape(1, 3, 4, 4)
    metrics = image_metrics(reference + 0.01, reference, with_ssim=False)
    assert metrics["max_abs"] == pytest.approx(0.01, abs=1e-6)
    assert metrics["range_psnr_db"] == pytest.approx(20 * np.log10(2 / 0.01), abs=0.01)
    assert "psnr_db" not in kernel_metrics({"k": reference}, {"k": reference})  # kernels: no image PSNR
    with pytest.raises(CheckError, match="differs from the reference"):
        image_metrics(reference[:, :2], reference, with_ssim=False)


def test_limits_per_precision():
    limits = Tolerances(fp32_max_abs=1e-3, fp16_min_psnr=40, int8_min_psnr=25)

    def judge(row, precision):  # as export verification judges
        return verification_comparator(precision, limits).judge(row)

    image = dict(graphs="full", inputs="random", size="32x48", output="stylized", mean_abs=0.0)
    assert judge(Row(max_abs=9e-4, psnr_db=100, range_psnr_db=80, **image), "fp32").passed
    assert not judge(Row(max_abs=2e-3, psnr_db=100, range_psnr_db=80, **image), "fp32").passed
    # Reduced precision: the lower of the two PSNRs decides (uint8 saturates on flat outputs).
    assert judge(Row(max_abs=0.1, psnr_db=100, range_psnr_db=41, **image), "fp16").passed
    assert not judge(Row(max_abs=0.0, psnr_db=100, range_psnr_db=39, **image), "fp16").passed
    assert not judge(Row(max_abs=0.0, psnr_db=24, range_psnr_db=60, **image), "int8").passed
    kernels = Row("random", "32x48", "kernels", max_abs=0.5, mean_abs=0.1, graphs="style")
    assert judge(kernels, "int8").passed and kernels.limit.startswith("(")
    assert not judge(Row("random", "32x48", "kernels", max_abs=0.5, mean_abs=0.1, graphs="style"), "fp32").passed
    assert not judge(Row(max_abs=float("nan"), psnr_db=100, range_psnr_db=100, **image), "fp16").passed


def test_int8_keeps_named_layers_in_float(exported, tmp_path):
    """--int8-keep-float: the named static-weight convs read float inputs and weights (no DQ)."""
    from infusionnet.benchmarks.int8_sensitivity import quantizable_nodes
    export = exported(("baked", "aesfa", 1, False))
    source = export.paths["baked"]
    graph = onnx.load(str(source))
    convs = quantizable_nodes(graph, "tensorrt")
    kinds = {node.name: node.op_type for node in graph.graph.node}
    assert convs and {kinds[name] for name in convs} == {"Conv"}
    keep = convs[:2]
    reference = TorchReference(export.model, export.baked)
    content, style, _ = calib.image_pairs(None)
    pairs = calib.PairFeed(content, style, 1, CONTENT_SIZE, STYLE_SIZE["aesfa"], limit=2)
    cache = tmp_path / "ranges.json"
    target = tmp_path / "kept.onnx"
    to_int8(source, target, calib.RoleFeed(pairs, "baked", reference.kernels), keep_float=keep,
            calibration_cache=cache)
    assert cache.is_file()  # written once, reused by later calls
    model = onnx.load(str(target))
    producers = _producers(model)
    for node in model.graph.node:
        if node.op_type != "Conv":
            continue
        fed_by_dq = any(producers.get(name) is not None and producers[name].op_type == "DequantizeLinear"
                        for name in node.input[:2])
        assert fed_by_dq == (node.name not in keep), node.name
    # The cache alone is enough the second time: no reader needed.
    to_int8(source, tmp_path / "again.onnx", None, calibration_cache=cache)
