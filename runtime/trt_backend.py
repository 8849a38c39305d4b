"""TensorRT backend: one engine, tensorrt + pycuda, no torch.

Deliberately thin (everything that can be decided without a GPU lives in trt_plan.py and
engine_sidecar.py, where it is tested):

- before deserializing, the sidecar is compared with this machine (TensorRT release, compute
  capability, platform) and the engine file with its recorded size and sha256;
- only the named-tensor API (``set_tensor_address``, ``set_input_shape``, ``execute_async_v3``,
  TensorRT 8.5+); nothing uses binding indices, which TensorRT 10 removed;
- buffers are allocated once, at the profile's largest shapes: page-locked host + device, or
  with ``zero_copy`` (Jetson, where CPU and GPU share memory) one mapped page-locked buffer the
  GPU reads directly;
- one CUDA stream; with ``cuda_graph`` the copies and the enqueue of a fixed-shape engine are
  captured once and replayed (CUDA driver calls through ctypes: pycuda has no graph API).
"""
import ctypes
import ctypes.util
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterable, Iterator, List, NamedTuple, Tuple

import numpy as np

from .backend import Arrays, Backend, BackendError
from .engine_sidecar import (EngineMismatchError, Environment, check_compatible, platform_tag, read_engine_bytes,
                             read_sidecar, rebuild_hint)
from .lazy import lazy_import, load, module_location
from .trt_plan import (BufferPlan, derive_profile, detect_features, is_dynamic, plan_buffers,
                       require_runtime_features, trt_dtype_name)

if TYPE_CHECKING:  # `make typecheck` checks the calls below against the TensorRT stubs
    import tensorrt
else:
    tensorrt = lazy_import("tensorrt")  # imported when a backend opens (import_tensorrt)
pycuda_driver = lazy_import("pycuda.driver")  # likewise (import_pycuda)

INSTALL_HINT = ("TensorRT is not installed: pip install .[tensorrt] (desktop; the wheels come from NVIDIA's "
                "index) or, on Jetson, use the python3-libnvinfer that JetPack installs")


def import_tensorrt():
    try:
        trt = load(tensorrt)
    except ImportError:
        raise BackendError(INSTALL_HINT) from None
    except Exception as error:  # the pip stub or a missing libnvinfer fails with other errors
        raise BackendError(f"TensorRT could not be imported ({type(error).__name__}: {error}); {INSTALL_HINT}") from None
    if not hasattr(trt, "Runtime"):
        # tensorrt-stubs' .pyi folder imports as an empty namespace package (no __file__)
        raise BackendError(f"the tensorrt module at {module_location(trt)} is not TensorRT's Python API (type "
                           f"stubs or a placeholder package); {INSTALL_HINT}")
    return trt


def init_plugins(trt, logger) -> bool:
    """Register TensorRT's built-in plugins (libnvinfer_plugin) with ``logger``; False if it failed.

    Needed before deserializing an engine with plugin layers and before parsing ONNX on 8.5/8.6,
    where InstanceNormalization becomes the InstanceNormalization_TRT plugin."""
    try:
        return bool(trt.init_libnvinfer_plugins(logger, ""))
    except Exception:  # the plugin library is a separate package on Jetson and may be missing
        return False


def import_pycuda(device_id: int = 0):
    """pycuda.driver, initialised, after checking that GPU ``device_id`` exists."""
    try:
        cuda = load(pycuda_driver)
    except ModuleNotFoundError as error:
        if error.name in ("pycuda", "pycuda.driver"):
            raise BackendError("the TensorRT backend needs pycuda: pip install pycuda (needs the CUDA toolkit)") from None
        raise BackendError(f"no usable NVIDIA GPU: pycuda cannot load the CUDA driver ({error})") from None
    except Exception as error:  # installed, but its import loads libcuda (an ImportError): no driver, no GPU
        raise BackendError(f"no usable NVIDIA GPU: pycuda cannot load the CUDA driver ({error})") from None
    try:
        cuda.init()
        count = cuda.Device.count()
    except Exception as error:
        raise BackendError(f"no usable NVIDIA GPU: the CUDA driver did not initialise ({error})") from None
    if count == 0:
        raise BackendError("no NVIDIA GPU found: TensorRT needs one (use --backend onnxruntime or torch)")
    if not 0 <= device_id < count:
        raise BackendError(f"GPU {device_id} asked for, but this machine has {count} (0..{count - 1})")
    return cuda


def _dims(dims: "tensorrt.Dims") -> Tuple[int, ...]:
    """A ``tensorrt.Dims`` as a tuple, by index: every release supports that (the stubs declare no
    iteration)."""
    return tuple(int(dims[index]) for index in range(len(dims)))


class DeviceTensor(NamedTuple):
    """An output left on the GPU by ``run_on_device``; valid until its backend runs again or closes."""
    pointer: int
    shape: Tuple[int, ...]
    dtype: str


class CudaGraphs(object):
    """The five CUDA driver calls that capture and replay a stream (from libcuda via ctypes)."""

    SYMBOLS = ("cuStreamBeginCapture_v2", "cuStreamEndCapture", "cuGraphInstantiateWithFlags", "cuGraphLaunch",
               "cuGraphExecDestroy", "cuGraphDestroy")
    THREAD_LOCAL = 1  # CU_STREAM_CAPTURE_MODE_THREAD_LOCAL: other threads' CUDA calls are not disturbed

    def __init__(self):
        name = "nvcuda.dll" if sys.platform == "win32" else (ctypes.util.find_library("cuda") or "libcuda.so.1")
        lib = ctypes.CDLL(name)
        missing = [s for s in self.SYMBOLS if not hasattr(lib, s)]
        if missing:
            raise BackendError(f"this CUDA driver lacks {', '.join(missing)} (CUDA 11.4+ needed for --cuda-graph)")
        self.lib = lib

    def _call(self, name: str, *args) -> None:
        status = getattr(self.lib, name)(*args)
        if status != 0:
            raise BackendError(f"CUDA {name} failed with error {status}")

    def capture(self, stream_handle: int, record) -> ctypes.c_void_p:
        """Record what ``record()`` enqueues on the stream; return an instantiated graph."""
        graph, executable = ctypes.c_void_p(), ctypes.c_void_p()
        self._call("cuStreamBeginCapture_v2", ctypes.c_void_p(stream_handle), ctypes.c_int(self.THREAD_LOCAL))
        try:
            record()
        finally:  # always end the capture, or the stream stays unusable
            self._call("cuStreamEndCapture", ctypes.c_void_p(stream_handle), ctypes.byref(graph))
        try:
            self._call("cuGraphInstantiateWithFlags", ctypes.byref(executable), graph, ctypes.c_ulonglong(0))
        finally:
            self._call("cuGraphDestroy", graph)
        return executable

    def launch(self, executable: ctypes.c_void_p, stream_handle: int) -> None:
        self._call("cuGraphLaunch", executable, ctypes.c_void_p(stream_handle))

    def destroy(self, executable: ctypes.c_void_p) -> None:
        self._call("cuGraphExecDestroy", executable)


class TensorRTBackend(Backend):
    """``TensorRTBackend(engine_path)``: the engine's sidecar supplies role and tensor specs.

    external: input names that will normally be held from another engine's ``run_on_device``
    outputs (the content engine's kernels): no buffer is allocated for them up front (one is,
    should a host array be held instead).
    """

    kind = "tensorrt"

    def __init__(self, engine_path, device_id: int = 0, zero_copy: bool = False, cuda_graph: bool = False,
                 external: Iterable[str] = ()):
        self.engine_path = Path(engine_path)
        self.sidecar = read_sidecar(self.engine_path)
        super().__init__(self.sidecar.role, self.sidecar.inputs, self.sidecar.outputs)
        self.device_id = device_id
        self.zero_copy = zero_copy
        self.cuda_graph = cuda_graph
        self.external = tuple(external)
        self.warnings = []  # type: List[str]
        self._profile = self.sidecar.profiles[0] if self.sidecar.profiles else derive_profile(self.inputs)
        if cuda_graph and not all(r.is_fixed for r in self._profile.values()):
            raise BackendError(f"{self.engine_path}: CUDA graphs need fixed shapes, and this engine has a dynamic "
                               "profile (rebuild without --min/--max, or drop --cuda-graph)")

    @property
    def description(self) -> str:
        extras = [x for x, on in (("zero-copy", self.zero_copy), ("cuda-graph", self.cuda_graph)) if on]
        return (f"tensorrt {self.sidecar.tensorrt_version} {self.sidecar.precision} on {self.sidecar.gpu_name}"
                + (f" ({', '.join(extras)})" if extras else ""))

    def profile(self):
        return self._profile

    # -- lifecycle ---------------------------------------------------------------------------
    @contextmanager
    def _current(self) -> Iterator[None]:
        """Make this backend's CUDA context current for the duration of a call."""
        self._cuda_context.push()
        try:
            yield
        finally:
            self._cuda.Context.pop()

    def _open(self) -> None:
        trt = import_tensorrt()
        require_runtime_features(detect_features(trt))
        cuda = import_pycuda(self.device_id)
        device = cuda.Device(self.device_id)
        here = Environment(trt.__version__, device.name(), "%d.%d" % device.compute_capability(), platform_tag())
        self.warnings = check_compatible(self.engine_path, self.sidecar, here)
        data = read_engine_bytes(self.engine_path, self.sidecar)
        self._trt, self._cuda = trt, cuda
        self._own, self._host, self._device = {}, {}, {}  # type: Dict[str, Any], Dict[str, Any], Dict[str, int]
        self._shapes = {}  # type: Dict[str, Tuple[int, ...]]
        self._graph = None  # type: Any
        self._graphs = CudaGraphs() if self.cuda_graph else None
        # One reference on the device's primary context, given back by _close (also when opening fails).
        self._cuda_context = device.retain_primary_context()
        try:
            with self._current():
                self._logger = trt.Logger(trt.Logger.WARNING)  # type: tensorrt.Logger
                self._runtime = trt.Runtime(self._logger)  # type: tensorrt.Runtime
                self._engine = self._deserialize(data)
                self._check_engine_tensors()
                self._context = self._engine.create_execution_context()  # type: tensorrt.IExecutionContext
                self._stream = cuda.Stream()
                self._allocate(plan_buffers(self.inputs, self.outputs, self._profile, self.external, self.zero_copy))
        except BaseException:
            self._close()
            raise

    def _deserialize(self, data: bytes) -> "tensorrt.ICudaEngine":
        trt = self._trt
        # TensorRT 8.5 (and 8.6 without the native flag) parses InstanceNormalization as the
        # InstanceNormalization_TRT plugin; such an engine only deserializes once the plugin
        # registry is filled. Polygraphy does this before building, so the build never shows it.
        plugins_ready = init_plugins(trt, self._logger)
        engine = self._runtime.deserialize_cuda_engine(data)
        if engine is not None:
            return engine
        plugins = self.sidecar.options.get("plugin_layers") or []
        if plugins and not plugins_ready:
            raise BackendError(f"{self.engine_path} uses TensorRT plugin layers ({', '.join(plugins[:3])}) and "
                               f"TensorRT's plugin library (libnvinfer_plugin) did not load here; install the "
                               f"TensorRT {trt.__version__} plugin library (JetPack: libnvinfer-plugin8/10)")
        raise EngineMismatchError(f"TensorRT {trt.__version__} could not deserialize {self.engine_path} "
                                  f"(its log above says why); {rebuild_hint(self.sidecar)}")

    def _check_engine_tensors(self) -> None:
        engine, trt = self._engine, self._trt
        found = {}
        for index in range(engine.num_io_tensors):
            name = engine.get_tensor_name(index)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            found[name] = (is_input, trt_dtype_name(engine.get_tensor_dtype(name)))
        expected = {s.name: (True, s.dtype) for s in self.inputs}
        expected.update({s.name: (False, s.dtype) for s in self.outputs})
        if found != expected:
            raise EngineMismatchError(f"{self.engine_path} does not hold the tensors its sidecar lists "
                                      f"(engine: {sorted(found)}); {rebuild_hint(self.sidecar)}")

    def _allocate(self, plan: BufferPlan) -> None:
        self.plan = plan
        self._host, self._device, self._own = {}, {}, {}
        for buffer in plan.buffers:
            self._allocate_one(buffer.name, max(1, buffer.nbytes // np.dtype(buffer.dtype).itemsize), buffer.dtype)

    def _allocate_one(self, name: str, count: int, dtype: str) -> None:
        """A page-locked host buffer and its device twin (or, zero copy, its mapped address)."""
        cuda = self._cuda
        if self.zero_copy:
            host = cuda.pagelocked_empty(count, np.dtype(dtype), mem_flags=cuda.host_alloc_flags.DEVICEMAP)
            pointer = int(host.base.get_device_pointer())
        else:
            host = cuda.pagelocked_empty(count, np.dtype(dtype))
            self._own[name] = cuda.mem_alloc(max(1, host.nbytes))
            pointer = int(self._own[name])
        self._host[name], self._device[name] = host, pointer
        self._context.set_tensor_address(name, pointer)

    def _close(self) -> None:
        try:
            with self._current():
                self._drop_graph()
                for allocation in self._own.values():
                    allocation.free()
                self._own, self._host, self._device = {}, {}, {}
                # TensorRT objects are destroyed here, while their CUDA context is current.
                for name in ("_context", "_engine", "_runtime", "_stream"):
                    self.__dict__.pop(name, None)
        finally:
            self._cuda_context.detach()  # matches retain_primary_context() in _open
            self._cuda_context = None

    # -- running -----------------------------------------------------------------------------
    def _hold(self, values: Dict[str, Any]) -> Dict[str, Any]:
        with self._current():
            for name, value in values.items():
                if isinstance(value, DeviceTensor):
                    self._context.set_tensor_address(name, value.pointer)
                    self._set_shape(name, value.shape)
                else:
                    if name not in self._device:  # planned as external, given as a host array after all
                        self._allocate_one(name, value.size, value.dtype.name)
                    self._set_shape(name, value.shape)
                    self._upload(name, value)
                    self._stream.synchronize()
                    self._context.set_tensor_address(name, self._device[name])
            self._drop_graph()  # addresses changed: a captured graph would use the old ones
        return values

    def _to_host(self, value: Any) -> np.ndarray:
        if not isinstance(value, DeviceTensor):
            return super()._to_host(value)
        host = np.empty(value.shape, np.dtype(value.dtype))
        with self._current():
            self._cuda.memcpy_dtoh(host, value.pointer)
        return host

    def release(self) -> None:
        super().release()
        if self.is_open:
            with self._current():
                for name in self._device:
                    self._context.set_tensor_address(name, self._device[name])
                self._drop_graph()

    def _drop_graph(self) -> None:
        if self._graph is not None and self._graphs is not None:
            self._graphs.destroy(self._graph)
            self._graph = None

    def _set_shape(self, name: str, shape: Tuple[int, ...]) -> None:
        spec = next(s for s in self.inputs if s.name == name)
        if is_dynamic(spec.shape) and self._shapes.get(name) != tuple(shape):
            if not self._context.set_input_shape(name, tuple(shape)):
                raise BackendError(f"TensorRT refused shape {list(shape)} for input {name!r} of {self.engine_path}")
            self._shapes[name] = tuple(shape)
            self._drop_graph()

    def _view(self, name: str, shape: Tuple[int, ...]) -> np.ndarray:
        count = int(np.prod(shape)) if shape else 1
        return self._host[name][:count].reshape(shape)

    def _upload(self, name: str, array: np.ndarray) -> None:
        view = self._view(name, array.shape)
        np.copyto(view, array)
        if not self.zero_copy:
            self._cuda.memcpy_htod_async(self._device[name], view, self._stream)

    def _enqueue(self, arrays: Arrays, outputs: Dict[str, Tuple[int, ...]]) -> None:
        """Copies in, inference, copies out: all asynchronous on the one stream."""
        if not self.zero_copy:
            for name, array in arrays.items():
                self._cuda.memcpy_htod_async(self._device[name], self._view(name, array.shape), self._stream)
        if not self._context.execute_async_v3(self._stream.handle):
            raise BackendError(f"TensorRT failed to run {self.engine_path} (see its log above)")
        if not self.zero_copy:
            for name, shape in outputs.items():
                self._cuda.memcpy_dtoh_async(self._view(name, shape), self._device[name], self._stream)

    def _run(self, arrays: Arrays, to_host: bool) -> Dict[str, Any]:
        with self._current():
            for name, array in arrays.items():
                self._set_shape(name, array.shape)
                np.copyto(self._view(name, array.shape), array)
            outputs = {s.name: _dims(self._context.get_tensor_shape(s.name)) for s in self.outputs}
            graphs = self._graphs
            if graphs is None:
                self._enqueue(arrays, outputs)
            else:
                self._run_graph(graphs, arrays, outputs)
            self._stream.synchronize()
        if to_host:
            return {name: np.array(self._view(name, shape)) for name, shape in outputs.items()}
        return {s.name: DeviceTensor(self._device[s.name], outputs[s.name], s.dtype) for s in self.outputs}

    def _run_graph(self, graphs: CudaGraphs, arrays: Arrays, outputs: Dict[str, Tuple[int, ...]]) -> None:
        if self._graph is None:
            # TensorRT finishes deferred setup on its first enqueue, which must not be captured.
            self._enqueue(arrays, outputs)
            self._stream.synchronize()
            try:
                self._graph = graphs.capture(self._stream.handle, lambda: self._enqueue(arrays, outputs))
            except BackendError as error:
                self.warnings.append(f"CUDA graph capture failed, running without it: {error}")
                self._graphs = None
            return
        graphs.launch(self._graph, self._stream.handle)
