"""Will this ONNX graph parse and build in TensorRT X? A static check, torch-free (numpy + onnx).

Jetson users cannot try a build before copying a file to the board, and machines here have no
TensorRT at all, so the answer comes from a rules table: ``trt_rules.json`` beside this module
holds, for each TensorRT version, the operators its ONNX parser supports and the restrictions
it imposes (dynamic-weight convolutions before 8.5, initializer-only normalization parameters,
symmetric INT8 Q/DQ, ...), each rule with the documents that confirm it. The Python side is a
set of small predicates, one per rule ``check`` name, run over the graph after ONNX shape
inference so that computed tensors and initializers can be told apart.

Public API (used by the export pipeline and ``infusionnet export check-trt``):
  check_trt_compat(path_or_dir, trt_version) -> Report
  check_model(model, trt_version, name) -> GraphReport
  format_report(report) -> rich Table;  main_check(args) -> exit code
  parse_trt_version(text) -> TrtVersion;  known_versions() -> list of accepted versions

Deliberately no torch import here, not even indirectly: this runs on the board.
"""
import json
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple, Union

import numpy as np
import onnx
from onnx import numpy_helper

from infusionnet.runtime.errors import InfusionNetError

from .onnx_nodes import node_attribute

RULES_FILE = Path(__file__).with_name("trt_rules.json")
SEVERITIES = ("error", "warning", "info")
DEFAULT_DOMAINS = ("", "ai.onnx")
# ONNX element type names by TensorProto.DataType value ("FLOAT16", "INT64", ...), the spelling
# the rules file uses.
DTYPE_NAMES = {value: name for name, value in onnx.TensorProto.DataType.items()}
MAX_EXAMPLES = 3  # tensor names quoted in aggregated (per-graph) findings


class TrtCheckError(InfusionNetError):
    """A path, file or TensorRT version the compatibility check cannot work with."""


# --------------------------------------------------------------------------------------------
# Versions
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrtVersion:
    """A requested TensorRT version resolved to the rules profile that describes it."""
    text: str                   # as the user wrote it, e.g. "10"
    key: Tuple[int, int]        # (major, minor) used for rule ranges, e.g. (10, 0)
    profile: str                # key into the rules file's "versions", e.g. "10.0"

    @property
    def label(self) -> str:
        return f"{self.key[0]}.{self.key[1]}"


def _version_tuple(text: str) -> Tuple[int, int]:
    major, _, minor = text.partition(".")
    return int(major), int(minor or 0)


def known_versions() -> List[str]:
    """Versions accepted by ``--trt``, in order (10.x minors resolve to the 10.0 list plus additions)."""
    rules = load_rules()
    out = []
    for profile in rules["versions"]:
        if profile == "10.0":
            out.append("10")
            out.extend(f"10.{minor}" for minor in range(0, _max_10_minor(rules) + 1))
        else:
            out.append(profile)
    return out


def _max_10_minor(rules: dict) -> int:
    additions = rules["versions"]["10.0"].get("later_additions", {})
    return max([0] + [_version_tuple(v)[1] for v in additions])


def parse_trt_version(text: Union[str, float, int]) -> TrtVersion:
    """Accept "8.2", "8.5.3", "8.6", "10", "10.3", "10.3.0.26"; anything else is a TrtCheckError."""
    raw = str(text).strip()
    rules = load_rules()
    parts = raw.split(".")
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if numbers and numbers[0] == 10:
        minor = numbers[1] if len(numbers) > 1 else 0
        if 0 <= minor <= _max_10_minor(rules):
            return TrtVersion(raw, (10, minor), "10.0")
    elif len(numbers) >= 2:
        profile = f"{numbers[0]}.{numbers[1]}"
        if profile in rules["versions"]:
            return TrtVersion(raw, (numbers[0], numbers[1]), profile)
    known = ", ".join(p if p != "10.0" else f"10 (10.0-10.{_max_10_minor(rules)})" for p in rules["versions"])
    raise TrtCheckError(f"unknown TensorRT version '{raw}'; known versions: {known}")


# --------------------------------------------------------------------------------------------
# Rules file
# --------------------------------------------------------------------------------------------

_RULES_CACHE: Dict[str, dict] = {}


def load_rules(path: Optional[Union[str, Path]] = None) -> dict:
    """The parsed rules table (cached). Raises TrtCheckError naming the file if it is broken."""
    path = Path(path) if path else RULES_FILE
    key = str(path)
    if key not in _RULES_CACHE:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise TrtCheckError(f"{path}: cannot read the TensorRT rules table ({error})") from None
        _validate_rules(data, path)
        _RULES_CACHE[key] = data
    return _RULES_CACHE[key]


def _validate_rules(data: dict, path: Path) -> None:
    # A typo in the table should fail loudly at load time, not silently skip a rule.
    problems = []
    for profile, info in data.get("versions", {}).items():
        if not info.get("ops"):
            problems.append(f"version {profile} has no operator list")
    for rule in data.get("rules", []):
        rid = rule.get("id", "?")
        if rule.get("check") not in CHECKS:
            problems.append(f"rule {rid}: unknown check '{rule.get('check')}'")
        if not rule.get("sources"):
            problems.append(f"rule {rid}: no sources")
        for level in rule.get("levels", []):
            if level.get("severity") not in SEVERITIES:
                problems.append(f"rule {rid}: bad severity {level.get('severity')!r}")
        if not rule.get("levels"):
            problems.append(f"rule {rid}: no levels")
    if problems:
        raise TrtCheckError(f"{path}: invalid rules table: " + "; ".join(problems))


def _level_for(rule: dict, version: TrtVersion) -> Optional[dict]:
    """The first level of ``rule`` whose [min, max] range holds ``version`` (None: rule silent)."""
    for level in rule["levels"]:
        low, high = level.get("min"), level.get("max")
        if low is not None and version.key < _version_tuple(low):
            continue
        if high is not None and version.key > _version_tuple(high):
            continue
        return level
    return None


def supported_ops(version: TrtVersion) -> Set[str]:
    """Default-domain operators the parser of ``version`` imports (from the rules file)."""
    info = load_rules()["versions"][version.profile]
    ops = set(info["ops"])
    for added_in, names in info.get("later_additions", {}).items():
        if _version_tuple(added_in) <= version.key:
            ops.update(names)
    return ops


def opset_range(version: TrtVersion) -> Tuple[int, int]:
    info = load_rules()["versions"][version.profile]
    high = info["opset_max"]
    for minor, value in info.get("opset_max_by_minor", {}).items():
        if _version_tuple(minor) <= version.key:
            high = value
    return info.get("opset_min", 1), high


# --------------------------------------------------------------------------------------------
# Report objects
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Finding:
    rule_id: str
    severity: str
    node: str
    op_type: str
    message: str
    remedy: str
    source: str

    def to_dict(self) -> Dict[str, str]:
        return OrderedDict(rule=self.rule_id, severity=self.severity, node=self.node, op_type=self.op_type,
                           message=self.message, remedy=self.remedy, source=self.source)


@dataclass
class GraphReport:
    name: str                       # file name (or the name given to check_model)
    findings: List[Finding] = field(default_factory=list)

    def count(self, severity: str) -> int:
        return sum(1 for f in self.findings if f.severity == severity)

    @property
    def ok(self) -> bool:
        return self.count("error") == 0

    def rule_ids(self, severity: Optional[str] = None) -> List[str]:
        return sorted({f.rule_id for f in self.findings if severity is None or f.severity == severity})

    def summary(self) -> Dict[str, Any]:
        return OrderedDict(ok=self.ok, errors=self.count("error"), warnings=self.count("warning"),
                           infos=self.count("info"), error_rules=self.rule_ids("error"),
                           warning_rules=self.rule_ids("warning"))


@dataclass
class Report:
    version: TrtVersion
    graphs: List[GraphReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(g.ok for g in self.graphs)

    @property
    def findings(self) -> List[Finding]:
        return [f for g in self.graphs for f in g.findings]

    def count(self, severity: str) -> int:
        return sum(g.count(severity) for g in self.graphs)

    def graph(self, name: str) -> GraphReport:
        for g in self.graphs:
            if g.name == name:
                return g
        raise KeyError(name)

    def summary(self) -> Dict[str, Any]:
        """Small JSON-able dict for manifest.json."""
        return OrderedDict(
            trt_version=self.version.text, checked_as=self.version.label, ok=self.ok,
            errors=self.count("error"), warnings=self.count("warning"), infos=self.count("info"),
            graphs=OrderedDict((g.name, g.summary()) for g in self.graphs),
            rules_file=RULES_FILE.name)

    def to_dict(self) -> Dict[str, Any]:
        """Everything, findings included (for --json style output)."""
        out = self.summary()
        out["findings"] = OrderedDict((g.name, [f.to_dict() for f in g.findings]) for g in self.graphs)
        return out


# --------------------------------------------------------------------------------------------
# Graph view: what the predicates need to know about the model
# --------------------------------------------------------------------------------------------

@dataclass
class TensorInfo:
    elem_type: int = 0                           # TensorProto.DataType, 0 = unknown
    shape: Optional[List[Union[int, str, None]]] = None   # None = unknown rank


class GraphView:
    """Nodes (subgraphs included), constants, producers and tensor types of one model."""

    def __init__(self, model: onnx.ModelProto, version: TrtVersion):
        self.model = model
        self.version = version
        self.inference_error: Optional[str] = None
        self.graph = self._inferred(model).graph
        self.nodes: List[onnx.NodeProto] = []
        self.node_names: Dict[int, str] = {}
        self.producers: Dict[str, onnx.NodeProto] = {}
        self.constants: Set[str] = set()          # initializers + Constant (+ Identity of constant)
        self.constant_node_outputs: Set[str] = set()
        self.values: Dict[str, np.ndarray] = {}   # readable constant values (small ones are enough)
        self.tensors: Dict[str, TensorInfo] = {}
        self.graph_io: Set[str] = set()
        self._const_only: Dict[str, bool] = {}
        initializer_names = {init.name for init in self.graph.initializer}
        for tensor in list(self.graph.input) + list(self.graph.output):
            if tensor.name not in initializer_names:  # old IR versions list initializers as inputs
                self.graph_io.add(tensor.name)
        self._walk(self.graph, prefix="")

    def _inferred(self, model: onnx.ModelProto) -> onnx.ModelProto:
        # Shape inference gives types/shapes to computed tensors; a failure is reported, not fatal.
        try:
            return onnx.shape_inference.infer_shapes(model, check_type=False, strict_mode=False, data_prop=True)
        except Exception as error:  # onnx raises several unrelated types here
            self.inference_error = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
            return model

    def _walk(self, graph: onnx.GraphProto, prefix: str) -> None:
        for init in graph.initializer:
            self.constants.add(init.name)
            self.tensors[init.name] = TensorInfo(init.data_type, list(init.dims))
            self._remember_value(init.name, init)
        for value in list(graph.input) + list(graph.output) + list(graph.value_info):
            self._record_value_info(value)
        for index, node in enumerate(graph.node):
            name = node.name or f"{prefix}{node.op_type}#{index}"
            self.node_names[id(node)] = name
            self.nodes.append(node)
            for out in node.output:
                if out:
                    self.producers[out] = node
            if node.op_type == "Constant" and node.domain in DEFAULT_DOMAINS:
                self._record_constant_node(node)
            elif node.op_type == "Identity" and node.input and node.input[0] in self.constants:
                # The parser's Identity importer passes weights through as weights.
                self.constants.add(node.output[0])
                if node.input[0] in self.values:
                    self.values[node.output[0]] = self.values[node.input[0]]
                if node.input[0] in self.tensors and node.output[0] not in self.tensors:
                    self.tensors[node.output[0]] = self.tensors[node.input[0]]
            if node.op_type == "Cast" and node.domain in DEFAULT_DOMAINS and node.output:
                # The target type is certain even where shape inference gave up.
                to = next((a.i for a in node.attribute if a.name == "to"), 0)
                info = self.tensors.setdefault(node.output[0], TensorInfo())
                info.elem_type = info.elem_type or to
            for attr in node.attribute:
                subgraphs = [attr.g] if attr.type == onnx.AttributeProto.GRAPH else list(attr.graphs)
                for sub in subgraphs:
                    self._walk(sub, prefix=f"{name}/")

    def _record_value_info(self, value: onnx.ValueInfoProto) -> None:
        if not value.type.HasField("tensor_type"):
            return
        ttype = value.type.tensor_type
        shape = None
        if ttype.HasField("shape"):
            shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in ttype.shape.dim]
        old = self.tensors.get(value.name)
        elem_type = ttype.elem_type or (old.elem_type if old else 0)
        if shape is None and old is not None:
            shape = old.shape
        self.tensors[value.name] = TensorInfo(elem_type, shape)

    def _record_constant_node(self, node: onnx.NodeProto) -> None:
        out = node.output[0]
        self.constants.add(out)
        self.constant_node_outputs.add(out)
        for attr in node.attribute:
            if attr.name == "value":
                self.tensors[out] = TensorInfo(attr.t.data_type, list(attr.t.dims))
                self._remember_value(out, attr.t)
            elif attr.name in ("value_float", "value_floats"):
                values = [attr.f] if attr.name == "value_float" else list(attr.floats)
                self.values[out] = np.asarray(values, dtype=np.float32)
                self.tensors[out] = TensorInfo(onnx.TensorProto.FLOAT, list(self.values[out].shape))
            elif attr.name in ("value_int", "value_ints"):
                values = [attr.i] if attr.name == "value_int" else list(attr.ints)
                self.values[out] = np.asarray(values, dtype=np.int64)
                self.tensors[out] = TensorInfo(onnx.TensorProto.INT64, list(self.values[out].shape))

    def _remember_value(self, name: str, tensor: onnx.TensorProto) -> None:
        # Only small tensors are read (zero points, scales, pads); big weights are never needed.
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            return
        count = int(np.prod(tensor.dims)) if len(tensor.dims) else 1
        if count <= 65536:
            try:
                self.values[name] = numpy_helper.to_array(tensor)
            except Exception:  # unusual types (e.g. 4-bit) are not needed as values
                pass

    # -- questions the predicates ask ------------------------------------------------------------

    def name_of(self, node: onnx.NodeProto) -> str:
        return self.node_names[id(node)]

    def is_constant(self, name: str) -> bool:
        return name in self.constants

    def producer_op(self, name: str) -> str:
        node = self.producers.get(name)
        return node.op_type if node is not None else ""

    def only_constants_upstream(self, name: str) -> bool:
        """True when ``name`` is computed from constants alone (so constant folding would fix it)."""
        stack, seen = [name], set()
        while stack:
            current = stack.pop()
            if current in seen or current in self.constants:
                continue
            seen.add(current)
            node = self.producers.get(current)
            if node is None or node.op_type in ("RandomNormal", "RandomUniform", "RandomNormalLike",
                                                "RandomUniformLike"):
                return False  # a graph input, or an outer-scope value
            stack.extend(i for i in node.input if i)
        return True

    def upstream_nodes(self, name: str) -> List[onnx.NodeProto]:
        """Nodes that ``name`` depends on (nearest first), stopping at constants and graph inputs."""
        found, stack, seen = [], [name], set()
        while stack:
            current = stack.pop(0)
            if current in seen or current in self.constants:
                continue
            seen.add(current)
            node = self.producers.get(current)
            if node is not None:
                found.append(node)
                stack.extend(i for i in node.input if i)
        return found

    def elem_type(self, name: str) -> int:
        info = self.tensors.get(name)
        return info.elem_type if info else 0

    def shape(self, name: str) -> Optional[List[Union[int, str, None]]]:
        info = self.tensors.get(name)
        return info.shape if info else None

    def nodes_of(self, *ops: str) -> Iterator[onnx.NodeProto]:
        for node in self.nodes:
            if node.op_type in ops and node.domain in DEFAULT_DOMAINS:
                yield node

    def opset(self) -> Optional[int]:
        for entry in self.model.opset_import:
            if entry.domain in DEFAULT_DOMAINS:
                return entry.version
        return None


def _input(node: onnx.NodeProto, index: int) -> str:
    return node.input[index] if len(node.input) > index else ""


# --------------------------------------------------------------------------------------------
# Predicates: one per rule "check"; each yields hits (node, op, fields for the message)
# --------------------------------------------------------------------------------------------

@dataclass
class Hit:
    node: str
    op_type: str
    fields: Dict[str, Any] = field(default_factory=dict)


Check = Callable[[GraphView, dict, dict], Iterable[Hit]]
CHECKS: Dict[str, Check] = {}


def check(name: str) -> Callable[[Check], Check]:
    def register(func: Check) -> Check:
        CHECKS[name] = func
        return func
    return register


def _fold_hint(view: GraphView, name: str) -> str:
    if view.only_constants_upstream(name):
        return " (it is computed from constants only: constant-folding the graph would make it an initializer)"
    return ""


@check("unsupported_op")
def _unsupported_op(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    supported = supported_ops(view.version)
    for node in view.nodes:
        if node.domain in DEFAULT_DOMAINS and node.op_type not in supported:
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type})


@check("custom_domain_op")
def _custom_domain_op(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes:
        if node.domain not in DEFAULT_DOMAINS:
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type, "domain": node.domain})


@check("opset_range")
def _opset_range(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    opset = view.opset()
    low, high = opset_range(view.version)  # low is 1 where the docs give no lower bound
    if opset is not None and not low <= opset <= high:
        documented = f"opsets {low} to {high}" if low > 1 else f"opsets up to {high}"
        yield Hit("", "", {"opset": opset, "opset_min": low, "opset_max": high, "documented": documented})


def _dynamic_conv_weight(view: GraphView, node: onnx.NodeProto) -> bool:
    weight = _input(node, 1)
    # DequantizeLinear output = explicitly quantized weights: the pre-8.5 "quantized network" path.
    return bool(weight) and not view.is_constant(weight) and view.producer_op(weight) != "DequantizeLinear"


@check("conv_dynamic_weights")
def _conv_dynamic_weights(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Conv", "ConvTranspose"):
        if _dynamic_conv_weight(view, node):
            weight = _input(node, 1)
            yield Hit(view.name_of(node), node.op_type,
                      {"op": node.op_type, "input": weight, "hint": _fold_hint(view, weight)})


@check("conv_dynamic_bias")
def _conv_dynamic_bias(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Conv", "ConvTranspose"):
        bias = _input(node, 2)
        if bias and not view.is_constant(bias):
            hint = _fold_hint(view, bias)
            if view.producer_op(bias) == "DequantizeLinear":
                hint += " (it is a dequantized bias: quantize with QuantizeBias=False)"
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type, "input": bias, "hint": hint})


@check("conv_dynamic_weights_grouped")
def _conv_dynamic_weights_grouped(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Conv", "ConvTranspose"):
        group = int(node_attribute(node, "group", 1))
        if group > 1 and _dynamic_conv_weight(view, node):
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type, "group": group})


@check("conv_dynamic_weight_shape")
def _conv_dynamic_weight_shape(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Conv", "ConvTranspose"):
        if not _dynamic_conv_weight(view, node):
            continue
        weight = _input(node, 1)
        shape = view.shape(weight)
        if shape is None or not all(isinstance(d, int) and d > 0 for d in shape):
            shown = "unknown" if shape is None else "(" + ", ".join(str(d) if d else "?" for d in shape) + ")"
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type, "input": weight, "shape": shown})


@check("pad_mode")
def _pad_mode(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Pad"):
        mode = node_attribute(node, "mode", "constant")
        if mode in params.get("modes", []):
            yield Hit(view.name_of(node), node.op_type, {"mode": mode})


@check("pad_dynamic_pads")
def _pad_dynamic_pads(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Pad"):
        pads = _input(node, 1)  # opset >= 11; earlier opsets carry pads as an attribute
        if pads and not view.is_constant(pads):
            reshapes = [view.name_of(n) for n in view.upstream_nodes(pads)
                        if n.op_type == "Reshape" and len(view.shape(n.output[0]) or []) >= 2]
            reshape = f"; here it is {reshapes[0]}" if reshapes else ""
            yield Hit(view.name_of(node), node.op_type,
                      {"input": pads, "hint": _fold_hint(view, pads), "reshape": reshape})


@check("pad_dynamic_axes")
def _pad_dynamic_axes(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Pad"):
        axes = _input(node, 3)
        if axes and not view.is_constant(axes):
            yield Hit(view.name_of(node), node.op_type, {"input": axes})


@check("instancenorm_dynamic_params")
def _instancenorm_dynamic_params(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("InstanceNormalization"):
        for index, which in ((1, "scale"), (2, "bias")):
            name = _input(node, index)
            if name and not view.is_constant(name):
                yield Hit(view.name_of(node), node.op_type,
                          {"which": which, "input": name, "hint": _fold_hint(view, name)})


@check("instancenorm_dtypes")
def _instancenorm_dtypes(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    float_types = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    for node in view.nodes_of("InstanceNormalization"):
        types = [view.elem_type(_input(node, i)) for i in range(3)]
        if 0 in types:
            continue  # unknown types: nothing to claim
        if types[0] not in float_types or len(set(types)) > 1:
            names = [DTYPE_NAMES.get(t, str(t)) for t in types]
            yield Hit(view.name_of(node), node.op_type,
                      {"input_type": names[0], "scale_type": names[1], "bias_type": names[2]})


@check("op_present")
def _op_present(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of(*params.get("ops", [])):
        yield Hit(view.name_of(node), node.op_type, {"op": node.op_type})


@check("topk_dynamic_k")
def _topk_dynamic_k(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("TopK"):
        k = _input(node, 1)  # opset >= 10
        if k and not view.is_constant(k):
            yield Hit(view.name_of(node), node.op_type, {"input": k})


@check("resize_mode")
def _resize_mode(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Resize"):
        problems = []
        mode = node_attribute(node, "mode", "nearest")
        if mode not in params["modes"]:
            problems.append(f"mode={mode}")
        coord = node_attribute(node, "coordinate_transformation_mode", "half_pixel")
        if coord not in params["coordinate_modes"]:
            problems.append(f"coordinate_transformation_mode={coord}")
        nearest = node_attribute(node, "nearest_mode", "round_prefer_floor")
        if mode == "nearest" and nearest not in params["nearest_modes"]:
            problems.append(f"nearest_mode={nearest}")
        if int(node_attribute(node, "antialias", 0)):
            problems.append("antialias=1")
        policy = node_attribute(node, "keep_aspect_ratio_policy", "stretch")
        if policy != "stretch":
            problems.append(f"keep_aspect_ratio_policy={policy}")
        if problems:
            yield Hit(view.name_of(node), node.op_type, {"problem": ", ".join(problems)})


@check("resize_tf_half_pixel_nearest")
def _resize_tf_half_pixel_nearest(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Resize"):
        coord = node_attribute(node, "coordinate_transformation_mode", "half_pixel")
        nearest = node_attribute(node, "nearest_mode", "round_prefer_floor")
        if node_attribute(node, "mode", "nearest") == "nearest" and coord == "tf_half_pixel_for_nn" \
                and nearest != "round_prefer_floor":
            yield Hit(view.name_of(node), node.op_type, {"nearest_mode": nearest})


@check("dtype_present")
def _dtype_present(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    # Aggregated: one finding per graph per rule, listing a few tensor names.
    wanted = {getattr(onnx.TensorProto, t) for t in params["types"] if hasattr(onnx.TensorProto, t)}
    scope = level.get("scope", params.get("scope", "any"))  # any | internal | io
    names = sorted(name for name, info in view.tensors.items()
                   if info.elem_type in wanted and (scope == "any" or (name in view.graph_io) == (scope == "io")))
    if names:
        types = sorted({DTYPE_NAMES[view.tensors[n].elem_type] for n in names})
        yield Hit("", "", {"count": len(names), "examples": ", ".join(names[:MAX_EXAMPLES]),
                           "types": "/".join(types)})


def _qdq_nodes(view: GraphView) -> Iterator[onnx.NodeProto]:
    return view.nodes_of("QuantizeLinear", "DequantizeLinear")


@check("qdq_zero_point")
def _qdq_zero_point(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in _qdq_nodes(view):
        zero_point = _input(node, 2)
        value = view.values.get(zero_point)
        if value is not None and value.size and np.any(value.astype(np.float64) != 0):
            first = value.reshape(-1)[np.flatnonzero(value.reshape(-1))[0]]
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type, "input": zero_point,
                                                         "value": first.item()})


@check("qdq_quantized_type")
def _qdq_quantized_type(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    allowed = level.get("allowed", ["INT8"])
    for node in _qdq_nodes(view):
        # The quantized type is the zero point's type; without one, DequantizeLinear's input type
        # (QuantizeLinear without a zero point outputs UINT8 per the ONNX spec).
        zero_point = _input(node, 2)
        if zero_point:
            name, qtype = zero_point, view.elem_type(zero_point)
        elif node.op_type == "DequantizeLinear":
            name, qtype = _input(node, 0), view.elem_type(_input(node, 0))
        else:
            name, qtype = node.output[0], onnx.TensorProto.UINT8
        if qtype and DTYPE_NAMES.get(qtype) not in allowed:
            qname = DTYPE_NAMES.get(qtype, str(qtype))
            hint = ""
            if qname == "INT32":
                hint = " (an INT32 DequantizeLinear is ONNX Runtime's quantized bias: pass QuantizeBias=False)"
            elif qname == "UINT8":
                hint = " (UINT8 comes from asymmetric activations: use QuantType.QInt8, ActivationSymmetric)"
            yield Hit(view.name_of(node), node.op_type,
                      {"op": node.op_type, "input": name, "qtype": qname, "allowed": "/".join(allowed),
                       "hint": hint})


@check("qdq_missing_zero_point")
def _qdq_missing_zero_point(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in _qdq_nodes(view):
        if not _input(node, 2):
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type})


@check("qdq_per_channel_activation")
def _qdq_per_channel_activation(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in _qdq_nodes(view):
        data, scale = _input(node, 0), _input(node, 1)
        shape = view.shape(scale)
        if shape is None and scale in view.values:
            shape = list(view.values[scale].shape)
        scales = int(np.prod([d for d in shape if isinstance(d, int)])) if shape else 1
        if scales > 1 and not view.is_constant(data) and not view.only_constants_upstream(data):
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type, "input": data, "scales": scales})


@check("qdq_scale_positive")
def _qdq_scale_positive(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in _qdq_nodes(view):
        scale = _input(node, 1)
        value = view.values.get(scale)
        if value is not None and value.size and np.any(value.astype(np.float64) <= 0):
            bad = value.reshape(-1)[np.flatnonzero(value.reshape(-1) <= 0)[0]]
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type, "input": scale, "value": bad.item()})


@check("dynamic_inputs")
def _dynamic_inputs(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    initializers = {init.name for init in view.graph.initializer}
    described = []
    for value in view.graph.input:
        if value.name in initializers:
            continue  # old IR versions list initializers as inputs too
        shape = view.shape(value.name)
        if shape is None or not all(isinstance(d, int) and d > 0 for d in shape):
            dims = "?" if shape is None else ", ".join(str(d) if d else "?" for d in shape)
            described.append(f"{value.name}[{dims}]")
    if described:
        yield Hit("", "", {"inputs": "; ".join(described)})


@check("instancenorm_plugin")
def _instancenorm_plugin(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    # Aggregated: the consequence (a plugin library at run time, no DLA) is per engine, not per node.
    nodes = [view.name_of(node) for node in view.nodes_of("InstanceNormalization")]
    if nodes:
        yield Hit("", "InstanceNormalization", {"count": len(nodes), "examples": ", ".join(nodes[:MAX_EXAMPLES])})


@check("pool_dilations")
def _pool_dilations(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of(*params["ops"]):
        dilations = list(node_attribute(node, "dilations", []) or [])
        if any(int(d) != 1 for d in dilations):
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type, "dilations": dilations})


@check("resize_computed_scales_axes")
def _resize_computed_scales_axes(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Resize"):
        axes = [int(a) for a in (node_attribute(node, "axes", []) or [])]
        computed = [name for name in (_input(node, 2), _input(node, 3)) if name and not view.is_constant(name)]
        if axes and computed and axes != list(range(len(axes))):
            yield Hit(view.name_of(node), node.op_type, {"input": computed[0], "axes": axes})


_WEIGHTED = ("Conv", "ConvTranspose", "Gemm", "MatMul")


@check("qdq_placement")
def _qdq_placement(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    """Weighted layers whose activation input is not quantized, in a graph that has Q/DQ:
    TensorRT then cannot run them in INT8 (the Q/DQ sits on the wrong side to fuse)."""
    if not any(True for _ in view.nodes_of("QuantizeLinear")):
        return
    unquantized = [view.name_of(node) for node in view.nodes_of(*_WEIGHTED)
                   if view.producer_op(_input(node, 1)) == "DequantizeLinear"
                   and view.producer_op(_input(node, 0)) != "DequantizeLinear"]
    if unquantized:
        yield Hit("", "", {"count": len(unquantized), "examples": ", ".join(unquantized[:MAX_EXAMPLES])})


@check("dla_limits")
def _dla_limits(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    problems = []
    limit = int(params["max_dim"])
    for value in list(view.graph.input) + list(view.graph.output):
        if value.name not in view.graph_io:
            continue
        shape = view.shape(value.name)
        if shape is None or not all(isinstance(d, int) and d > 0 for d in shape):
            problems.append(f"{value.name} has dynamic dimensions (DLA needs min = opt = max)")
        elif any(d > limit for d in shape[1:]):
            problems.append(f"{value.name} has a dimension over {limit}")
    wide = []
    for node in view.nodes_of("Conv", "ConvTranspose"):
        shape = view.shape(node.output[0]) or []
        if len(shape) > 1 and isinstance(shape[1], int) and shape[1] > limit:
            wide.append(view.name_of(node))
    if wide:
        problems.append(f"{len(wide)} convolutions with more than {limit} output maps ({', '.join(wide[:2])})")
    if problems:
        yield Hit("", "", {"problems": "; ".join(problems)})


@check("fp16_normalization")
def _fp16_normalization(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of(*params["ops"]):
        if view.elem_type(_input(node, 0)) == onnx.TensorProto.FLOAT16:
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type})


@check("constant_nodes")
def _constant_nodes(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    if view.constant_node_outputs:
        yield Hit("", "", {"count": len(view.constant_node_outputs)})


@check("shape_inference")
def _shape_inference(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    if view.inference_error:
        yield Hit("", "", {"reason": view.inference_error})


# --------------------------------------------------------------------------------------------
# Running the rules
# --------------------------------------------------------------------------------------------

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def _fill(template: str, fields: Dict[str, Any]) -> str:
    """Substitute {name} placeholders; other braces (e.g. a Python dict in a remedy) stay as written."""
    return _PLACEHOLDER.sub(lambda m: str(fields[m.group(1)]) if m.group(1) in fields else m.group(0), template)


def check_model(model: onnx.ModelProto, trt_version: Union[str, TrtVersion], name: str = "model") -> GraphReport:
    """Run every rule on one in-memory model."""
    version = trt_version if isinstance(trt_version, TrtVersion) else parse_trt_version(trt_version)
    view = GraphView(model, version)
    report = GraphReport(name)
    for rule in load_rules()["rules"]:
        level = _level_for(rule, version)
        if level is None:
            continue
        template = level.get("message") or rule.get("message", "")
        for hit in CHECKS[rule["check"]](view, rule.get("params", {}), level):
            fields = dict(hit.fields, version=version.label)
            report.findings.append(Finding(
                rule_id=rule["id"], severity=level["severity"], node=hit.node, op_type=hit.op_type,
                message=_fill(template, fields), remedy=_fill(rule.get("remedy", ""), fields),
                source=" ; ".join(rule["sources"])))
    order = {s: i for i, s in enumerate(SEVERITIES)}
    report.findings.sort(key=lambda f: (order[f.severity], f.rule_id, f.node))
    return report


def load_onnx(path: Union[str, Path]) -> onnx.ModelProto:
    """Read an ONNX file without its external weights; TrtCheckError (naming the file) if it is not one."""
    path = Path(path)
    if not path.is_file():
        raise TrtCheckError(f"{path}: no such ONNX file")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # protobuf DecodeError, OSError, ...
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise TrtCheckError(f"{path}: not a readable ONNX model ({reason})") from None
    # Protobuf happily parses many non-ONNX byte strings into an empty message.
    if not model.opset_import or not model.HasField("graph") or not model.graph.node:
        raise TrtCheckError(f"{path}: not an ONNX model (no graph or opset found)")
    return model


def graph_files(path: Union[str, Path]) -> List[Path]:
    """The ONNX files ``path`` stands for: itself, the manifest's graphs, or every *.onnx in a folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise TrtCheckError(f"{path}: no such file or export directory")
    manifest = path / "manifest.json"
    if manifest.is_file():
        files = _manifest_files(manifest)
    else:
        files = sorted(p.name for p in path.glob("*.onnx"))
    if not files:
        raise TrtCheckError(f"{path}: no ONNX graphs found (no *.onnx files and no graphs in a manifest.json)")
    resolved = []
    for name in files:
        candidate = path / name
        if not candidate.is_file():
            raise TrtCheckError(f"{candidate}: listed in {manifest.name} but missing")
        resolved.append(candidate)
    return resolved


def _manifest_files(manifest: Path) -> List[str]:
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise TrtCheckError(f"{manifest}: unreadable manifest ({error})") from None
    graphs = data.get("graphs") if isinstance(data, dict) else None
    if graphs is None:
        return []
    # Accept a list of {"file": ...} entries, a {role: {"file": ...}} mapping, or plain file names.
    entries: Sequence[Any] = list(graphs.values()) if isinstance(graphs, dict) else list(graphs)
    files = []
    for entry in entries:
        file = entry.get("file") if isinstance(entry, dict) else entry
        if not isinstance(file, str) or not file:
            raise TrtCheckError(f"{manifest}: a graph entry has no 'file'")
        files.append(file)
    return files


def check_trt_compat(path_or_dir: Union[str, Path], trt_version: Union[str, TrtVersion]) -> Report:
    """Check an .onnx file, or an export directory (manifest.json's graphs, else every *.onnx)."""
    version = trt_version if isinstance(trt_version, TrtVersion) else parse_trt_version(trt_version)
    report = Report(version)
    for file in graph_files(path_or_dir):
        report.graphs.append(check_model(load_onnx(file), version, name=file.name))
    return report


# --------------------------------------------------------------------------------------------
# Presentation
# --------------------------------------------------------------------------------------------

_STYLES = {"error": "bold red", "warning": "yellow", "info": "cyan"}


def format_report(report: Report, max_per_rule: int = 3):
    """A rich Table, one row per finding (severity, graph, rule, node, message, remedy, source).

    A rule that fires on many nodes (reflect pads, say) shows ``max_per_rule`` rows and a count
    of the rest, so the table stays readable; ``report.findings`` keeps every one.
    """
    from rich.markup import escape  # rich is a base dependency; imported here to keep import light
    from rich.table import Table

    title = (f"TensorRT {report.version.text} compatibility"
             + (f" (checked as {report.version.label})" if report.version.text != report.version.label else ""))
    table = Table(title=title, show_lines=False, expand=False)
    table.add_column("severity", no_wrap=True)
    table.add_column("graph", no_wrap=True)
    table.add_column("rule", no_wrap=True)
    table.add_column("node", overflow="fold")
    table.add_column("finding / remedy", overflow="fold")
    for graph in report.graphs:
        if not graph.findings:
            table.add_row("[green]ok[/]", escape(graph.name), "", "", "no findings")
        shown: Dict[Tuple[str, str], int] = {}
        for f in graph.findings:
            key = (f.rule_id, f.severity)
            shown[key] = shown.get(key, 0) + 1
            if shown[key] > max_per_rule:
                continue
            node = f"{f.node} ({f.op_type})" if f.node else (f.op_type or "(graph)")
            sources = f.source.split(" ; ")
            source = sources[0] + (f" (+{len(sources) - 1} more)" if len(sources) > 1 else "")
            # Messages hold shapes like x[1, 4, h, w]: escape them so rich does not read markup.
            text = escape(f.message) + (f"\n[dim]-> {escape(f.remedy)}[/]" if f.remedy else "") \
                + f"\n[dim]source: {escape(source)}[/]"
            table.add_row(f"[{_STYLES[f.severity]}]{f.severity}[/]", escape(graph.name), f.rule_id, escape(node), text)
        for (rule_id, severity), count in shown.items():
            if count > max_per_rule:
                table.add_row(f"[{_STYLES[severity]}]{severity}[/]", escape(graph.name), rule_id, "...",
                              f"[dim]and {count - max_per_rule} more node(s) with this finding[/]")
    return table


def report_text(report: Report) -> str:
    """Plain-text rendering (logs, tests)."""
    lines = []
    for graph in report.graphs:
        for f in graph.findings:
            where = f"{f.node} ({f.op_type})" if f.node else "(graph)"
            lines.append(f"{f.severity:7s} {graph.name} {f.rule_id} {where}: {f.message}")
    lines.append(_verdict(report))
    return "\n".join(lines)


def _verdict(report: Report) -> str:
    counts = f"{report.count('error')} error(s), {report.count('warning')} warning(s), {report.count('info')} note(s)"
    state = "compatible" if report.ok else "NOT compatible"
    return f"TensorRT {report.version.text}: {state} ({counts}) in {len(report.graphs)} graph(s)"


def main_check(args) -> int:
    """CLI body for ``infusionnet export check-trt PATH --trt VERSION``: 1 if any error, else 0.

    Reads ``args.path`` (the file or export directory) and ``args.trt``. Bad paths, non-ONNX
    files and unknown versions raise TrtCheckError (an InfusionNetError) for the CLI to print.
    """
    from rich.console import Console

    path = getattr(args, "path", None) or getattr(args, "target", None)
    version = getattr(args, "trt", None) or getattr(args, "trt_version", None)
    if path is None or version is None:
        raise TrtCheckError("check-trt needs a path and --trt VERSION")
    report = check_trt_compat(path, version)
    console = Console()
    console.print(format_report(report))
    console.print(_verdict(report), style="green" if report.ok else "bold red", highlight=False)
    return 0 if report.ok else 1
