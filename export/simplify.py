"""Step 2, simplify: constant-fold with onnxslim, then prove the graph is sound.

After this step a graph passes ``onnx.checker`` (full check, including shape inference), has
inferred shapes on every value, and contains none of the operators that TensorRT parsers handle
badly or that make shapes depend on data (deployment-facts.md, "Operators to watch").
"""
import heapq
from collections import Counter
from pathlib import Path
from typing import Dict, List

import onnx
import onnxslim

from .trace import ExportError

# Control flow, data-dependent shapes and gathers that the graph must never contain.
FORBIDDEN_OPS = frozenset({
    "GatherND", "ScatterND", "If", "Loop", "Scan", "NonZero", "Unique", "Compress",
    "NonMaxSuppression", "SequenceConstruct", "SequenceAt", "SplitToSequence",
    "ConcatFromSequence", "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
})


def simplify(path: Path) -> Path:
    """Fold constants and remove dead nodes in place with onnxslim; then run ``check_graph``."""
    path = Path(path)
    try:
        model = onnxslim.slim(onnx.load(str(path)))
    except Exception as error:
        raise ExportError(f"{path.name}: onnxslim failed: {error}") from error
    if model is None:
        raise ExportError(f"{path.name}: onnxslim returned no model")
    onnx.save(model, str(path))
    check_graph(path)
    return path


def check_graph(path: Path) -> onnx.ModelProto:
    """Checker, strict shape inference and the forbidden-operator scan; returns the inferred model."""
    path = Path(path)
    try:
        onnx.checker.check_model(str(path), full_check=True)
        model = onnx.shape_inference.infer_shapes(onnx.load(str(path)), check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as error:
        raise ExportError(f"{path.name}: ONNX check failed: {str(error).splitlines()[0]}") from error
    forbidden = forbidden_ops(model)
    if forbidden:
        raise ExportError(f"{path.name}: contains operators TensorRT handles badly: "
                          + ", ".join(f"{op} x{n}" for op, n in sorted(forbidden.items())))
    return model


def topological_sort(model: onnx.ModelProto) -> onnx.ModelProto:
    """Reorder the nodes so each comes after its inputs' producers (in place; returns ``model``).

    The FP16 converter appends its input Casts at the end of the node list; ONNX Runtime does
    not mind, but the ONNX checker and TensorRT's parser need a sorted graph. Stable: nodes keep
    their relative order wherever the dependencies allow.
    """
    nodes = list(model.graph.node)
    producer = {out: index for index, node in enumerate(nodes) for out in node.output if out}
    waiting = [{producer[name] for name in node.input if name in producer} for node in nodes]
    users = [[] for _ in nodes]
    for index, deps in enumerate(waiting):
        for dep in deps:
            users[dep].append(index)
    ready = sorted(index for index, deps in enumerate(waiting) if not deps)
    order = []
    heapq.heapify(ready)
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for user in users[index]:
            waiting[user].discard(index)
            if not waiting[user]:
                heapq.heappush(ready, user)
    if len(order) != len(nodes):
        raise ExportError("graph has a cycle; cannot sort its nodes")
    del model.graph.node[:]
    model.graph.node.extend(nodes[index] for index in order)
    return model


def op_counts(model: onnx.ModelProto) -> Dict[str, int]:
    return dict(Counter(node.op_type for node in model.graph.node))


def forbidden_ops(model: onnx.ModelProto) -> Dict[str, int]:
    return {op: n for op, n in op_counts(model).items() if op in FORBIDDEN_OPS}


def initializer_names(model: onnx.ModelProto) -> set:
    names = {init.name for init in model.graph.initializer}
    # A Constant node is an initializer in all but name (quantized graphs keep a few).
    names.update(out for node in model.graph.node if node.op_type == "Constant" for out in node.output)
    return names


def dynamic_weight_convs(model: onnx.ModelProto) -> List[onnx.NodeProto]:
    """Conv nodes whose weight is computed in the graph (AdaConv), not a constant.

    A weight reached through DequantizeLinear of a constant (QDQ graphs) or a Cast of a constant
    (FP16 graphs) still counts as constant.
    """
    constants = initializer_names(model)
    producers = {out: node for node in model.graph.node for out in node.output}

    def is_constant(name: str) -> bool:
        node = producers.get(name)
        while node is not None and node.op_type in ("DequantizeLinear", "Cast", "Identity"):
            name = node.input[0]
            node = producers.get(name)
        return name in constants

    return [node for node in model.graph.node if node.op_type == "Conv" and not is_constant(node.input[1])]


def conv_groups(node: onnx.NodeProto) -> int:
    for attribute in node.attribute:
        if attribute.name == "group":
            return attribute.i
    return 1
