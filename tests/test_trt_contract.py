"""Contract tests of the TensorRT glue against the TensorRT 10.13 type stubs (tensorrt-stubs) and
pycuda's API, with no TensorRT and no GPU: ``tests/stub_fakes.py`` makes a ``tensorrt`` module
that only has what the stubs declare and checks every call's arguments against them.

They assert what the project calls, in which order and with which arguments: the plugin registry
before deserializing, every tensor address before enqueueing, CUDA-graph capture brackets,
balanced primary-context retains, and the 8.5 / 8.6 / 10 build branches."""
import ctypes
import hashlib
import sys
from types import ModuleType
from typing import Dict

import numpy as np
import pytest

from stub_fakes import STUBS_MISSING, FakeCuda, fake_tensorrt, instance, stub_file

from infusionnet.runtime.engine_sidecar import EngineSidecar, platform_tag, write_sidecar
from infusionnet.runtime.trt_plan import ShapeRange, TensorSpec

pytestmark = pytest.mark.skipif(stub_file() is None, reason=STUBS_MISSING)

CONTENT = TensorSpec("content", (1, 3, 32, 32), "float32")
KERNEL = TensorSpec("kernel", (1, 8, 1, 3, 3), "float32")
OUT = TensorSpec("stylized", (1, 3, 32, 32), "float32")
TENSORS = {"content": (True, CONTENT), "kernel": (True, KERNEL), "stylized": (False, OUT)}


def runtime_behaviour(trt_holder: Dict[str, ModuleType], plugins_ok: bool = True, engine_ok: bool = True):
    """What the real bindings return, for the calls the runtime makes (addresses, shapes, modes)."""
    names = list(TENSORS)

    def trt():
        return trt_holder["trt"]

    def deserialize(runtime, data):
        return instance(trt(), "ICudaEngine") if engine_ok else None

    return {
        "init_libnvinfer_plugins": lambda logger, namespace: plugins_ok,
        "Runtime.deserialize_cuda_engine": deserialize,
        "ICudaEngine.num_io_tensors": lambda engine: len(names),
        "ICudaEngine.get_tensor_name": lambda engine, index: names[index],
        "ICudaEngine.get_tensor_mode": lambda engine, name: (trt().TensorIOMode.INPUT if TENSORS[name][0]
                                                             else trt().TensorIOMode.OUTPUT),
        "ICudaEngine.get_tensor_dtype": lambda engine, name: trt().DataType.FLOAT,
        "ICudaEngine.create_execution_context": lambda engine, *a, **k: instance(trt(), "IExecutionContext"),
        "IExecutionContext.set_tensor_address": lambda context, name, address: True,
        "IExecutionContext.set_input_shape": lambda context, name, shape: True,
        "IExecutionContext.get_tensor_shape": lambda context, name: TENSORS[name][1].shape,
        "IExecutionContext.execute_async_v3": lambda context, stream_handle: True,
    }


def write_engine(tmp_path, version="10.13.0.35", options=None):
    engine = tmp_path / "content.engine"
    data = b"serialized engine"
    engine.write_bytes(data)
    write_sidecar(engine, EngineSidecar(
        engine_file=engine.name, engine_bytes=len(data), engine_sha256=hashlib.sha256(data).hexdigest(),
        role="content", precision="fp16", tensorrt_version=version, gpu_name="Fake GPU", compute_capability="9.0",
        platform=platform_tag(), inputs=(CONTENT, KERNEL), outputs=(OUT,),
        profiles=({"content": ShapeRange(*(CONTENT.shape,) * 3), "kernel": ShapeRange(*(KERNEL.shape,) * 3)},),
        onnx_file="content.onnx", onnx_sha256="0" * 64, build_time="2026-01-01T00:00:00+00:00", build_seconds=1.0,
        build_command="infusionnet export trt --onnx e --precision fp16 --output x --overwrite",
        options=options or {}))
    return engine


class FakeLibcuda(object):
    """libcuda's graph entry points (what CudaGraphs loads with ctypes), recording calls."""

    def __init__(self, calls):
        for symbol in ("cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphInstantiateWithFlags",
                       "cuGraphLaunch", "cuGraphExecDestroy", "cuGraphDestroy"):
            setattr(self, symbol, lambda *args, _s=symbol: calls.append((_s, args)) or 0)


@pytest.fixture
def fakes(monkeypatch):
    """Install a fake tensorrt (from the stubs) and pycuda; returns (trt, world, cuda)."""
    holder = {}  # type: Dict[str, ModuleType]

    def install(version="10.13.0.35", hide=(), **behaviour_options):
        trt, world = fake_tensorrt(runtime_behaviour(holder, **behaviour_options), version=version, hide=hide)
        holder["trt"] = trt
        cuda = FakeCuda()
        package = ModuleType("pycuda")
        driver = ModuleType("pycuda.driver")
        for name in ("init", "Device", "Context", "Stream", "mem_alloc", "pagelocked_empty", "memcpy_htod_async",
                     "memcpy_dtoh_async", "memcpy_dtoh", "host_alloc_flags"):
            setattr(driver, name, getattr(cuda, name))
        package.driver = driver
        monkeypatch.setitem(sys.modules, "tensorrt", trt)
        monkeypatch.setitem(sys.modules, "pycuda", package)
        monkeypatch.setitem(sys.modules, "pycuda.driver", driver)
        monkeypatch.setattr(ctypes, "CDLL", lambda name: FakeLibcuda(cuda.calls))
        return trt, world, cuda
    return install


def test_the_fake_exposes_only_what_the_stubs_declare():
    trt, world = fake_tensorrt({})
    assert hasattr(trt.IExecutionContext, "execute_async_v3") and hasattr(trt.ICudaEngine, "num_io_tensors")
    assert not hasattr(trt.IExecutionContext, "execute_async_v2")  # removed in TensorRT 10
    assert not hasattr(trt.ICudaEngine, "get_binding_index")
    with pytest.raises(AttributeError, match="not in the stubs"):
        trt.volume_of_everything  # noqa: B018
    context = instance(trt, "IExecutionContext")
    with pytest.raises(TypeError, match="matches none of the stub's signatures"):
        context.set_tensor_address("content")  # the stub wants (name, memory)
    with pytest.raises(AttributeError, match="no attribute 'made_up'"):
        context.made_up = 1
    with pytest.raises(NotImplementedError, match="IExecutionContext.execute_async_v3"):
        context.execute_async_v3(0)


def test_open_run_close_order_on_tensorrt_10(fakes, tmp_path):
    from infusionnet.runtime.trt_backend import TensorRTBackend

    trt, world, cuda = fakes()
    backend = TensorRTBackend(write_engine(tmp_path))
    with backend:
        outputs = backend.run({"content": np.ones(CONTENT.shape, np.float32),
                               "kernel": np.ones(KERNEL.shape, np.float32)})
    assert outputs["stylized"].shape == OUT.shape
    names = world.names()
    # The plugin registry is filled before the engine is deserialized (8.5/8.6 InstanceNorm plugin).
    assert names.index("init_libnvinfer_plugins") < names.index("Runtime.deserialize_cuda_engine")
    logger = world.called("Logger.__init__")[0][0][0]
    assert world.called("init_libnvinfer_plugins")[0][0][1] == ""
    assert logger == trt.Logger.WARNING
    # Every input and output has an address before the first enqueue; enqueue gets the stream handle.
    first_run = names.index("IExecutionContext.execute_async_v3")
    addressed = {args[0] for args, _ in world.called("IExecutionContext.set_tensor_address")}
    before = {world.calls[i][1][0] for i in range(first_run) if world.calls[i][0] == "IExecutionContext.set_tensor_address"}
    assert before == addressed == set(TENSORS)
    assert world.called("IExecutionContext.execute_async_v3") == [((0xABC,), {})]
    # Inputs are copied in before the enqueue and the output out after it.
    copies = [name for name, _ in cuda.calls if name.startswith("memcpy")]
    assert copies == ["memcpy_htod_async", "memcpy_htod_async", "memcpy_dtoh_async"]
    # One primary-context retain, given back on close; every push popped; device memory freed.
    assert cuda.names().count("retain_primary_context") == cuda.names().count("Context.detach") == 1
    assert cuda.retained == 0
    assert cuda.names().count("Context.push") == cuda.names().count("Context.pop")
    assert cuda.names().count("mem_alloc") == cuda.names().count("DeviceAllocation.free") == 3


def test_reopening_does_not_leak_context_retains(fakes, tmp_path):
    from infusionnet.runtime.trt_backend import TensorRTBackend

    _, _, cuda = fakes()
    backend = TensorRTBackend(write_engine(tmp_path))
    for _ in range(3):
        backend.open()
        backend.close()
    assert cuda.names().count("retain_primary_context") == 3 and cuda.retained == 0


def test_failed_deserialization_still_releases_the_context(fakes, tmp_path):
    from infusionnet.runtime.engine_sidecar import EngineMismatchError
    from infusionnet.runtime.trt_backend import TensorRTBackend

    _, _, cuda = fakes(engine_ok=False)
    with pytest.raises(EngineMismatchError, match="could not deserialize .* rebuild it on this machine"):
        TensorRTBackend(write_engine(tmp_path)).open()
    assert cuda.retained == 0


def test_plugin_engine_without_the_plugin_library_says_so_instead_of_rebuild(fakes, tmp_path):
    from infusionnet.runtime.backend import BackendError
    from infusionnet.runtime.trt_backend import TensorRTBackend

    fakes(version="8.5.2.2", hide=("OnnxParserFlag",), plugins_ok=False, engine_ok=False)
    engine = write_engine(tmp_path, version="8.5.2.2", options={"plugin_layers": ["InstanceNormalization_TRT_0"]})
    with pytest.raises(BackendError, match=r"plugin layers \(InstanceNormalization_TRT_0\).*libnvinfer_plugin") as error:
        TensorRTBackend(engine).open()
    assert "rebuild" not in str(error.value)


def test_cuda_graph_capture_brackets_the_enqueue(fakes, tmp_path):
    from infusionnet.runtime.trt_backend import TensorRTBackend

    _, world, cuda = fakes()
    feeds = {"content": np.ones(CONTENT.shape, np.float32), "kernel": np.ones(KERNEL.shape, np.float32)}
    with TensorRTBackend(write_engine(tmp_path), cuda_graph=True) as backend:
        for _ in range(3):
            backend.run(feeds)
    graph = [name for name, _ in cuda.calls if name.startswith("cu")]
    # Run 1: a plain enqueue (TensorRT's deferred setup), then capture; runs 2 and 3 replay.
    assert graph == ["cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphInstantiateWithFlags",
                     "cuGraphDestroy", "cuGraphLaunch", "cuGraphLaunch", "cuGraphExecDestroy"]
    assert world.names().count("IExecutionContext.execute_async_v3") == 2  # warm-up + the captured one
    begin = next(args for name, args in cuda.calls if name == "cuStreamBeginCapture_v2")
    assert begin[0].value == 0xABC and begin[1].value == 1  # our stream, thread-local capture mode


def test_pycuda_without_a_driver_is_no_gpu_not_a_missing_package(monkeypatch):
    from infusionnet.runtime import trt_backend
    from infusionnet.runtime.backend import BackendError

    class NoDriver(object):
        def find_spec(self, name, path=None, target=None):
            if name == "pycuda.driver":
                raise ImportError("libcuda.so.1: cannot open shared object file")
            return None

    monkeypatch.delitem(sys.modules, "pycuda.driver", raising=False)
    monkeypatch.delitem(sys.modules, "pycuda", raising=False)
    monkeypatch.setitem(sys.modules, "pycuda", ModuleType("pycuda"))
    sys.modules["pycuda"].__path__ = []  # a package, as installed
    monkeypatch.setattr(sys, "meta_path", [NoDriver()] + sys.meta_path)
    with pytest.raises(BackendError, match="no usable NVIDIA GPU: pycuda cannot load the CUDA driver"):
        trt_backend.import_pycuda(0)
    monkeypatch.setitem(sys.modules, "pycuda", None)  # not installed
    with pytest.raises(BackendError, match="needs pycuda: pip install pycuda"):
        trt_backend.import_pycuda(0)


# --------------------------------------------------------------------------- export trt

def _polygraphy_parameters(name: str):
    """Parameter names of Polygraphy's real loader ``name`` (and its bases), if it is installed."""
    import inspect

    try:
        from polygraphy.backend import trt as real
    except ImportError:
        return None
    target = getattr(real, name)
    if not inspect.isclass(target):  # Calibrator is a factory function
        return set(inspect.signature(target).parameters)
    names = set()
    for cls in inspect.getmro(target):  # CreateConfig passes **kwargs on to its base
        if "__init__" in vars(cls):
            names.update(p for p in inspect.signature(cls.__init__).parameters if p != "self")
    return names


class FakePolygraphy(ModuleType):
    """polygraphy.backend.trt's loaders as the build uses them; keyword arguments are checked
    against the installed Polygraphy's signatures, and the network and config callables are run
    the way EngineBytesFromNetwork runs them."""

    def __init__(self, trt, layers):
        super().__init__("polygraphy.backend.trt")
        self.calls = []
        fake = self

        def loader(name, run):
            known = _polygraphy_parameters(name)  # read now, before the fake replaces the real module

            class Loader(object):
                def __init__(self, *args, **kwargs):
                    unknown = sorted(set(kwargs) - known) if known is not None else []
                    if unknown:
                        raise TypeError(f"Polygraphy's {name} takes no {unknown}")
                    self.args, self.kwargs = args, kwargs
                    fake.calls.append((name, args, kwargs))

                def __call__(self, *args):
                    return run(self, *args)
            Loader.__name__ = name
            return Loader

        def parse(loader_self):
            network = instance(trt, "INetworkDefinition")
            object.__setattr__(network, "_layers", layers)
            return instance(trt, "Builder"), network, instance(trt, "OnnxParser")

        def build(loader_self):
            builder, network, parser = loader_self.args[0]()
            loader_self.kwargs["config"](builder, network)
            return b"engine:" + str(len(layers)).encode()

        self.NetworkFromOnnxPath = loader("NetworkFromOnnxPath", parse)
        self.CreateConfig = loader("CreateConfig", lambda s, builder, network: instance(trt, "IBuilderConfig"))
        self.EngineBytesFromNetwork = loader("EngineBytesFromNetwork", build)
        self.Calibrator = loader("Calibrator", lambda s: None)

        class Profile(dict):
            def add(self, name, min, opt, max):  # noqa: A002 - Polygraphy's parameter names
                self[name] = (min, opt, max)
                return self
        self.Profile = Profile


LAYERS = [("/AdaConv_h/InstanceNormalization", "NORMALIZATION"), ("/conv/Conv", "CONVOLUTION")]


def build_behaviour(holder, layers):
    trt = lambda: holder["trt"]  # noqa: E731
    layer_objects = {}

    def get_layer(network, index):
        if index not in layer_objects:
            layer = instance(trt(), "ILayer")
            object.__setattr__(layer, "_fake_values", {"name": layers[index][0],
                                                      "type": getattr(trt().LayerType, layers[index][1]),
                                                      "num_outputs": 1})
            layer_objects[index] = layer
        return layer_objects[index]

    return {"INetworkDefinition.num_layers": lambda network: len(layers),
            "INetworkDefinition.get_layer": get_layer,
            "ILayer.set_output_type": lambda layer, index, dtype: None,
            "Builder.num_DLA_cores": lambda builder: 2}


def write_export(tmp_path, precision="fp16"):
    import json

    from infusionnet.runtime.manifest import FORMAT

    directory = tmp_path / "export"
    directory.mkdir()
    (directory / "baked.onnx").write_bytes(b"not parsed by the fake")
    content = {"name": "content", "shape": [1, 3, 64, 64], "dtype": "float32"}
    stylized = {"name": "stylized", "shape": [1, 3, 64, 64], "dtype": "float32"}
    (directory / "manifest.json").write_text(json.dumps({
        "format": FORMAT, "graph_kind": "baked", "variant": "infusionnet", "precision": precision,
        "int8_target": "tensorrt" if precision == "int8" else None, "opset": 17, "batch": 1,
        "content_size": [64, 64], "dynamic_size": False, "style_size": 96,
        "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "checkpoint": {"file": None, "sha256": "untrained-seed-0"}, "exporter": {},
        "graphs": [{"role": "baked", "file": "baked.onnx", "inputs": [content], "outputs": [stylized]}]}))
    return directory


@pytest.fixture
def build_fakes(fakes, monkeypatch):
    """fakes plus Polygraphy: install(version, hide, layers) -> (trt, world, poly)."""
    def install(version, hide=(), layers=LAYERS):
        trt, world, cuda = fakes(version=version, hide=hide)
        world.behaviour.update(build_behaviour({"trt": trt}, layers))
        poly = FakePolygraphy(trt, layers)
        package = ModuleType("polygraphy")
        backend = ModuleType("polygraphy.backend")
        backend.trt = poly
        package.backend = backend
        for name, module in (("polygraphy", package), ("polygraphy.backend", backend),
                             ("polygraphy.backend.trt", poly)):
            monkeypatch.setitem(sys.modules, name, module)
        return trt, world, poly
    return install


def _build(tmp_path, precision, **options):
    from infusionnet.export.trt_build import BuildOptions, build_engines
    from infusionnet.runtime.engine_sidecar import read_sidecar

    output = build_engines(write_export(tmp_path, "int8" if precision == "int8" else "fp32"), tmp_path / "engines",
                           BuildOptions(precision, **options), log=lambda *a: None)
    return read_sidecar(output / "baked.engine")


def test_tensorrt_10_builds_qdq_graphs_strongly_typed_without_precision_flags(build_fakes, tmp_path):
    trt, world, poly = build_fakes("10.13.0.35")
    sidecar = _build(tmp_path, "int8")
    (_, parse_args, parse_kwargs), = [c for c in poly.calls if c[0] == "NetworkFromOnnxPath"]
    assert parse_kwargs == {"flags": [trt.OnnxParserFlag.NATIVE_INSTANCENORM], "strongly_typed": True}
    (_, _, config), = [c for c in poly.calls if c[0] == "CreateConfig"]
    assert not config["fp16"] and not config["int8"] and config["precision_constraints"] is None
    assert "ILayer.precision=" not in world.names()  # layer pins are refused in strongly typed networks
    assert sidecar.options["strongly_typed"] and sidecar.options["plugin_layers"] == []


def test_tensorrt_10_fp16_pins_normalization_with_obeyed_constraints(build_fakes, tmp_path):
    trt, world, poly = build_fakes("10.13.0.35")
    sidecar = _build(tmp_path, "fp16")
    (_, _, parse_kwargs), = [c for c in poly.calls if c[0] == "NetworkFromOnnxPath"]
    assert parse_kwargs == {"flags": [trt.OnnxParserFlag.NATIVE_INSTANCENORM]}
    (_, _, config), = [c for c in poly.calls if c[0] == "CreateConfig"]
    assert config["fp16"] and config["precision_constraints"] == "obey"
    assert world.called("ILayer.precision=") == [((trt.float32,), {})]
    assert world.called("ILayer.set_output_type") == [((0, trt.float32), {})]
    assert sidecar.options["fp32_layers"] == ["/AdaConv_h/InstanceNormalization"]


def test_tensorrt_8_6_sets_the_native_instancenorm_flag(build_fakes, tmp_path):
    trt, world, poly = build_fakes("8.6.1.6", hide=("NetworkDefinitionCreationFlag.STRONGLY_TYPED",))
    sidecar = _build(tmp_path, "int8")
    (_, _, parse_kwargs), = [c for c in poly.calls if c[0] == "NetworkFromOnnxPath"]
    assert parse_kwargs == {"flags": [trt.OnnxParserFlag.NATIVE_INSTANCENORM]}  # not strongly typed on 8.x
    (_, _, config), = [c for c in poly.calls if c[0] == "CreateConfig"]
    assert config["int8"] and config["fp16"] and config["precision_constraints"] == "obey"
    assert sidecar.options["parser_flags"] == ["NATIVE_INSTANCENORM"] and not sidecar.options["strongly_typed"]


def test_tensorrt_8_5_records_the_instancenorm_plugin_and_keeps_it_off_dla(build_fakes, tmp_path):
    layers = [("InstanceNormalization_TRT_0", "PLUGIN_V2"), ("/conv/Conv", "CONVOLUTION")]
    trt, world, poly = build_fakes("8.5.2.2", hide=("OnnxParserFlag", "NetworkDefinitionCreationFlag.STRONGLY_TYPED"),
                                   layers=layers)
    sidecar = _build(tmp_path, "fp16", dla_core=1)
    (_, _, parse_kwargs), = [c for c in poly.calls if c[0] == "NetworkFromOnnxPath"]
    assert parse_kwargs == {}  # 8.5's parser has no flags: InstanceNorm is always the plugin
    assert sidecar.options["plugin_layers"] == ["InstanceNormalization_TRT_0"]
    assert sidecar.options["fp32_layers"] == ["InstanceNormalization_TRT_0"]
    assert world.called("IBuilderConfig.DLA_core=") == [((1,), {})]
