"""Graph rewrites that lay an INT8 graph out for ONNX Runtime's CPU kernels (``--int8-target cpu``).

The default INT8 graph is TensorRT's explicit-quantization form: symmetric INT8 activations,
Q/DQ around convolutions only. ONNX Runtime runs that graph on the CPU too, but slowly: it fuses
each DQ -> Conv -> Q into an NHWC QLinearConv and leaves everything between two convolutions in
float, so every reflect Pad (ONNX Conv pads zeros only, so each 3x3 conv has its own Pad) reads
a dequantized tensor four times the size of the quantized one, with a DequantizeLinear before it
and a QuantizeLinear after it. The CPU form fixes that in three steps, each measured on the
512x512 content graph of a 2-core AVX-512 VNNI CPU (benchmarks/results/amd-epyc-2cores/profile.md):

1. ``average_pools_as_convs`` (before quantizing): each 2x2/stride-2 AveragePool becomes the
   equal depthwise Conv with weights 1/4, so it quantizes into a QLinearConv. ONNX Runtime's
   QLinearAveragePool took 10.7 ms for the stem output alone; the conv form ~2 ms.
2. Quantize with uint8 asymmetric activations (MLAS's u8 x s8 VNNI path; the symmetric INT8 graph
   leaves the 7x7 stem conv in float) and Q/DQ around Pad, Add and LeakyReLU as well as Conv.
   Weights get 7 bits (``precision.to_int8``): CPUs without VNNI add u8 x s8 products in int16
   pairs, which 8-bit weights saturate.
3. ``pads_on_quantized_tensors`` (after quantizing): DQ -> Pad(reflect) -> Q with the same scale
   and zero point is the identity on the quantized values, so the Pad reads the uint8 tensor
   directly and both Q/DQ nodes go. Pads went from 45 to 10 ms, Q/DQ from 37 to 25 ms.

Together: 249 ms -> 167 ms per frame with the same PSNR. ONNX Runtime does not do step 3 itself
(its QDQ rules drop Q/DQ around Resize and Transpose, not Pad). TensorRT cannot take the
result (uint8 tensors in the middle of the graph), which is why this is a separate target.
"""
from typing import Dict, List, Set

import numpy as np
import onnx
from onnx import helper, numpy_helper

from .onnx_nodes import node_attribute

# Pad modes that copy input values (no new values), so they commute with quantization.
COPYING_PAD_MODES = ("reflect", "edge")


def _channels(model: onnx.ModelProto) -> Dict[str, int]:
    """Channel count (dim 1) of every value whose shape is known."""
    inferred = onnx.shape_inference.infer_shapes(model)
    channels = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        dims = value.type.tensor_type.shape.dim
        if len(dims) == 4 and dims[1].dim_value > 0:
            channels[value.name] = dims[1].dim_value
    return channels


def average_pools_as_convs(model: onnx.ModelProto) -> int:
    """Rewrite every 2x2, stride-2, unpadded AveragePool as a depthwise Conv with weights 1/4
    (in place). Returns how many were rewritten; 0.25 * (a+b+c+d) equals the mean to rounding."""
    channels = _channels(model)
    rewritten = 0
    for node in model.graph.node:
        if node.op_type != "AveragePool":
            continue
        if (list(node_attribute(node, "kernel_shape", [])) != [2, 2]
                or list(node_attribute(node, "strides", [1, 1])) != [2, 2]
                or any(node_attribute(node, "pads", [0, 0, 0, 0])) or node_attribute(node, "ceil_mode", 0)
                or node.input[0] not in channels):
            continue
        count = channels[node.input[0]]
        weight = numpy_helper.from_array(np.full((count, 1, 2, 2), 0.25, np.float32), f"{node.name}/mean_weight")
        model.graph.initializer.append(weight)
        node.op_type = "Conv"
        del node.attribute[:]
        node.attribute.extend([helper.make_attribute("kernel_shape", [2, 2]),
                               helper.make_attribute("strides", [2, 2]),
                               helper.make_attribute("group", count)])
        node.input.append(weight.name)
        rewritten += 1
    return rewritten


def _same_quantization(constants: Dict[str, onnx.TensorProto], a: onnx.NodeProto, b: onnx.NodeProto) -> bool:
    """Do the two Q/DQ nodes use identical constant, per-tensor scale and zero point?"""
    if len(a.input) < 3 or len(b.input) < 3:
        return False

    def value(name: str):
        return numpy_helper.to_array(constants[name]) if name in constants else None

    scales = [value(node.input[1]) for node in (a, b)]
    zeros = [value(node.input[2]) for node in (a, b)]
    if any(value is None for value in scales + zeros) or scales[0].size != 1:
        return False
    return (np.array_equal(scales[0], scales[1]) and np.array_equal(zeros[0], zeros[1])
            and zeros[0].dtype == zeros[1].dtype)


def _is_copying_pad(node: onnx.NodeProto) -> bool:
    return node.op_type == "Pad" and node_attribute(node, "mode", "constant") in COPYING_PAD_MODES


def pads_on_quantized_tensors(model: onnx.ModelProto) -> int:
    """Turn every DQ -> Pad(reflect/edge) -> Q (same scale and zero point) into a Pad on the
    quantized tensor (in place). Returns how many Pads moved; the result is exact."""
    graph = model.graph
    producer = {output: node for node in graph.node for output in node.output}
    consumers: Dict[str, List[onnx.NodeProto]] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    graph_outputs = {value.name for value in graph.output}
    constants = {tensor.name: tensor for tensor in graph.initializer}
    dropped: Set[int] = set()
    retyped: Set[str] = set()
    for pad in graph.node:
        if not _is_copying_pad(pad) or pad.output[0] in graph_outputs:
            continue
        dequantize = producer.get(pad.input[0])
        quantizes = consumers.get(pad.output[0], [])
        if (dequantize is None or dequantize.op_type != "DequantizeLinear" or not quantizes
                or any(q.op_type != "QuantizeLinear" or not _same_quantization(constants, dequantize, q)
                       for q in quantizes)):
            continue
        pad.input[0] = dequantize.input[0]
        for quantize in quantizes:
            for consumer in consumers.get(quantize.output[0], []):
                for index, name in enumerate(consumer.input):
                    if name == quantize.output[0]:
                        consumer.input[index] = pad.output[0]
            dropped.add(id(quantize))
        retyped.add(pad.output[0])
    if not retyped:
        return 0
    kept = [node for node in graph.node if id(node) not in dropped]
    used = {name for node in kept for name in node.input} | graph_outputs
    # A DequantizeLinear whose only reader was a moved Pad has no consumer left.
    kept = [node for node in kept if not (node.op_type == "DequantizeLinear" and node.output[0] not in used)]
    del graph.node[:]
    graph.node.extend(kept)
    # The moved Pads' outputs are now uint8: drop their stale float value_info (re-inferred later).
    values = [value for value in graph.value_info if value.name not in retyped]
    del graph.value_info[:]
    graph.value_info.extend(values)
    return len(retyped)
