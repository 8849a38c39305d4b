"""Small, dependency-light helpers for reading ONNX nodes and graph I/O (onnx and the manifest's
TensorSpec only: no torch)."""
from typing import Any, List, Tuple

import onnx

from infusionnet.runtime.manifest import TensorSpec


def node_attribute(node: onnx.NodeProto, name: str, default: Any = None) -> Any:
    """The value of attribute ``name`` of ``node`` (strings decoded), or ``default``."""
    for attr in node.attribute:
        if attr.name == name:
            value = onnx.helper.get_attribute_value(attr)
            return value.decode() if isinstance(value, bytes) else value
    return default


def tensor_specs(values) -> List[TensorSpec]:
    """A graph's inputs or outputs (``graph.input``, ``graph.output``) as TensorSpecs."""
    specs = []
    for value in values:
        tensor = value.type.tensor_type
        shape = [dim.dim_param if dim.dim_param else dim.dim_value for dim in tensor.shape.dim]
        dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type).name
        specs.append(TensorSpec(value.name, shape, dtype))
    return specs


def graph_io(path) -> Tuple[List[TensorSpec], List[TensorSpec]]:
    """(inputs, outputs) of the ONNX graph in ``path``; its weights are not read."""
    graph = onnx.load(str(path), load_external_data=False).graph
    return tensor_specs(graph.input), tensor_specs(graph.output)
