"""manifest.json: what an export directory holds, read and written without torch.

An export directory (``infusionnet export onnx``) holds one or two ONNX graphs and this
manifest. The runtime, the benchmarks and the TensorRT builder read it to learn each graph's
role, its tensor names, shapes and dtypes, the normalization to apply and how the export was
verified; every backend addresses tensors by these names, never by position.

Layout (``FORMAT``)::

    {
      "format": "infusionnet-edge/onnx-export/1",
      "graph_kind": "full" | "split" | "baked",
      "variant": "infusionnet" | "aesfa",
      "precision": "fp32" | "fp16" | "int8",
      "opset": 17, "batch": 1,
      "content_size": [H, W], "dynamic_size": false, "style_size": S,
      "normalization": {"mean": [...], "std": [...], "color": "RGB", "layout": "NCHW",
                        "scale": "pixel / 255, then (x - mean) / std"},
      "checkpoint": {"file": "main.pth" | null, "sha256": "..." | "untrained-seed-0"},
      "style_image": {...} | null,          # baked graphs: the style whose kernels are inside
      "exporter": {"torch": ..., "onnx": ..., "onnxruntime": ..., "onnxslim": ..., ...},
      "graphs": [{"role": "style", "file": "style.onnx", "sha256": "...",
                  "inputs": [{"name": "style", "shape": [1, 3, 256, 256], "dtype": "float32"}],
                  "outputs": [...]}, ...],
      "verification": {"passed": true, "checks": [...], ...},
      "trt_compat": {...} | null,
      "calibration": {...} | null           # int8 only
    }

Shapes hold ints, or strings for symbolic dimensions ("height", "width") with --dynamic-size.
Python 3.8 compatible and torch-free: the Jetson runtime imports this.
"""
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from .errors import InfusionNetError
from .fileio import atomic_path, file_sha256

MANIFEST_NAME = "manifest.json"
FORMAT = "infusionnet-edge/onnx-export/1"
# The graphs of an export: each kind of export (--graph) holds these roles, and one of them
# runs every frame (the style graph of a split export runs once per style).
ROLES = ("full", "style", "content", "baked")
GRAPH_KINDS = {"full": ("full",), "split": ("style", "content"), "baked": ("baked",)}
FRAME_ROLES = {"full": "full", "split": "content", "baked": "baked"}
PRECISIONS = ("fp32", "fp16", "int8")
# Tensor names every graph and backend shares; the kernel tensors between a split export's style
# and content graphs keep the network's own names (AdaOctConv1_1.h.spatial, ...).
CONTENT, STYLE, STYLIZED = "content", "style", "stylized"
DTYPES = ("float32", "float16", "int8", "uint8", "int32", "int64", "bool")
# Symbolic names of the content height and width in the shapes of a --dynamic-size export.
HEIGHT, WIDTH = "height", "width"
REQUIRED_FIELDS = ("format", "graph_kind", "variant", "precision", "opset", "batch", "content_size",
                   "dynamic_size", "style_size", "normalization", "checkpoint", "exporter", "graphs")
# Facts copied onto every graph as ONNX metadata_props (values are JSON text).
METADATA_FIELDS = ("format", "graph_kind", "variant", "precision", "opset", "batch", "content_size",
                   "dynamic_size", "style_size", "normalization", "checkpoint", "exporter")

PathLike = Union[str, "os.PathLike[str]"]
Dim = Union[int, str]


class ManifestError(InfusionNetError):
    """A manifest is missing, unreadable or inconsistent; the message names the file."""


@dataclass(frozen=True)
class TensorSpec(object):
    """One graph input or output: name, shape (ints, or symbolic names where dynamic) and dtype.

    The one tensor description of the project: manifests, engine sidecars, TensorRT plans and
    every backend read these. Immutable and comparable; the shape is stored as a tuple."""
    name: str
    shape: Tuple[Dim, ...]
    dtype: str = "float32"

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(self.shape))

    @property
    def is_dynamic(self) -> bool:
        return any(not isinstance(dim, int) for dim in self.shape)

    def to_dict(self) -> Dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "TensorSpec":
        return cls(data["name"], data["shape"], data.get("dtype", "float32"))


class GraphEntry(object):
    """One graph of the export: its role, file (relative to the manifest) and tensors."""

    def __init__(self, role: str, file: str, inputs: List[TensorSpec], outputs: List[TensorSpec],
                 sha256: Optional[str] = None, directory: Optional[Path] = None):
        self.role = role
        self.file = file
        self.inputs = list(inputs)
        self.outputs = list(outputs)
        self.sha256 = sha256
        self.directory = directory

    @property
    def path(self) -> Path:
        return (self.directory or Path(".")) / self.file

    @property
    def input_names(self) -> List[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> List[str]:
        return [t.name for t in self.outputs]

    def input(self, name: str) -> TensorSpec:
        return _by_name(self.inputs, name, "input", self.role)

    def output(self, name: str) -> TensorSpec:
        return _by_name(self.outputs, name, "output", self.role)

    def to_dict(self) -> Dict[str, Any]:
        data = {"role": self.role, "file": self.file,
                "inputs": [t.to_dict() for t in self.inputs],
                "outputs": [t.to_dict() for t in self.outputs]}
        if self.sha256:
            data["sha256"] = self.sha256
        return data

    @classmethod
    def from_dict(cls, data: Dict[str, Any], directory: Optional[Path] = None) -> "GraphEntry":
        return cls(data["role"], data["file"], [TensorSpec.from_dict(t) for t in data["inputs"]],
                   [TensorSpec.from_dict(t) for t in data["outputs"]], data.get("sha256"), directory)


def _check_sha256(graph: GraphEntry, manifest_file: Path) -> None:
    if not graph.sha256:
        return  # manifests written by hand may leave it out
    try:
        found = file_sha256(graph.path)
    except OSError as error:
        raise ManifestError("{}: graph file {} cannot be read ({})".format(
            manifest_file, graph.path, error.strerror or error)) from None
    if found != graph.sha256:
        raise ManifestError("graph file {} does not match the sha256 in {} (it was changed or damaged after "
                            "export): copy the export directory again or re-export it".format(graph.path, manifest_file))


def _by_name(tensors: List[TensorSpec], name: str, kind: str, role: str) -> TensorSpec:
    for tensor in tensors:
        if tensor.name == name:
            return tensor
    raise KeyError("{} graph has no {} named {!r}".format(role, kind, name))


class Manifest(object):
    """A validated manifest. ``Manifest.load(dir_or_file)`` reads one; ``data`` is the raw dict."""

    def __init__(self, data: Dict[str, Any], directory: Optional[PathLike] = None):
        self.directory = Path(directory) if directory is not None else None
        self.data = data
        self.graphs = {}  # type: Dict[str, GraphEntry]
        for entry in data.get("graphs", []):
            graph = GraphEntry.from_dict(entry, self.directory)
            self.graphs[graph.role] = graph

    # -- reading ---------------------------------------------------------------------------
    @classmethod
    def load(cls, path: PathLike, check_files: bool = True) -> "Manifest":
        """Read ``path`` (an export directory or its manifest.json) and validate it.

        With ``check_files``, every graph file must exist beside the manifest and have the sha256
        it records: a damaged or swapped graph would otherwise run and give a wrong image.
        """
        path = Path(path)
        file = path / MANIFEST_NAME if path.is_dir() else path
        if not file.is_file():
            where = "export directory {} has no {}".format(path, MANIFEST_NAME) if path.is_dir() else \
                "{}: manifest not found".format(file)
            raise ManifestError(where)
        try:
            with open(str(file), "r", encoding="utf-8") as handle:
                data = json.load(handle)
        except ValueError as error:
            raise ManifestError("{}: not valid JSON ({})".format(file, error))
        except OSError as error:
            raise ManifestError("{}: cannot be read ({})".format(file, error.strerror or error))
        problems = validate(data)
        if problems:
            raise ManifestError("{}: {}".format(file, "; ".join(problems)))
        manifest = cls(data, file.parent)
        if check_files:
            for graph in manifest.graphs.values():
                if not graph.path.is_file():
                    raise ManifestError("{}: graph file {} ({} graph) is missing".format(file, graph.file, graph.role))
                _check_sha256(graph, file)
        return manifest

    def graph(self, role: str) -> GraphEntry:
        if role not in self.graphs:
            raise ManifestError("{}: has no {} graph (it holds: {})".format(
                self.location, role, ", ".join(self.graphs) or "none"))
        return self.graphs[role]

    @property
    def location(self) -> str:
        return str(self.directory / MANIFEST_NAME) if self.directory else MANIFEST_NAME

    @property
    def graph_kind(self) -> str:
        return self.data["graph_kind"]

    @property
    def variant(self) -> str:
        return self.data["variant"]

    @property
    def precision(self) -> str:
        return self.data["precision"]

    @property
    def int8_target(self):
        # type: () -> Optional[str]
        """Which runtime an INT8 export is laid out for: "tensorrt" (explicit Q/DQ, also the
        meaning of manifests written before the field existed) or "cpu" (ONNX Runtime CPU only)."""
        if self.precision != "int8":
            return None
        return self.data.get("int8_target") or "tensorrt"

    @property
    def opset(self) -> int:
        return int(self.data["opset"])

    @property
    def batch(self) -> int:
        return int(self.data["batch"])

    @property
    def content_size(self) -> List[int]:
        return list(self.data["content_size"])

    @property
    def dynamic_size(self) -> bool:
        return bool(self.data["dynamic_size"])

    @property
    def style_size(self) -> int:
        return int(self.data["style_size"])

    @property
    def mean(self) -> List[float]:
        return list(self.data["normalization"]["mean"])

    @property
    def std(self) -> List[float]:
        return list(self.data["normalization"]["std"])

    @property
    def checkpoint_sha256(self) -> str:
        return self.data["checkpoint"]["sha256"]

    @property
    def verification(self) -> Dict[str, Any]:
        return self.data.get("verification") or {}

    @property
    def trt_compat(self) -> Optional[Dict[str, Any]]:
        return self.data.get("trt_compat")

    def to_dict(self) -> Dict[str, Any]:
        data = dict(self.data)
        data["graphs"] = [graph.to_dict() for graph in self.graphs.values()]
        return data

    # -- writing ---------------------------------------------------------------------------
    def save(self, directory: Optional[PathLike] = None) -> Path:
        """Validate and write ``manifest.json`` atomically into ``directory``; returns its path."""
        directory = Path(directory) if directory is not None else self.directory
        if directory is None:
            raise ValueError("Manifest.save needs a directory")
        data = self.to_dict()
        problems = validate(data)
        if problems:
            raise ManifestError("refusing to write an invalid manifest: " + "; ".join(problems))
        file = directory / MANIFEST_NAME
        with atomic_path(file) as tmp:
            with open(str(tmp), "w", encoding="utf-8") as handle:
                json.dump(data, handle, indent=2, sort_keys=False, allow_nan=False)
                handle.write("\n")
        self.directory = directory
        for graph in self.graphs.values():
            graph.directory = directory
        return file


def validate(data: Any) -> List[str]:
    """Problems with a manifest dict, worded for the user; an empty list means valid."""
    if not isinstance(data, dict):
        return ["top level must be a JSON object, not {}".format(type(data).__name__)]
    missing = [name for name in REQUIRED_FIELDS if name not in data]
    if missing:
        return ["missing field{} {}".format("s" if len(missing) > 1 else "", ", ".join(missing))]
    problems = []
    if data["format"] != FORMAT:
        problems.append("format {!r} is not {!r} (exported by another version?)".format(data["format"], FORMAT))
    if data["graph_kind"] not in GRAPH_KINDS:
        problems.append("graph_kind {!r} is not one of {}".format(data["graph_kind"], ", ".join(GRAPH_KINDS)))
    if data["precision"] not in PRECISIONS:
        problems.append("precision {!r} is not one of {}".format(data["precision"], ", ".join(PRECISIONS)))
    for name in ("opset", "batch", "style_size"):
        if not _positive_int(data[name]):
            problems.append("{} must be a positive integer, not {!r}".format(name, data[name]))
    size = data["content_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(_positive_int(v) for v in size)):
        problems.append("content_size must be [height, width], not {!r}".format(size))
    norm = data["normalization"]
    if not (isinstance(norm, dict) and all(_floats(norm.get(k), 3) for k in ("mean", "std"))):
        problems.append("normalization must hold mean and std, three numbers each")
    if not (isinstance(data["checkpoint"], dict) and isinstance(data["checkpoint"].get("sha256"), str)):
        problems.append("checkpoint must hold a sha256 string")
    problems.extend(_graph_problems(data["graphs"], data["graph_kind"]))
    return problems


def _graph_problems(graphs: Any, graph_kind: Any) -> List[str]:
    if not isinstance(graphs, list) or not graphs:
        return ["graphs must be a non-empty list"]
    problems = []
    roles = []
    for index, graph in enumerate(graphs):
        if not isinstance(graph, dict):
            problems.append("graphs[{}] must be an object".format(index))
            continue
        missing = [k for k in ("role", "file", "inputs", "outputs") if k not in graph]
        if missing:
            problems.append("graphs[{}] misses {}".format(index, ", ".join(missing)))
            continue
        role = graph["role"]
        roles.append(role)
        if role not in ROLES:
            problems.append("graphs[{}] role {!r} is not one of {}".format(index, role, ", ".join(ROLES)))
        for kind in ("inputs", "outputs"):
            tensors = graph[kind]
            if not isinstance(tensors, list) or not tensors:
                problems.append("{} graph {} must be a non-empty list".format(role, kind))
                continue
            for tensor in tensors:
                problem = _tensor_problem(tensor)
                if problem:
                    problems.append("{} graph {}: {}".format(role, kind, problem))
    if graph_kind in GRAPH_KINDS and sorted(roles) != sorted(GRAPH_KINDS[graph_kind]):
        problems.append("a {} export holds the graphs {}, not {}".format(
            graph_kind, ", ".join(GRAPH_KINDS[graph_kind]), ", ".join(roles) or "none"))
    return problems


def _tensor_problem(tensor: Any) -> Optional[str]:
    if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
        return "each tensor needs a name"
    shape = tensor.get("shape")
    if not isinstance(shape, list) or not all(_positive_int(d) or (isinstance(d, str) and d) for d in shape):
        return "{}: shape must list positive ints or symbolic names, not {!r}".format(tensor["name"], shape)
    if tensor.get("dtype", "float32") not in DTYPES:
        return "{}: unknown dtype {!r}".format(tensor["name"], tensor.get("dtype"))
    return None


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _floats(value: Any, count: int) -> bool:
    return isinstance(value, list) and len(value) == count and all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)


def graph_metadata(data: Dict[str, Any], role: str) -> Dict[str, str]:
    """The manifest's key facts as ONNX ``metadata_props`` for the ``role`` graph (JSON values)."""
    props = {"infusionnet.role": role}
    for name in METADATA_FIELDS:
        if name in data:
            props["infusionnet." + name] = json.dumps(data[name], sort_keys=True)
    return props


def read_graph_metadata(props: Dict[str, str]) -> Dict[str, Any]:
    """Inverse of ``graph_metadata``: {"role": ..., "variant": ..., ...} from metadata_props."""
    facts = {}
    for key, value in props.items():
        if key.startswith("infusionnet."):
            name = key[len("infusionnet."):]
            facts[name] = value if name == "role" else json.loads(value)
    return facts


