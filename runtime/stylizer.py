"""Stylizer: frames in, stylized frames out, over any backend and any export.

    with Stylizer("exports/split", backend="onnxruntime") as stylizer:
        stylizer.set_style(read_image("art.jpg"))      # runs the style graph once
        out = stylizer.stylize(frame)                   # uint8 RGB in, uint8 RGB out

``model_dir`` is an ONNX export directory (manifest.json; backends onnxruntime, openvino or torch) or a
TensorRT engine directory (engines.json and sidecars; backend tensorrt). With a split export the
style graph runs once per ``set_style`` and its kernels stay on the device, held by the content
graph; switching styles is another ``set_style``. A full export feeds the style image with every
frame; a baked export has one style built in.

Frames: uint8 HxWx3 (or NxHxWx3 with N = the export's batch), RGB, or BGR from OpenCV with
``bgr=True``. A dynamic-size graph takes any size up to ``max_pixels``: frames are
reflect-padded to multiples of 8 and cropped back. A static graph takes its export size: other
sizes are letterboxed into it (scaled to fit with the aspect ratio kept, reflect-padded, the
padding cropped off the output, scaled back; ``size_mismatch="letterbox"``) or refused
(``"error"``). ``fit_note`` says in words what happens to a given frame size.

``Stylizer.from_backends`` runs backends built elsewhere under the same rules: the PyTorch
network itself, without an export (``models.torch_backend.network_stylizer``, `infusionnet video
--checkpoint`).
"""
from pathlib import Path
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from . import images
from .backend import BACKENDS, Backend, BackendError
from .engine_sidecar import ENGINE_INDEX, read_engine_index
from .limits import MAX_WORK_PIXELS
from .manifest import CONTENT, FRAME_ROLES, MANIFEST_NAME, STYLE, STYLIZED, Manifest
from .openvino_backend import OpenVinoBackend
from .ort_backend import OnnxRuntimeBackend, fuses_qdq
from .trt_backend import TensorRTBackend

SIZE_MISMATCH = ("letterbox", "error")

# factory(manifest, checkpoint, **options) -> {role: unopened backend} for every graph of an export.
BackendFactory = Callable[..., Dict[str, Backend]]
# Backends built outside the runtime, by name. The runtime imports nothing from the packages above
# it (tests/test_layers.py): the PyTorch backend runs the networks, so it lives with them and
# registers itself here when imported (``import infusionnet.models.torch_backend``).
REGISTERED_BACKENDS = {}  # type: Dict[str, BackendFactory]


class StyleError(BackendError):
    """A style operation the loaded export cannot do (baked style, no style set yet)."""


def open_model_dir(model_dir) -> Tuple[str, Manifest, Dict[str, Any]]:
    """("onnx" | "tensorrt", manifest, engine index or {}) for an export or engine directory."""
    path = Path(model_dir)
    if (path / MANIFEST_NAME).is_file():
        return "onnx", Manifest.load(path), {}
    if (path / ENGINE_INDEX).is_file():
        index = read_engine_index(path)
        return "tensorrt", Manifest(index["manifest"], None), index
    if not path.exists():
        raise BackendError(f"model directory {path} does not exist")
    raise BackendError(f"{path} is neither an ONNX export (no {MANIFEST_NAME}) nor a TensorRT engine directory "
                       f"(no {ENGINE_INDEX}); create one with `infusionnet export onnx` or `infusionnet export trt`")


def make_backends(model_dir, backend: str = "onnxruntime", checkpoint=None, **options) -> Dict[str, Backend]:
    """role -> an unopened backend for every graph of ``model_dir``.

    options go to the backend: onnxruntime (provider, intra_op_threads, ...), torch (device,
    fp16, channels_last, compile), tensorrt (device_id, zero_copy, cuda_graph), openvino
    (precision, threads).
    """
    if backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}: use one of {', '.join(BACKENDS)}")
    kind, manifest, index = open_model_dir(model_dir)
    if backend == "tensorrt":
        if kind != "tensorrt":
            raise BackendError(f"{model_dir} is an ONNX export: build engines first with `infusionnet export trt "
                               f"--onnx {model_dir} -o ENGINE_DIR`, then pass ENGINE_DIR")
        roles = list(index["engines"])
        kernels_external = "style" in roles and "content" in roles
        backends = {}
        for role, file in index["engines"].items():
            external = [n for n in _names(manifest, "style", "outputs")] if role == "content" and kernels_external else ()
            backends[role] = TensorRTBackend(Path(model_dir) / file, external=external, **options)
        return backends
    if kind == "tensorrt":
        source = index.get("source")
        raise BackendError(f"{model_dir} holds TensorRT engines: use --backend tensorrt, or give the ONNX export "
                           f"they were built from{f' ({source})' if source else ''}")
    if manifest.int8_target == "openvino" and backend == "onnxruntime":
        raise BackendError(f"{model_dir} holds NNCF INT8 graphs in OpenVINO's format (--int8-target openvino): "
                           "use --backend openvino, or export --int8-target cpu for ONNX Runtime")
    if backend == "onnxruntime":
        options.setdefault("fuse_qdq", fuses_qdq(manifest.int8_target))
        return {role: OnnxRuntimeBackend.from_graph(graph, **options) for role, graph in manifest.graphs.items()}
    if backend == "openvino":
        return {role: OpenVinoBackend.from_graph(graph, **options) for role, graph in manifest.graphs.items()}
    factory = REGISTERED_BACKENDS.get(backend)
    if factory is None:
        raise BackendError(f"the {backend} backend is not loaded: backends that live above the torch-free runtime "
                           "register themselves when their module is imported (torch: import "
                           "infusionnet.models.torch_backend, which needs PyTorch: pip install .[torch])")
    return factory(manifest, checkpoint, **options)


def register_backend(name: str, factory: BackendFactory) -> None:
    """Let ``make_backends`` and ``Stylizer`` build backend ``name`` (one of ``BACKENDS``) with
    ``factory``: how a backend that lives above the runtime plugs in."""
    if name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: add it to runtime.backend.BACKENDS first")
    REGISTERED_BACKENDS[name] = factory


def _names(manifest: Manifest, role: str, kind: str):
    return [t.name for t in getattr(manifest.graph(role), kind)]


class Stylizer(object):
    def __init__(self, model_dir, backend: str = "onnxruntime", bgr: bool = False, size_mismatch: str = "letterbox",
                 checkpoint=None, max_pixels: Optional[int] = MAX_WORK_PIXELS, **options):
        _check_size_mismatch(size_mismatch)
        kind, manifest, _ = open_model_dir(model_dir)
        self._use(model_dir, kind, manifest, make_backends(model_dir, backend, checkpoint, **options), backend, bgr,
                  size_mismatch, max_pixels)

    @classmethod
    def from_backends(cls, backends: Dict[str, Backend], manifest: Manifest, name, backend: str, bgr: bool = False,
                      size_mismatch: str = "letterbox", max_pixels: Optional[int] = MAX_WORK_PIXELS) -> "Stylizer":
        """A Stylizer over backends built elsewhere (one per role of ``manifest``): the PyTorch
        network without an export, for one. ``name`` stands for the model directory in messages."""
        _check_size_mismatch(size_mismatch)
        stylizer = cls.__new__(cls)
        stylizer._use(name, "memory", manifest, backends, backend, bgr, size_mismatch, max_pixels)
        return stylizer

    def _use(self, model_dir, kind: str, manifest: Manifest, backends: Dict[str, Backend], backend: str, bgr: bool,
             size_mismatch: str, max_pixels: Optional[int]) -> None:
        self.model_dir = Path(model_dir)
        self.kind, self.manifest = kind, manifest
        self.backends = backends
        self.backend = backend
        self.bgr = bgr
        self.size_mismatch = size_mismatch
        self.max_pixels = max_pixels
        self.graph_kind = self.manifest.graph_kind
        self.batch = self.manifest.batch
        self.style_size = self.manifest.style_size
        self.dynamic = self.manifest.dynamic_size
        self.content_size = tuple(self.manifest.content_size)  # type: Tuple[int, ...]
        self.frames = self.backends[FRAME_ROLES[self.graph_kind]]
        self.styler = self.backends.get("style")
        self.style_set = self.graph_kind == "baked"
        self._plans = {}  # type: Dict[Tuple[int, int], Any]

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Stylizer":
        return self.open()

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> "Stylizer":
        """Start every backend (also done on first use; ``with`` or ``close()`` releases them)."""
        try:
            for backend in self.backends.values():
                backend.open()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        for backend in self.backends.values():
            backend.close()
        self.style_set = self.graph_kind == "baked"

    def _ensure_open(self) -> None:
        if not all(backend.is_open for backend in self.backends.values()):
            self.open()

    @property
    def description(self) -> str:
        return f"{self.graph_kind} export, {self.frames.description}"

    # -- styles ------------------------------------------------------------------------------
    def set_style(self, image: np.ndarray, bgr: Optional[bool] = None) -> None:
        """Use ``image`` (uint8 HxWx3) as the style of every following frame."""
        if self.graph_kind == "baked":
            raise StyleError(f"{self.model_dir} has its style baked into the graph; export with --graph split "
                             "(or full) to switch styles at run time")
        self._ensure_open()
        rgb = self._color(_check_rgb(image, "style image"), bgr)
        prepared, _ = images.prepare_image(rgb, images.Resize.square(self.style_size))
        style = np.repeat(images.normalize(prepared), self.batch, axis=0)
        if self.styler is not None:
            self.frames.hold(self.styler.run_on_device({STYLE: style}))
        else:
            self.frames.hold({STYLE: style})
        self.style_set = True

    def style_kernels(self) -> Dict[str, np.ndarray]:
        """The current kernels as host arrays (split exports; for inspection and tests)."""
        if self.styler is None or not self.style_set:
            raise StyleError("no kernels: this needs a split export and set_style first")
        return self.styler.to_host(self.frames.held)

    # -- frames ------------------------------------------------------------------------------
    def check_frame_size(self, height: int, width: int, name="frame") -> None:
        """Raise now (before any work) if a frame of this size would be refused by ``stylize``."""
        self._plan(height, width, name)

    def fit_note(self, height: int, width: int) -> Optional[str]:
        """What happens to a frame of this size, in words, when it is not run as it is."""
        plan = self._plan(height, width)
        if not isinstance(plan, images.Letterbox):
            return None
        target = "x".join(str(v) for v in plan.target)
        how = (f"scaled to {plan.scaled[0]}x{plan.scaled[1]}, reflect-padded to {target} and cropped back"
               if plan.padded else f"scaled to {target} and back (same aspect ratio)")
        return (f"{self.model_dir} is a static-size export ({target}): a {height}x{width} image is {how}; "
                "export with --dynamic-size to run images at their own size")

    def stylize(self, frame: np.ndarray, bgr: Optional[bool] = None) -> np.ndarray:
        """Stylize one frame (HxWx3) or a batch (NxHxWx3, N = the export's batch); same shape out."""
        self._ensure_open()
        if not self.style_set:
            raise StyleError("call set_style(image) before stylize: this export takes its style at run time")
        frame = _check_rgb(frame, "frame", allow_batch=True)
        single = frame.ndim == 3
        count = 1 if single else frame.shape[0]
        if count != self.batch:
            raise images.ImageError(f"this export has batch {self.batch}: pass {self.batch} frames as an "
                                    f"NxHxWx3 array, not {count}")
        rgb = self._color(frame, bgr)
        prepared, restore = self._prepare(rgb)
        out = self.frames.run({CONTENT: images.normalize(prepared)})[STYLIZED]
        result = restore(images.denormalize_output(out, f"the output of {self.model_dir}"))
        result = self._color(result, bgr)
        return np.ascontiguousarray(result[0] if single else result)

    def _prepare(self, rgb: np.ndarray):
        plan = self._plan(*rgb.shape[-3:-1])
        if plan is None:
            return rgb, lambda out: out
        if isinstance(plan, images.Letterbox):
            return plan.apply(rgb), plan.undo
        return images.prepare_with(rgb, plan), lambda out: images.restore_image(out, plan)

    def _plan(self, height: int, width: int, name="frame"):
        """None (run as it is), a Restore (dynamic graphs) or a Letterbox (static graphs); cached."""
        key = (height, width)
        if key in self._plans:
            return self._plans[key]
        target = tuple(self.content_size)
        if self.dynamic:
            plan = images.plan_image(height, width, "keep", fit="pad", max_pixels=self.max_pixels,
                                     name=name)
        elif key == target:
            plan = None
        elif self.size_mismatch == "error":
            raise images.ImageError(f"{name} is {height}x{width} but {self.model_dir} was exported for "
                                    f"{target[0]}x{target[1]} (static size): resize frames, use "
                                    "size_mismatch='letterbox', or re-export with --dynamic-size")
        else:
            plan = images.Letterbox.plan(height, width, target)
        self._plans[key] = plan
        return plan

    def _color(self, rgb: np.ndarray, bgr: Optional[bool]) -> np.ndarray:
        return rgb[..., ::-1] if (self.bgr if bgr is None else bgr) else rgb


def _check_size_mismatch(value: str) -> None:
    if value not in SIZE_MISMATCH:
        raise BackendError(f"size_mismatch must be one of {', '.join(SIZE_MISMATCH)}, not {value!r}")


def _check_rgb(image: Any, what: str, allow_batch: bool = False) -> np.ndarray:
    image = np.asarray(image)
    ok_rank = image.ndim == 3 or (allow_batch and image.ndim == 4)
    if image.dtype != np.uint8 or not ok_rank or image.shape[-1] != 3:
        shape = "HxWx3 or NxHxWx3" if allow_batch else "HxWx3"
        raise images.ImageError(f"{what} must be uint8 {shape} (RGB, or BGR with bgr=True), "
                                f"got {image.dtype} {image.shape}")
    return image

