"""The one interface every inference backend speaks (ONNX Runtime, PyTorch, TensorRT, OpenVINO).

A backend runs one graph of an export (its manifest entry or engine sidecar gives the role and
the tensors). It owns its resources through ``with backend:``, takes and returns
``{tensor name: array}`` and checks its inputs once, here, at the boundary; below this line the
backends trust their inputs.

Tensors that stay the same across many runs (a style's kernels) are *held*: ``hold(values)``
binds them once, and ``run`` then needs only the other inputs. ``run_on_device`` returns
outputs in the backend's native device form (ORT OrtValues, torch tensors, TensorRT device
buffers) so that the style graph's kernels go straight into the content graph's inputs without
a round trip through host memory.
"""
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from .errors import InfusionNetError
from .sizes import MIN_SIZE, SIZE_MULTIPLE
from .trt_plan import ShapeRange

BACKENDS = ("torch", "onnxruntime", "tensorrt", "openvino")
Arrays = Dict[str, np.ndarray]


class BackendError(InfusionNetError):
    """A backend that cannot start, or inputs it cannot take; the message says which and why."""


class InputError(BackendError):
    """Inputs that do not match the graph (names, dtypes, shapes)."""


def check_feeds(graph: str, specs: Sequence[Any], feeds: Mapping[str, Any], held: Iterable[str] = (),
                profile: Optional[Mapping[str, ShapeRange]] = None) -> Arrays:
    """Validate ``feeds`` against input ``specs`` (objects with name, shape, dtype).

    Every non-held input must be present and nothing else; dtypes must match exactly (no silent
    casts: a float64 image is a bug upstream); static dimensions must match, dynamic ones be
    multiples of 8 and, with a ``profile``, inside its min/max. Returns C-contiguous arrays.
    """
    held_names = set(held)  # type: Set[str]
    wanted = [spec for spec in specs if spec.name not in held_names]
    names = {spec.name for spec in specs}
    unknown = sorted(set(feeds) - names)
    if unknown:
        raise InputError(f"{graph} graph has no input {', '.join(map(repr, unknown))} "
                         f"(its inputs: {', '.join(spec.name for spec in specs)})")
    doubly = sorted(set(feeds) & held_names)
    if doubly:
        raise InputError(f"{graph} graph input {', '.join(map(repr, doubly))} is held (set once, e.g. by "
                         "set_style); do not pass it to run")
    missing = [spec.name for spec in wanted if spec.name not in feeds]
    if missing:
        raise InputError(f"{graph} graph needs input{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(map(repr, missing))}")
    arrays = {}
    for spec in wanted:
        array = feeds[spec.name]
        if not isinstance(array, np.ndarray):
            raise InputError(f"{graph} graph input {spec.name!r} must be a numpy array, not {type(array).__name__}")
        if array.dtype != np.dtype(spec.dtype):
            raise InputError(f"{graph} graph input {spec.name!r} is {array.dtype}, the graph takes {spec.dtype}")
        check_shape(graph, spec, array.shape, profile.get(spec.name) if profile else None)
        arrays[spec.name] = np.ascontiguousarray(array)
    return arrays


def check_shape(graph: str, spec: Any, shape: Tuple[int, ...], limits: Optional[ShapeRange] = None) -> None:
    expected = list(spec.shape)
    if len(shape) != len(expected):
        raise InputError(f"{graph} graph input {spec.name!r} has shape {list(shape)}, expected rank "
                         f"{len(expected)} {expected}")
    for axis, (got, want) in enumerate(zip(shape, expected)):
        if isinstance(want, int) and want >= 0:
            if got != want:
                raise InputError(f"{graph} graph input {spec.name!r} has shape {list(shape)}, expected {expected} "
                                 f"(axis {axis} is fixed at {want} by the export)")
        elif got % SIZE_MULTIPLE or got < MIN_SIZE:
            raise InputError(f"{graph} graph input {spec.name!r} has {want} {got}: dynamic sizes must be "
                             f"multiples of {SIZE_MULTIPLE}, at least {MIN_SIZE}")
    if limits is not None and not all(lo <= s <= hi for s, lo, hi in zip(shape, limits.min, limits.max)):
        raise InputError(f"{graph} graph input {spec.name!r} has shape {list(shape)}, outside the engine's "
                         f"profile {list(limits.min)} .. {list(limits.max)} (rebuild with --min/--max to cover it)")


class Backend(object):
    """Base class: subclasses implement ``_open``, ``_run`` and ``_close`` (and may override
    ``hold``/``run_on_device`` to keep tensors on the device)."""

    kind = ""

    def __init__(self, role: str, inputs: Sequence[Any], outputs: Sequence[Any]):
        self.role = role
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.held = {}  # type: Dict[str, Any]
        self.is_open = False

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> "Backend":
        self.open()
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def open(self) -> "Backend":
        if not self.is_open:
            self._open()
            self.is_open = True
        return self

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self.held = {}
            self._close()

    @property
    def description(self) -> str:
        """One line for logs and tables: backend, device, precision."""
        return self.kind

    @property
    def input_names(self) -> List[str]:
        return [spec.name for spec in self.inputs]

    @property
    def output_names(self) -> List[str]:
        return [spec.name for spec in self.outputs]

    def _check_graph_names(self, path, graph_inputs, graph_outputs) -> None:
        """The manifest and the graph file must agree on tensor names: fail at open, not mid-run."""
        missing = [n for n in self.input_names if n not in set(graph_inputs)] + \
                  [n for n in self.output_names if n not in set(graph_outputs)]
        if missing:
            raise BackendError(f"{path} has no tensor {', '.join(map(repr, missing))} that its manifest "
                               "lists: the file does not belong to this manifest (re-export)")

    def profile(self) -> Optional[Mapping[str, ShapeRange]]:
        """Shape limits beyond the graph's own (TensorRT profiles); None when any size goes."""
        return None

    # -- running -----------------------------------------------------------------------------
    def hold(self, values: Mapping[str, Any]) -> None:
        """Bind inputs that stay fixed across runs (numpy arrays, or this backend's device values)."""
        self._require_open()
        specs = {spec.name: spec for spec in self.inputs}
        unknown = sorted(set(values) - set(specs))
        if unknown:
            raise InputError(f"{self.role} graph has no input {', '.join(map(repr, unknown))} to hold")
        for name, value in values.items():
            if isinstance(value, np.ndarray):
                check_feeds(self.role, [specs[name]], {name: value})
        self.held = dict(self.held)
        self.held.update(self._hold(dict(values)))

    def release(self) -> None:
        """Forget held inputs (they must then be passed to run again)."""
        self.held = {}

    def run(self, feeds: Mapping[str, np.ndarray]) -> Arrays:
        """Run the graph on host arrays; returns every output as a host array (a fresh copy)."""
        self._require_open()
        return self._run(check_feeds(self.role, self.inputs, feeds, self.held, self.profile()), to_host=True)

    def run_on_device(self, feeds: Mapping[str, np.ndarray]) -> Dict[str, Any]:
        """Like ``run``, but outputs stay where the backend computed them (for ``hold`` elsewhere)."""
        self._require_open()
        return self._run(check_feeds(self.role, self.inputs, feeds, self.held, self.profile()), to_host=False)

    def to_host(self, values: Mapping[str, Any]) -> Arrays:
        """Host copies of ``run_on_device`` outputs (or of held values) of this backend."""
        self._require_open()
        return {name: self._to_host(value) for name, value in values.items()}

    def _require_open(self) -> None:
        if not self.is_open:
            raise BackendError(f"{self.kind} backend for the {self.role} graph is not open (use `with backend:`)")

    # -- for subclasses ------------------------------------------------------------------------
    def _open(self) -> None:
        pass

    def _close(self) -> None:
        pass

    def _hold(self, values: Dict[str, Any]) -> Dict[str, Any]:
        """Convert held values to whatever ``_run`` uses; host arrays by default."""
        return values

    def _to_host(self, value: Any) -> np.ndarray:
        if isinstance(value, np.ndarray):
            return value
        if hasattr(value, "numpy"):  # ONNX Runtime OrtValue
            return value.numpy()
        raise BackendError(f"{self.kind} backend cannot copy a {type(value).__name__} to the host")

    def _run(self, arrays: Arrays, to_host: bool) -> Dict[str, Any]:
        raise NotImplementedError
