"""What the predicates need to know about a model: nodes, constants, producers, tensor types.

Built after ONNX shape inference, so that computed tensors and initializers can be told apart.
"""
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Set, Union

import numpy as np
import onnx
from onnx import numpy_helper

if TYPE_CHECKING:  # only for the annotation: versions -> rules -> registry -> here at run time
    from .versions import TrtVersion

DEFAULT_DOMAINS = ("", "ai.onnx")


@dataclass
class TensorInfo:
    elem_type: int = 0                           # TensorProto.DataType, 0 = unknown
    shape: Optional[List[Union[int, str, None]]] = None   # None = unknown rank


class GraphView:
    """Nodes (subgraphs included), constants, producers and tensor types of one model."""

    def __init__(self, model: onnx.ModelProto, version: "TrtVersion"):
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


def node_input(node: onnx.NodeProto, index: int) -> str:
    """The name of input ``index`` of ``node``, "" when absent (optional inputs may be left out)."""
    return node.input[index] if len(node.input) > index else ""
