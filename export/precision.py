"""Step 3, precision: FP32 graph -> FP16 graph, or -> INT8 graph with Q/DQ nodes.

FP16 (``to_fp16``): weights and compute in FP16, inputs and outputs stay FP32 (the runtime feeds
the same buffers whatever the precision). Instance normalization, reductions, the style pooling
MatMuls and powers/roots stay in FP32: the variance of large activations overflows FP16's 65504
(deployment-facts.md), and the 3x3 style code is averaged over hundreds of values.

INT8 (``to_int8``): ONNX Runtime's static quantizer in QDQ format with per-channel symmetric
INT8 weights, for one of two targets:
- ``tensorrt`` (default): symmetric INT8, Q/DQ placed the way TensorRT's guide asks for explicit
  quantization: on the inputs of weighted layers (each static-weight convolution's activation and
  its weights), never on their outputs, so the builder fuses each DQ -> Conv -> Q chain into INT8
  convolutions and keeps the elementwise ops between them in the convolutions' epilogues. ONNX
  Runtime's default QDQ layout also quantizes every convolution's output (a Q after the Conv, a DQ
  before each Add/LeakyReLU/InstanceNorm consumer), which TensorRT would have to run as separate
  reformats; ``QDQ_PLACEMENTS`` keeps it selectable so the two can be measured
  (``python -m infusionnet.benchmarks.qdq_placement``). The graph runs on ONNX Runtime too.
- ``cpu``: laid out for ONNX Runtime's CPU kernels (``cpu_int8``): uint8 asymmetric
  activations, 7-bit weights, average pools as convolutions, reflect pads on the quantized
  tensors. About 1.5x faster there; TensorRT cannot build it.
Convolutions whose weights are computed in the graph (AdaConv with predicted kernels) cannot be
quantized offline and stay in float. Calibration reads feed dicts (``calibration.RoleFeed``).
"""
import contextlib
import inspect
import io
import logging
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Sequence

import onnx

from infusionnet.runtime.calibration import CalibrationReader
from infusionnet.runtime.lazy import lazy_import, load
from infusionnet.runtime.manifest import PRECISIONS  # noqa: F401 (export.precision.PRECISIONS, as before)

from . import cpu_int8
from .calibration import CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD
from .simplify import check_graph, dynamic_weight_convs, topological_sort

# ONNX Runtime's FP16 converter and INT8 quantizer: imported when a graph is converted (an FP32
# export uses neither, and ONNX Runtime is an extra of its own).
ort_float16 = lazy_import("onnxruntime.transformers.float16")
ort_quantization = lazy_import("onnxruntime.quantization")
ort_calibrate = lazy_import("onnxruntime.quantization.calibrate")
ort_shape_inference = lazy_import("onnxruntime.quantization.shape_inference")
from .trace import ExportError

# Kept in FP32 inside FP16 graphs.
FP32_OPS = ("InstanceNormalization", "ReduceMean", "ReduceSum", "ReduceSumSquare", "ReduceL2",
            "GlobalAveragePool", "MatMul", "Pow", "Sqrt", "Reciprocal")
# Quantized operator types. Conv carries almost all of the compute; quantizing the elementwise
# ops (Add, LeakyRelu, Resize, Pad) between them too would save little on TensorRT, which fuses
# them into the convolutions anyway, and adds rounding at every octave cross path.
INT8_OPS = ("Conv",)
# The graphs INT8 quantizes: those that run for every frame. A split export's style graph runs once
# per style, so INT8 there buys no frame time, and its kernels' error reached every frame: on the
# 6,400-step default model, the TensorRT layout with 30 of 41 convolutions in float gave SSIM 0.960
# on `check`'s worst photo pair with the style graph in INT8, 0.985 with it in FP32. The others
# (the style graph) stay FP32.
INT8_ROLES = ("full", "content", "baked")
# "openvino" graphs are quantized by NNCF instead (export/openvino_int8.py), which places its own Q/DQ.
INT8_TARGETS = ("tensorrt", "cpu", "openvino")
# Operator types given Q/DQ per target. The CPU target also quantizes around Pad, so that
# ``cpu_int8.pads_on_quantized_tensors`` can move every reflect Pad onto uint8 data, and the
# octave paths' Add and LeakyReLU, which ONNX Runtime then runs as QLinearAdd/QLinearLeakyRelu
# instead of dequantizing both branches (measured 7% faster at 512x512, same PSNR).
INT8_OPS_BY_TARGET = {"tensorrt": INT8_OPS, "cpu": ("Conv", "Pad", "Add", "LeakyRelu"),
                      "openvino": ("Conv", "Add")}
# Where Q/DQ pairs go: "inputs" (TensorRT's recommendation: inputs of weighted layers only) or
# "onnxruntime" (ORT's QDQ default: inputs and outputs of every quantized op). The CPU layout
# needs quantized outputs (ONNX Runtime fuses DQ -> op -> Q into QLinear kernels).
QDQ_PLACEMENTS = ("inputs", "onnxruntime")
DEFAULT_QDQ_PLACEMENT = {"tensorrt": "inputs", "cpu": "onnxruntime"}


def to_fp16(source: Path, target: Path) -> Path:
    """Write the FP16 version of ``source`` to ``target`` (FP32 I/O, FP32 normalization)."""
    float16 = load(ort_float16)  # a missing package is not a failed conversion
    model = onnx.load(str(source))
    try:
        converted = float16.convert_float_to_float16(
            model, keep_io_types=True, op_block_list=list(float16.DEFAULT_OP_BLOCK_LIST) + list(FP32_OPS))
    except Exception as error:
        raise ExportError(f"{Path(source).name}: FP16 conversion failed: {error}") from error
    onnx.save(topological_sort(converted), str(target))
    check_graph(target)
    return Path(target)


def calibration_method(name: str):
    methods = {"minmax": ort_quantization.CalibrationMethod.MinMax,
               "entropy": ort_quantization.CalibrationMethod.Entropy,
               "percentile": ort_quantization.CalibrationMethod.Percentile}
    if name not in methods:
        raise ExportError(f"unknown calibration method {name!r}; choose from {', '.join(methods)}")
    return methods[name]


# Calibrator settings. quantize_static cannot pass histogram sizes through, and ORT's entropy
# default (128 bins into 128 quantized bins) leaves the KL search a single candidate, the full
# range: "entropy" silently equals "minmax" (measured: identical scales). TensorRT uses 2048 bins,
# but ORT's KL search is pure Python, ~0.5 s per tensor at 2048 bins (a minute per graph); 512
# bins give 193 candidate thresholds at 1/512 of the range for ~0.03 s per tensor.
# Symmetric ranges: TensorRT's INT8 has no zero point.
CALIBRATOR_OPTIONS = {
    "minmax": {"symmetric": True},
    "entropy": {"symmetric": True, "num_bins": 512, "num_quantized_bins": 128},
    "percentile": {"symmetric": True, "num_bins": 2048, "percentile": 99.999},
}


def calibrate(source: Path, reader, method: str, cache: Path, op_types=INT8_OPS, symmetric: bool = True) -> Path:
    """Run ``reader``'s feeds through ``source`` and save the activation ranges to ``cache``
    (ORT's calibration cache JSON, which ``quantize_static`` loads instead of calibrating)."""
    options = dict(CALIBRATOR_OPTIONS[method], symmetric=symmetric)
    calibrator = ort_calibrate.create_calibrator(Path(source), list(op_types),
                                                 augmented_model_path=str(Path(cache).with_suffix(".augmented.onnx")),
                                                 calibrate_method=calibration_method(method),
                                                 providers=["CPUExecutionProvider"], extra_options=options)
    with contextlib.redirect_stdout(io.StringIO()):  # the histogram calibrators print progress
        # One batch at a time: a calibrator keeps every activation of the feeds it is given until
        # it reduces them to ranges or histograms, so all batches at once would hold all of them.
        # Each call folds its batch into the running result (min/max, or merged histograms).
        for feed in reader:
            calibrator.collect_data(_SingleFeed(feed))
        ranges = calibrator.compute_data()
    ort_calibrate.save_tensors_data(ranges, cache)
    return Path(cache)


class _SingleFeed(CalibrationReader):
    """One feed dict as ONNX Runtime's CalibrationDataReader (``get_next`` once, then None)."""

    def __init__(self, feed):
        self.feed = feed

    def __iter__(self):
        yield self.feed


def to_int8(source: Path, target: Path, reader, method: str = DEFAULT_CALIBRATION_METHOD, pre_process: bool = False,
            int8_target: str = "tensorrt", calibration_source: Optional[Path] = None,
            keep_float: Sequence[str] = (), calibration_cache: Optional[Path] = None,
            placement: Optional[str] = None) -> Path:
    """Write the QDQ INT8 version of ``source`` for ``int8_target`` to ``target``, calibrated on
    ``reader``'s feeds. ``placement`` (one of ``QDQ_PLACEMENTS``) defaults to the target's.

    ``calibration_source``: the same network traced at the size of ``reader``'s feeds (a smaller
    one, to bound calibration memory); its activation ranges, found by tensor name, quantize
    ``source``. Every tensor that gets Q/DQ must have a range from it, or this fails.

    ``keep_float``: names of static-weight nodes left in float (the layers INT8 hurts most, see
    ``benchmarks.int8_sensitivity``). ``calibration_cache``: a file of activation ranges to reuse
    (written on the first call), so that many quantizations of one graph calibrate once.

    ``pre_process`` runs ORT's quant_pre_process first. Off by default: on graphs already
    simplified by onnxslim it gave the identical quantized graph and accuracy (measured on the
    full InfusionNet graph: same 641 nodes, same PSNR), for extra time.
    """
    quantization = load(ort_quantization)  # a missing package is not a failed quantization
    if int8_target not in INT8_OPS_BY_TARGET or int8_target == "openvino":
        raise ExportError(f"INT8 target {int8_target!r} is not ONNX Runtime's quantizer's: choose tensorrt or cpu "
                          "(openvino graphs come from export.openvino_int8)")
    placement = placement or DEFAULT_QDQ_PLACEMENT[int8_target]
    if placement not in QDQ_PLACEMENTS:
        raise ExportError(f"unknown Q/DQ placement {placement!r}; choose from {', '.join(QDQ_PLACEMENTS)}")
    source, target = Path(source), Path(target)
    cpu = int8_target == "cpu"
    op_types = INT8_OPS_BY_TARGET[int8_target]
    excluded = [node.name for node in dynamic_weight_convs(onnx.load(str(source)))] + list(keep_float)
    with tempfile.TemporaryDirectory(prefix="infusionnet-int8-") as scratch:
        model_in = source
        if pre_process:
            model_in = Path(scratch) / "preprocessed.onnx"
            _pre_process(source, model_in)
        calibrate_in = model_in if calibration_source is None else Path(calibration_source)
        if pre_process and calibration_source is not None:
            calibrate_in = Path(scratch) / "preprocessed-calibration.onnx"
            _pre_process(Path(calibration_source), calibrate_in)
        if cpu:
            model_in = _pools_as_convs(model_in, Path(scratch) / "pools-as-convs.onnx")
            calibrate_in = model_in if calibration_source is None else \
                _pools_as_convs(calibrate_in, Path(scratch) / "pools-as-convs-calibration.onnx")
        # TensorRT's INT8 has no zero point; the CPU's uint8 kernels use one to spend all 256
        # levels on the mostly positive LeakyReLU outputs.
        options = {"ActivationSymmetric": not cpu, "WeightSymmetric": True,
                   # Biases stay float: TensorRT's Q/DQ takes INT8 only, not ORT's INT32 bias
                   # DequantizeLinear.
                   "QuantizeBias": False}
        if placement == "inputs":
            options["OpTypesToExcludeOutputQuantization"] = list(op_types)
        activation_type = quantization.QuantType.QUInt8 if cpu else quantization.QuantType.QInt8
        # CPU layout: 7-bit weights. Without VNNI (AVX2, AVX-512F), ONNX Runtime's u8 x s8
        # convolutions add pairs of products in int16 (vpmaddubsw), which saturates above 32767:
        # 2 x 255 x 127 overflows, 2 x 255 x 64 does not. On a 2-core AVX2 AMD EPYC the default
        # model's keep-float CPU graph gave 32.2 dB fused vs 43.0 dB unfused; 7-bit weights gave
        # 42.8 dB both ways, at the same speed. The export cannot know which CPU will run it, and
        # VNNI CPUs lose only the 0.2 dB. Activations keep 8 bits (ORT's reduce_range is weights
        # only). TensorRT does not saturate, so its layout keeps 8-bit weights (ONNX Runtime runs
        # that layout unfused: runtime.ort_backend.fuses_qdq).
        reduce_range = cpu
        try:
            if "calibration_cache_path" in inspect.signature(quantization.quantize_static).parameters:
                cache = Path(calibration_cache) if calibration_cache else Path(scratch) / "calibration.json"
                if not cache.is_file():
                    calibrate(calibrate_in, reader, method, cache, op_types, symmetric=not cpu)
                if calibration_source is not None:
                    _check_ranges_cover(cache, model_in, op_types, excluded)
                calibration = {"calibration_data_reader": None, "calibration_cache_path": str(cache)}
            elif calibration_source is not None and Path(calibration_source) != source:
                raise ExportError("this onnxruntime cannot quantize with ranges calibrated on another graph "
                                  "(no calibration_cache_path): upgrade onnxruntime")
            else:  # older ORT: let quantize_static calibrate (its entropy then equals minmax)
                options["CalibTensorRangeSymmetric"] = not cpu
                calibration = {"calibration_data_reader": reader}
            # The quantizer logs a pre-processing hint we have measured and declined.
            with _quiet_root_logger(), contextlib.redirect_stdout(io.StringIO()):
                quantization.quantize_static(
                    str(model_in), str(target), quant_format=quantization.QuantFormat.QDQ,
                    op_types_to_quantize=list(op_types), per_channel=True, activation_type=activation_type,
                    weight_type=quantization.QuantType.QInt8, reduce_range=reduce_range, nodes_to_exclude=excluded,
                    calibrate_method=calibration_method(method), extra_options=options, **calibration)
        except ExportError:
            raise
        except Exception as error:
            raise ExportError(f"{source.name}: INT8 quantization failed: {str(error).splitlines()[0]}") from error
    if cpu:
        model = onnx.load(str(target))
        cpu_int8.pads_on_quantized_tensors(model)
        onnx.save(model, str(target))
    check_graph(target)
    return target


def _pools_as_convs(source: Path, target: Path) -> Path:
    model = onnx.load(str(source))
    cpu_int8.average_pools_as_convs(model)
    onnx.save(model, str(target))
    return target


def _check_ranges_cover(cache: Path, model_path: Path, op_types, excluded) -> None:
    """Every input and output of a node that gets Q/DQ must have a calibrated range: a range
    missing because the calibration graph named a tensor differently would be a silent gap."""
    ranges = set(ort_calibrate.load_tensors_data(cache).data)
    model = onnx.load(str(model_path), load_external_data=False)
    constants = {init.name for init in model.graph.initializer}
    skip = set(excluded)
    missing = sorted({name for node in model.graph.node if node.op_type in op_types and node.name not in skip
                      for name in list(node.input[:1]) + list(node.output) if name and name not in constants
                      and name not in ranges})
    if missing:
        raise ExportError(f"{Path(model_path).name}: the graph traced at the calibration size names tensors "
                          f"differently ({len(missing)} without a range, e.g. {missing[0]}); "
                          "export with --dynamic-size, or a content size of at most 512x512")


@contextlib.contextmanager
def _quiet_root_logger():
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _pre_process(source: Path, target: Path) -> None:
    """ORT's quantization pre-processing (shape inference + graph optimisation), when it works.

    It can fail on graphs it does not understand; quantizing the simplified graph directly is
    then still correct, just without the fused patterns, so fall back instead of failing.
    """
    shape_inference = load(ort_shape_inference)  # a missing package is not a graph it cannot process
    try:
        shape_inference.quant_pre_process(str(source), str(target), skip_symbolic_shape=False)
    except Exception:  # pragma: no cover - depends on the ORT release
        shutil.copyfile(str(source), str(target))


def fp16_fraction(model: onnx.ModelProto) -> Optional[float]:
    """Share of initializer elements stored in FP16 (a quick check that conversion happened)."""
    total = half = 0
    for init in model.graph.initializer:
        count = 1
        for dim in init.dims:
            count *= dim
        total += count
        if init.data_type == onnx.TensorProto.FLOAT16:
            half += count
    return half / total if total else None
