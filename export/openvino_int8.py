"""INT8 for OpenVINO: NNCF post-training quantization of the FP32 graph (``--int8-target openvino``).

NNCF (OpenVINO's compression framework) calibrates on the same feed dicts as ONNX Runtime's
quantizer (``calibration.RoleFeed``) and places FakeQuantize nodes where OpenVINO's CPU plugin
runs INT8 kernels (VNNI, AMX). The quantized graph is written as OpenVINO IR (``ROLE.xml`` +
``ROLE.bin``), not ONNX: NNCF's ONNX backend assumes every Conv weight is a constant and fails on
AdaConv's predicted kernels, while its OpenVINO backend quantizes the same graph converted with
``openvino.convert_model``. So these exports run on ``--backend openvino`` only, and the export
verifies them with OpenVINO (FP32 compute around the INT8 layers, ``export.verify``).

- Convolutions whose weights are computed in the graph (AdaConv's predicted kernels) stay float:
  their weights cannot be quantized offline (NNCF is told to ignore them).
- The style graph stays FP32: it runs once per style, not per frame, so quantizing it would only
  cost accuracy in every kernel the content graph then uses.
- The encoder's 7x7 stem on the 3-channel image is kept in float too: it sees the raw image,
  where 8 bits cost the most, for under 4% of the MACs.
- Weights get 7 bits in every layer (NNCF's overflow fix), so CPUs without VNNI do not saturate.

nncf is an optional extra (``pip install .[openvino]``), imported when a graph is quantized.
"""
import contextlib
import io
import logging
from pathlib import Path
from typing import Iterable, List, Optional

import onnx

from infusionnet.runtime.lazy import lazy_import, load

from .simplify import dynamic_weight_convs
from .trace import ExportError

nncf = lazy_import("nncf")
openvino = lazy_import("openvino")

INSTALL = "pip install nncf openvino (or pip install .[openvino])"


def import_nncf():
    try:
        return load(nncf)
    except ImportError:
        raise ExportError(f"--int8-target openvino quantizes with NNCF, which is not installed here: {INSTALL}") from None


def float_nodes(model: onnx.ModelProto) -> List[str]:
    """Nodes NNCF must leave in float: dynamic-weight convolutions and the convolution(s) that
    read the graph's image input directly (the encoder stem)."""
    names = [node.name for node in dynamic_weight_convs(model)]
    image_inputs = {value.name for value in model.graph.input if value.name in ("content", "style")}
    names += [node.name for node in model.graph.node if node.op_type == "Conv" and node.input[0] in image_inputs]
    return names


def ignored_scope(model: onnx.ModelProto):
    """NNCF's ignored scope for ``float_nodes`` of ``model``, under the names OpenVINO gives them:
    it keeps ONNX node names, and a Conv with a bias becomes "NAME/WithoutBiases" + an Add."""
    names = float_nodes(model)
    return nncf.IgnoredScope(names=names + [f"{name}/WithoutBiases" for name in names], validate=False)


def input_shapes(model) -> dict:
    """{input name: partial shape} of an OpenVINO model."""
    return {port.get_any_name(): port.get_partial_shape() for port in model.inputs}


def _reshaped(model, shapes: dict) -> bool:
    """Reshape ``model`` in place to ``shapes`` where they differ from its own; True if it did."""
    current = input_shapes(model)
    if all(current.get(name) == shape for name, shape in shapes.items()):
        return False
    model.reshape(shapes)
    return True


def quantize_for_openvino(source: Path, directory: Path, role: str, feeds: Iterable[dict],
                          subset_size: Optional[int] = None) -> Path:
    """Quantize ``source`` (an FP32 ONNX graph) for OpenVINO into ``directory``: ``ROLE.xml`` (+
    ``.bin``). Returns the written graph's path. Only the per-frame graphs (precision.INT8_ROLES)
    come here."""
    source, directory = Path(source), Path(directory)
    import_nncf()  # its install hint, before any work
    ov = load(openvino)
    samples = list(feeds)
    if not samples:
        raise ExportError(f"{source.name}: no calibration feeds for NNCF")
    ignored = ignored_scope(onnx.load(str(source), load_external_data=False))
    target = directory / f"{role}.xml"
    try:
        model = ov.convert_model(str(source))
        export_shapes = input_shapes(model)
        # Large exports calibrate at a scaled-down size (pipeline.calibration_size): NNCF runs the
        # model on the feeds, so it is reshaped to them for calibration (the network is fully
        # convolutional) and back to the export's shapes before it is saved.
        reshaped_for_calibration = _reshaped(model, {name: ov.PartialShape(list(array.shape)) for name, array in samples[0].items()})
        # 7-bit weights in every layer (NNCF's default fixes the first layer only): without VNNI the
        # CPU plugin's u8 x s8 kernels add product pairs in int16, which 8-bit weights saturate.
        # On a 2-core AVX2 AMD EPYC the worst sample pair at 512x512 went from 17.1 to 22.2 dB
        # (an Intel with VNNI gave 23.2 with 8-bit weights); the export cannot know its CPU.
        advanced = nncf.AdvancedQuantizationParameters(overflow_fix=nncf.OverflowFix.ENABLE)
        with _quiet_nncf():
            quantized = nncf.quantize(model, nncf.Dataset(samples), subset_size=subset_size or len(samples),
                                      ignored_scope=ignored, advanced_parameters=advanced)
        if reshaped_for_calibration:
            quantized.reshape(export_shapes)
        ov.save_model(quantized, str(target), compress_to_fp16=False)
    except Exception as error:  # NNCF and OpenVINO raise many types (RuntimeError, ValidationError, ...)
        raise ExportError(f"{source.name}: NNCF INT8 quantization failed: {str(error).splitlines()[0]}") from error
    return target


def is_openvino_ir(path) -> bool:
    return Path(path).suffix == ".xml"


@contextlib.contextmanager
def _quiet_nncf():
    """NNCF logs INFO lines and progress bars to stdout; keep the export's own output clean."""
    logger = logging.getLogger("nncf")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
