"""INT8 on x86 CPUs without VNNI (AVX2, AVX-512F), where ONNX Runtime's u8 x s8 integer kernels
add pairs of products in int16 and 8-bit weights saturate them. The CPU layout quantizes weights
to 7 bits; the TensorRT layout keeps 8 and runs in ONNX Runtime with its Q/DQ nodes unfused.

The comparisons of fused and unfused outputs fail on such a CPU without those measures, and pass
anywhere with them (on a VNNI CPU both ways agree)."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from infusionnet.export.precision import to_int8
from infusionnet.runtime.ort_backend import OnnxRuntimeBackend, fuses_qdq
from infusionnet.runtime.manifest import TensorSpec
from infusionnet.runtime.stylizer import make_backends
from runtime_exports import export

SHAPE = (1, 16, 8, 8)


def _saturating_convs(count: int, path) -> None:
    """``count`` chained 3x3 'same' convs whose quantized products sit at the top of both ranges:
    positive activations (uint8 near 255 in the CPU layout) times equal positive weights (127 in
    8 bits), the worst case for int16 pair sums. Chained, the first one's output is the second
    one's quantized input, so ONNX Runtime fuses it even in the TensorRT layout."""
    nodes, initializers, previous = [], [], "x"
    for index in range(count):
        weight = f"w{index}"
        initializers.append(numpy_helper.from_array(np.full((16, 16, 3, 3), 0.01, np.float32), weight))
        output = "y" if index == count - 1 else f"h{index}"
        nodes.append(helper.make_node("Conv", [previous, weight], [output], name=f"conv{index}", pads=[1, 1, 1, 1]))
        previous = output
    graph = helper.make_graph(nodes, "convs", [helper.make_tensor_value_info("x", TensorProto.FLOAT, SHAPE)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, SHAPE)], initializers)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))


def _feeds():
    return [{"x": np.random.default_rng(seed).uniform(0.9, 1.0, SHAPE).astype(np.float32)} for seed in range(2)]


def _run(path, level="ORT_ENABLE_ALL"):
    options = ort.SessionOptions()
    options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, level)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]).run(None, _feeds()[0])[0]


def _int8_weights(path) -> list:
    model = onnx.load(str(path))
    constants = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    return [constants[node.input[0]] for node in model.graph.node
            if node.op_type == "DequantizeLinear" and node.input[0] in constants
            and constants[node.input[0]].dtype == np.int8]


@pytest.mark.parametrize("target, largest", [("cpu", 64), ("tensorrt", 127)])
def test_cpu_layout_weights_are_7_bit_so_int16_pair_sums_cannot_saturate(tmp_path, target, largest):
    # 2 x 255 x 64 fits under 32767, 2 x 255 x 127 does not; TensorRT has no such limit.
    _saturating_convs(1, tmp_path / "conv.onnx")
    quantized = to_int8(tmp_path / "conv.onnx", tmp_path / "int8.onnx", _feeds(), "minmax", int8_target=target)
    weights = _int8_weights(quantized)
    assert weights and max(int(np.abs(w).max()) for w in weights) == largest


def test_cpu_layout_runs_its_fused_kernels_as_accurately_as_the_unfused_graph(tmp_path):
    # Without VNNI the fused QLinearConv of 8-bit weights came out at about half the unfused value.
    _saturating_convs(1, tmp_path / "conv.onnx")
    quantized = to_int8(tmp_path / "conv.onnx", tmp_path / "int8.onnx", _feeds(), "minmax", int8_target="cpu")
    unfused = _run(quantized, "ORT_DISABLE_ALL")
    np.testing.assert_allclose(unfused, _run(tmp_path / "conv.onnx"), rtol=0.02)
    np.testing.assert_allclose(_run(quantized), unfused, rtol=0.01)


def test_tensorrt_layout_runs_unfused_in_onnx_runtime_and_gets_the_q_dq_values(tmp_path):
    _saturating_convs(2, tmp_path / "convs.onnx")
    quantized = to_int8(tmp_path / "convs.onnx", tmp_path / "int8.onnx", _feeds(), "minmax", int8_target="tensorrt")
    spec = [TensorSpec("x", SHAPE, "float32")]
    with OnnxRuntimeBackend(quantized, spec, [TensorSpec("y", SHAPE, "float32")], provider="cpu",
                            fuse_qdq=fuses_qdq("tensorrt")) as backend:
        got = backend.run(_feeds()[0])["y"]
        assert "Q/DQ unfused" in backend.description
    np.testing.assert_allclose(got, _run(quantized, "ORT_DISABLE_ALL"), rtol=1e-5)
    np.testing.assert_allclose(got, _run(tmp_path / "convs.onnx"), rtol=0.03)


def test_only_the_tensorrt_layout_is_run_unfused():
    assert [fuses_qdq(target) for target in (None, "cpu", "openvino", "tensorrt")] == [True, True, True, False]


def test_the_runtime_opens_tensorrt_layout_exports_unfused_and_others_fused():
    int8 = make_backends(export("split", dynamic=False, content=(64, 64), precision="int8"))
    fp32 = make_backends(export("split", dynamic=False, content=(64, 64)))
    assert {b.fuse_qdq for b in int8.values()} == {False} and {b.fuse_qdq for b in fp32.values()} == {True}
