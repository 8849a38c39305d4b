"""The predicates: one per rule ``check`` name of the rules table, registered in ``registry.CHECKS``."""
from typing import Iterator

import numpy as np
import onnx

from ..onnx_nodes import node_attribute
from .graph_view import DEFAULT_DOMAINS, GraphView, node_input
from .registry import Hit, check
from .versions import opset_range, supported_ops

# ONNX element type names by TensorProto.DataType value ("FLOAT16", "INT64", ...), the spelling
# the rules file uses.
DTYPE_NAMES = {value: name for name, value in onnx.TensorProto.DataType.items()}
MAX_EXAMPLES = 3  # tensor names quoted in aggregated (per-graph) findings


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
    weight = node_input(node, 1)
    # DequantizeLinear output = explicitly quantized weights: the pre-8.5 "quantized network" path.
    return bool(weight) and not view.is_constant(weight) and view.producer_op(weight) != "DequantizeLinear"


@check("conv_dynamic_weights")
def _conv_dynamic_weights(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Conv", "ConvTranspose"):
        if _dynamic_conv_weight(view, node):
            weight = node_input(node, 1)
            yield Hit(view.name_of(node), node.op_type,
                      {"op": node.op_type, "input": weight, "hint": _fold_hint(view, weight)})


@check("conv_dynamic_bias")
def _conv_dynamic_bias(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Conv", "ConvTranspose"):
        bias = node_input(node, 2)
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
        weight = node_input(node, 1)
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
        pads = node_input(node, 1)  # opset >= 11; earlier opsets carry pads as an attribute
        if pads and not view.is_constant(pads):
            reshapes = [view.name_of(n) for n in view.upstream_nodes(pads)
                        if n.op_type == "Reshape" and len(view.shape(n.output[0]) or []) >= 2]
            reshape = f"; here it is {reshapes[0]}" if reshapes else ""
            yield Hit(view.name_of(node), node.op_type,
                      {"input": pads, "hint": _fold_hint(view, pads), "reshape": reshape})


@check("pad_dynamic_axes")
def _pad_dynamic_axes(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("Pad"):
        axes = node_input(node, 3)
        if axes and not view.is_constant(axes):
            yield Hit(view.name_of(node), node.op_type, {"input": axes})


@check("instancenorm_dynamic_params")
def _instancenorm_dynamic_params(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in view.nodes_of("InstanceNormalization"):
        for index, which in ((1, "scale"), (2, "bias")):
            name = node_input(node, index)
            if name and not view.is_constant(name):
                yield Hit(view.name_of(node), node.op_type,
                          {"which": which, "input": name, "hint": _fold_hint(view, name)})


@check("instancenorm_dtypes")
def _instancenorm_dtypes(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    float_types = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    for node in view.nodes_of("InstanceNormalization"):
        types = [view.elem_type(node_input(node, i)) for i in range(3)]
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
        k = node_input(node, 1)  # opset >= 10
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
        zero_point = node_input(node, 2)
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
        zero_point = node_input(node, 2)
        if zero_point:
            name, qtype = zero_point, view.elem_type(zero_point)
        elif node.op_type == "DequantizeLinear":
            name, qtype = node_input(node, 0), view.elem_type(node_input(node, 0))
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
        if not node_input(node, 2):
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type})


@check("qdq_per_channel_activation")
def _qdq_per_channel_activation(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in _qdq_nodes(view):
        data, scale = node_input(node, 0), node_input(node, 1)
        shape = view.shape(scale)
        if shape is None and scale in view.values:
            shape = list(view.values[scale].shape)
        scales = int(np.prod([d for d in shape if isinstance(d, int)])) if shape else 1
        if scales > 1 and not view.is_constant(data) and not view.only_constants_upstream(data):
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type, "input": data, "scales": scales})


@check("qdq_scale_positive")
def _qdq_scale_positive(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    for node in _qdq_nodes(view):
        scale = node_input(node, 1)
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
        computed = [name for name in (node_input(node, 2), node_input(node, 3)) if name and not view.is_constant(name)]
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
                   if view.producer_op(node_input(node, 1)) == "DequantizeLinear"
                   and view.producer_op(node_input(node, 0)) != "DequantizeLinear"]
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
        if view.elem_type(node_input(node, 0)) == onnx.TensorProto.FLOAT16:
            yield Hit(view.name_of(node), node.op_type, {"op": node.op_type})


@check("constant_nodes")
def _constant_nodes(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    if view.constant_node_outputs:
        yield Hit("", "", {"count": len(view.constant_node_outputs)})


@check("shape_inference")
def _shape_inference(view: GraphView, params: dict, level: dict) -> Iterator[Hit]:
    if view.inference_error:
        yield Hit("", "", {"reason": view.inference_error})
