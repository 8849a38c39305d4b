"""The CPU INT8 layout (``--int8-target cpu``): each rewrite is exact, and the export runs end to end."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import export_cases
from infusionnet.benchmarks import runner
from infusionnet.cli.main import main
from infusionnet.export.cpu_int8 import average_pools_as_convs, pads_on_quantized_tensors
from infusionnet.export.trt_build import BuildOptions, TrtBuildError, plan_builds
from infusionnet.runtime.manifest import Manifest

SMALL = ["--content-size", "32x48", "--variant", "aesfa", "--style-size", "32", "--checkpoint", "untrained"]


def _model(nodes, inputs, outputs, initializers=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model, full_check=True)
    return model


def _run(model, feed):
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feed)[0]


def _pool_model(kernel, strides, out_hw):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 8, 12])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, *out_hw])
    pool = helper.make_node("AveragePool", ["x"], ["y"], kernel_shape=kernel, strides=strides)
    return _model([pool], [x], [y])


def test_2x2_average_pools_become_equal_depthwise_convs():
    x = np.random.default_rng(0).standard_normal((1, 5, 8, 12)).astype(np.float32)
    model = _pool_model([2, 2], [2, 2], (4, 6))
    expected = _run(model, {"x": x})
    assert average_pools_as_convs(model) == 1
    (conv,) = model.graph.node
    assert conv.op_type == "Conv" and helper.get_attribute_value(conv.attribute[2]) == 5  # group = channels
    np.testing.assert_allclose(_run(model, {"x": x}), expected, atol=1e-6)


def test_other_average_pools_are_left_alone():
    model = _pool_model([3, 3], [1, 1], (6, 10))
    assert average_pools_as_convs(model) == 0 and model.graph.node[0].op_type == "AveragePool"


def _qdq_pad_model(mode="reflect", second_scale=0.05):
    """x -> Q -> DQ -> Pad -> Q -> DQ -> y, as the static quantizer writes it around a Pad."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 5])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 6, 7])
    constants = [numpy_helper.from_array(np.array(0.05, np.float32), "s1"),
                 numpy_helper.from_array(np.array(second_scale, np.float32), "s2"),
                 numpy_helper.from_array(np.array(128, np.uint8), "z"),
                 numpy_helper.from_array(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "pads")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s1", "z"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "s1", "z"], ["xd"]),
             helper.make_node("Pad", ["xd", "pads"], ["p"], mode=mode),
             helper.make_node("QuantizeLinear", ["p", "s2", "z"], ["pq"]),
             helper.make_node("DequantizeLinear", ["pq", "s2", "z"], ["y"])]
    return _model(nodes, [x], [y], constants)


def test_reflect_pads_move_onto_the_quantized_tensor_exactly():
    x = np.random.default_rng(1).uniform(-5, 5, (1, 2, 4, 5)).astype(np.float32)
    model = _qdq_pad_model()
    expected = _run(model, {"x": x})
    assert pads_on_quantized_tensors(model) == 1
    assert [n.op_type for n in model.graph.node] == ["QuantizeLinear", "Pad", "DequantizeLinear"]
    onnx.checker.check_model(onnx.shape_inference.infer_shapes(model, strict_mode=True), full_check=True)
    np.testing.assert_array_equal(_run(model, {"x": x}), expected)


@pytest.mark.parametrize("mode, second_scale", [("constant", 0.05), ("reflect", 0.1)],
                         ids=["zero-padding-is-not-a-copy", "different-scales"])
def test_pads_that_are_not_identities_on_quantized_values_stay(mode, second_scale):
    model = _qdq_pad_model(mode, second_scale)
    assert pads_on_quantized_tensors(model) == 0 and len(model.graph.node) == 5


@pytest.fixture(scope="module")
def cpu_int8_split(tmp_path_factory):
    with export_cases.small_tensor_mode():
        output = tmp_path_factory.mktemp("cpu-int8") / "split"
        code = main(["export", "onnx", "--precision", "int8", "--int8-target", "cpu", "--calibration-batches", "2",
                     *SMALL, "-o", str(output)])
    assert code == 0
    return output


def test_cpu_int8_export_is_verified_and_laid_out_for_the_cpu(cpu_int8_split):
    manifest = Manifest.load(cpu_int8_split)
    data = manifest.data
    assert manifest.int8_target == "cpu" and data["calibration"]["target"] == "cpu"
    assert data["calibration"]["quantized_ops"] == ["Conv", "Pad", "Add", "LeakyRelu"]
    assert data["verification"]["passed"] and data["verification"]["worst"]["min_range_psnr_db"] >= 25.0
    assert not data["trt_compat"]["available"] and "--int8-target tensorrt" in data["trt_compat"]["reason"]
    model = onnx.shape_inference.infer_shapes(onnx.load(str(manifest.graph("content").path)))
    types = {v.name: v.type.tensor_type.elem_type for v in list(model.graph.value_info) + list(model.graph.input)}
    pads = [n for n in model.graph.node if n.op_type == "Pad"]
    # Every reflect Pad reads uint8 data; the 2x2 average pools are depthwise convolutions.
    assert pads and all(types[n.input[0]] == TensorProto.UINT8 for n in pads)
    assert not any(n.op_type == "AveragePool" for n in model.graph.node)
    # The graph I/O stays float32, so the same runtime code feeds it.
    assert all(t.dtype == "float32" for g in manifest.graphs.values() for t in g.inputs + g.outputs)


def test_tensorrt_refuses_cpu_int8_exports_and_says_how_to_re_export(cpu_int8_split):
    with pytest.raises(TrtBuildError, match="re-export with --precision int8 --int8-target tensorrt"):
        plan_builds(Manifest.load(cpu_int8_split), BuildOptions("int8"))


def test_int8_target_needs_int8(tmp_path, capsys):
    code = main(["export", "onnx", "--int8-target", "cpu", "-o", str(tmp_path / "out")])
    assert code == 2 and "--int8-target only applies to --precision int8" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_manifests_without_the_field_mean_tensorrt():
    data = {"precision": "int8"}
    assert Manifest(data).int8_target == "tensorrt" and Manifest({"precision": "fp16"}).int8_target is None


def test_bench_runs_onnxruntime_int8_in_both_layouts_on_the_cpu():
    config = runner.BenchConfig(backends=("onnxruntime", "tensorrt"), precisions=("fp32", "int8"))
    assert [row[:3] for row in runner.plan_rows(config)] == [
        ("onnxruntime", "fp32", None), ("onnxruntime", "int8", "tensorrt"), ("onnxruntime", "int8", "cpu"),
        ("tensorrt", "fp32", None), ("tensorrt", "int8", "tensorrt")]
    cuda = runner.BenchConfig(backends=("onnxruntime",), precisions=("int8",), device="cuda")
    assert [row[:3] for row in runner.plan_rows(cuda)] == [("onnxruntime", "int8", "tensorrt")]
    assert runner.graph_label("cached-style", "cpu") == "content/cpu-int8"

