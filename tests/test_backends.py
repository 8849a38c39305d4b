"""Backends: the shared input checks, ONNX Runtime (on a tiny graph), PyTorch (on the model),
and TensorRT's refusals on a machine without it."""
import sys
from types import ModuleType, SimpleNamespace

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from infusionnet.models.torch_backend import TorchBackend
from infusionnet.runtime.backend import BackendError, InputError, check_feeds
from infusionnet.runtime.ort_backend import OnnxRuntimeBackend, choose_providers
from infusionnet.runtime.trt_plan import ShapeRange, TensorSpec
from trt_env import real_tensorrt

CONTENT = TensorSpec("content", (1, 3, "height", "width"), "float32")
BIAS = TensorSpec("bias", (1, 3, 1, 1), "float32")
OUT = TensorSpec("stylized", (1, 3, "height", "width"), "float32")


# --------------------------------------------------------------------------- input checks

def _image(h=16, w=24, dtype=np.float32):
    return np.zeros((1, 3, h, w), dtype)


def test_check_feeds_accepts_and_makes_contiguous():
    strided = np.zeros((1, 3, 16, 48), np.float32)[:, :, :, ::2]
    arrays = check_feeds("content", [CONTENT, BIAS], {"content": strided, "bias": np.zeros((1, 3, 1, 1), np.float32)})
    assert arrays["content"].flags.c_contiguous and arrays["content"].shape == (1, 3, 16, 24)


@pytest.mark.parametrize("feeds, held, message", [
    ({"content": _image()}, (), r"needs input 'bias'"),
    ({"content": _image(), "bias": np.zeros((1, 3, 1, 1), np.float32), "extra": _image()}, (),
     r"has no input 'extra' \(its inputs: content, bias\)"),
    ({"content": _image(), "bias": np.zeros((1, 3, 1, 1), np.float32)}, ("bias",), r"'bias' is held"),
    ({"content": _image(dtype=np.float64)}, ("bias",), r"'content' is float64, the graph takes float32"),
    ({"content": np.zeros((3, 16, 16), np.float32)}, ("bias",), r"expected rank 4"),
    ({"content": _image(20, 24)}, ("bias",), r"height 20: dynamic sizes must be multiples of 8"),
    ({"content": [[1.0]]}, ("bias",), r"must be a numpy array"),
])
def test_check_feeds_refuses(feeds, held, message):
    with pytest.raises(InputError, match=message):
        check_feeds("content", [CONTENT, BIAS], feeds, held)


def test_check_feeds_fixed_axes_and_profiles():
    static = TensorSpec("content", (1, 3, 32, 32), "float32")
    with pytest.raises(InputError, match=r"axis 2 is fixed at 32"):
        check_feeds("full", [static], {"content": _image(16, 32)})
    profile = {"content": ShapeRange((1, 3, 16, 16), (1, 3, 32, 32), (1, 3, 64, 64))}
    check_feeds("content", [CONTENT], {"content": _image(64, 16)}, profile=profile)
    with pytest.raises(InputError, match=r"outside the engine's profile .*--min/--max"):
        check_feeds("content", [CONTENT], {"content": _image(72, 16)}, profile=profile)


# --------------------------------------------------------------------------- ONNX Runtime

def test_choose_providers_prefers_tensorrt_then_cuda_then_cpu():
    everything = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider", "AzureExecutionProvider"]
    assert choose_providers(everything) == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(everything, "cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(["AzureExecutionProvider", "CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(BackendError, match="CUDAExecutionProvider is not available.*onnxruntime-gpu"):
        choose_providers(["CPUExecutionProvider"], "cuda")
    with pytest.raises(BackendError, match="unknown ONNX Runtime provider 'rocm'"):
        choose_providers(["CPUExecutionProvider"], "rocm")


@pytest.fixture(scope="module")
def add_graph(tmp_path_factory):
    """stylized = content + bias, with a dynamic height and width: small, but real ONNX."""
    inputs = [helper.make_tensor_value_info("content", TensorProto.FLOAT, [1, 3, "height", "width"]),
              helper.make_tensor_value_info("bias", TensorProto.FLOAT, [1, 3, 1, 1])]
    output = helper.make_tensor_value_info("stylized", TensorProto.FLOAT, [1, 3, "height", "width"])
    graph = helper.make_graph([helper.make_node("Add", ["content", "bias"], ["stylized"])], "add", inputs, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("onnx") / "add.onnx"
    onnx.save(model, str(path))
    return path


def test_onnxruntime_backend_runs_by_name_and_holds_inputs(add_graph):
    content = np.arange(3 * 16 * 24, dtype=np.float32).reshape(1, 3, 16, 24)
    bias = np.array([1, 2, 3], np.float32).reshape(1, 3, 1, 1)
    with OnnxRuntimeBackend(add_graph, [CONTENT, BIAS], [OUT], role="content", intra_op_threads=1) as backend:
        assert backend.provider == "CPUExecutionProvider"
        assert "CPUExecutionProvider" in backend.description and "1 threads" in backend.description
        out = backend.run({"content": content, "bias": bias})
        np.testing.assert_array_equal(out["stylized"], content + bias)
        backend.hold({"bias": bias * 10})
        for height in (16, 32):  # dynamic sizes with the held input still bound
            frame = np.ones((1, 3, height, 24), np.float32)
            np.testing.assert_array_equal(backend.run({"content": frame})["stylized"], frame + bias * 10)
        device_values = backend.run_on_device({"content": content})
        np.testing.assert_array_equal(device_values["stylized"].numpy(), content + bias * 10)
        backend.release()
        with pytest.raises(InputError, match="needs input 'bias'"):
            backend.run({"content": content})
    with pytest.raises(BackendError, match="not open"):
        backend.run({"content": content, "bias": bias})


def test_onnxruntime_backend_refuses_a_manifest_that_does_not_match(add_graph, tmp_path):
    wrong = TensorSpec("style", (1, 3, 1, 1), "float32")
    with pytest.raises(BackendError, match=r"has no tensor 'style'.*does not belong to this manifest"):
        OnnxRuntimeBackend(add_graph, [CONTENT, wrong], [OUT]).open()
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a protobuf")
    with pytest.raises(BackendError, match="ONNX Runtime cannot load .*broken.onnx"):
        OnnxRuntimeBackend(broken, [CONTENT], [OUT]).open()
    with pytest.raises(BackendError, match="CUDAExecutionProvider is not available"):
        OnnxRuntimeBackend(add_graph, [CONTENT, BIAS], [OUT], provider="cuda").open()


# --------------------------------------------------------------------------- PyTorch

@pytest.fixture(scope="module")
def model():
    from infusionnet.models import build_model
    return build_model("infusionnet", seed=3)


def _normalized(shape, seed):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def test_torch_split_roles_match_the_model(model):
    style, content = _normalized((1, 3, 96, 96), 1), _normalized((1, 3, 32, 40), 2)
    with TorchBackend.for_role(model, "style", style_size=96) as styler, \
            TorchBackend.for_role(model, "content", style_size=96) as frames:
        kernels = styler.run({"style": style})
        assert list(kernels) == frames.input_names[1:]  # same names, same order as the ONNX graphs
        assert kernels["AdaOctConv1_1.h.spatial"].shape == (1, 128, 1, 3, 3)
        frames.hold(styler.run_on_device({"style": style}))
        out = frames.run({"content": content})["stylized"]
    with torch.no_grad():
        expected = model(torch.from_numpy(content), torch.from_numpy(style)).numpy()
    assert out.dtype == np.float32 and out.shape == (1, 3, 32, 40)
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_torch_full_baked_and_options_agree(model):
    style, content = _normalized((1, 3, 96, 96), 4), _normalized((1, 3, 16, 24), 5)
    with TorchBackend.for_role(model, "full", content_size=(16, 24), style_size=96) as full:
        reference = full.run({"content": content, "style": style})["stylized"]
    with TorchBackend.for_role(model, "baked", content_size=(16, 24), style_size=96, baked_style=style) as baked:
        np.testing.assert_allclose(baked.run({"content": content})["stylized"], reference, atol=1e-5)
    with TorchBackend.for_role(model, "full", content_size=(16, 24), style_size=96, channels_last=True) as fast:
        assert "channels-last" in fast.description
        np.testing.assert_allclose(fast.run({"content": content, "style": style})["stylized"], reference, atol=1e-4)
    assert next(model.parameters()).is_contiguous()  # the caller's model was not converted


@pytest.mark.slow
def test_torch_compile_runs_the_same_stage(model):
    style, content = _normalized((1, 3, 96, 96), 4), _normalized((1, 3, 16, 24), 5)
    with TorchBackend.for_role(model, "full", content_size=(16, 24), style_size=96) as plain, \
            TorchBackend.for_role(model, "full", content_size=(16, 24), style_size=96, compile=True,
                                  compile_backend="eager") as compiled:  # eager: no C++ toolchain needed
        assert "compiled:eager" in compiled.description
        np.testing.assert_allclose(compiled.run({"content": content, "style": style})["stylized"],
                                   plain.run({"content": content, "style": style})["stylized"], atol=1e-5)


@pytest.mark.slow
def test_torch_fp16_stays_close_and_keeps_float32_io(model):
    style, content = _normalized((1, 3, 96, 96), 6), _normalized((1, 3, 16, 16), 7)
    with TorchBackend.for_role(model, "full", style_size=96) as fp32, \
            TorchBackend.for_role(model, "full", style_size=96, fp16=True) as fp16:
        a = fp32.run({"content": content, "style": style})["stylized"]
        b = fp16.run({"content": content, "style": style})["stylized"]
    assert b.dtype == np.float32
    assert np.abs(a - b).max() < 0.05
    assert next(model.parameters()).dtype == torch.float32


def test_torch_backend_errors(model):
    with pytest.raises(BackendError, match="baked_style"):
        TorchBackend.for_role(model, "baked", style_size=96)
    with pytest.raises(BackendError, match="unknown graph role 'decoder'"):
        TorchBackend.for_role(model, "decoder", style_size=96)
    if not torch.cuda.is_available():
        with pytest.raises(BackendError, match="PyTorch sees no CUDA GPU"):
            TorchBackend.for_role(model, "full", style_size=96, device="cuda")


# --------------------------------------------------------------------------- TensorRT refusals

def _fake_engine(tmp_path):
    """An engine file with a valid sidecar; the bytes are not a real engine."""
    import hashlib

    from infusionnet.runtime.engine_sidecar import EngineSidecar, write_sidecar

    engine = tmp_path / "content.engine"
    data = b"\x00" * 64
    engine.write_bytes(data)
    write_sidecar(engine, EngineSidecar(
        engine_file=engine.name, engine_bytes=len(data), engine_sha256=hashlib.sha256(data).hexdigest(),
        role="content", precision="fp16", tensorrt_version="10.3.0.26", gpu_name="NVIDIA H100",
        compute_capability="9.0", platform="Linux-x86_64", inputs=(CONTENT,), outputs=(OUT,),
        profiles=({"content": ShapeRange((1, 3, 16, 16), (1, 3, 32, 32), (1, 3, 64, 64))},),
        onnx_file="content.onnx", onnx_sha256="0" * 64, build_time="2025-01-01T00:00:00+00:00", build_seconds=1.0,
        build_command="infusionnet export trt --onnx e --precision fp16 --output x --overwrite", options={}))
    return engine


@pytest.mark.skipif(real_tensorrt(), reason="TensorRT is installed here")
def test_tensorrt_backend_without_tensorrt_says_how_to_install(tmp_path):
    from infusionnet.runtime.trt_backend import TensorRTBackend

    backend = TensorRTBackend(_fake_engine(tmp_path))
    assert backend.role == "content" and backend.input_names == ["content"]  # read from the sidecar alone
    with pytest.raises(BackendError, match=r"TensorRT is not installed: pip install \.\[tensorrt\].*JetPack"):
        backend.open()


def test_tensorrt_backend_without_a_gpu_says_so(tmp_path, monkeypatch):
    """TensorRT importable but no GPU: the CUDA driver finds no device."""
    from infusionnet.runtime import trt_backend

    fake_trt = SimpleNamespace(__version__="10.3.0.26", Runtime=object)
    monkeypatch.setattr(trt_backend, "import_tensorrt", lambda: fake_trt)
    monkeypatch.setattr(trt_backend, "require_runtime_features", lambda features: None)
    driver = ModuleType("pycuda.driver")
    driver.init = lambda: None
    driver.Device = SimpleNamespace(count=lambda: 0)
    package = ModuleType("pycuda")
    package.driver = driver
    monkeypatch.setitem(sys.modules, "pycuda", package)
    monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
    with pytest.raises(BackendError, match="no NVIDIA GPU found: TensorRT needs one"):
        trt_backend.TensorRTBackend(_fake_engine(tmp_path)).open()


def test_tensorrt_cuda_graph_needs_fixed_shapes(tmp_path):
    from infusionnet.runtime.trt_backend import TensorRTBackend

    with pytest.raises(BackendError, match="CUDA graphs need fixed shapes"):
        TensorRTBackend(_fake_engine(tmp_path), cuda_graph=True)
