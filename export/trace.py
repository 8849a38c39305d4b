"""Step 1, trace: a GraphSpec -> an ONNX file, with the model made exportable.

Exporter choice: the legacy TorchScript exporter (``dynamo=False``). Measured with torch 2.13.0
on the full InfusionNet graph (content 32x48, style 96, batch 2):

* legacy: exports in ~1 s, honours opset 17 (what the TensorRT 8.5/8.6 parsers take), and with
  ``dynamic_axes`` the content height/width stay symbolic for both networks. Its raw graph is
  noisy (~1900 nodes of shape arithmetic) but onnxslim folds it to 259 nodes.
* dynamo (``torch.export``): needs the extra ``onnxscript`` package (not installed here, not a
  dependency), takes ~6 s, always writes opset >= 18, and with a dynamic height/width fails on
  AesFA in the symbolic shape solver (``Eq(x/4 - ((x/2)//2), 0)`` from the octave halves).
  After onnxslim its static graph is the same 259 nodes.

So the legacy exporter gives the same final graph, faster, at the opset we need, and is the only
one of the two that handles ``--dynamic-size``. It prints a DeprecationWarning in torch >= 2.9,
silenced here; should a later torch drop it, ``trace`` fails with a clear message.
"""
import warnings
from contextlib import ExitStack
from pathlib import Path

import onnx
import torch

from infusionnet.runtime.errors import InfusionNetError

from .graphs import GraphSpec
from .pooling import static_style_pooling
from .unroll import unrolled_adaconv

DEFAULT_OPSET = 17
# The legacy exporter's lowest useful opset for this graph: reflect Pad with pads as an input
# (opset 11) and Resize with scales (opset 11 and later; 13 fixes its half-pixel rounding).
MIN_OPSET = 13
MAX_OPSET = 20


class ExportError(InfusionNetError):
    """An export step failed; the message names the graph and the step."""


def exportable(model, batch: int) -> ExitStack:
    """Context: static 3x3 style pooling and unrolled AdaConv, undone on exit."""
    stack = ExitStack()
    stack.enter_context(static_style_pooling(model))
    stack.enter_context(unrolled_adaconv(model, batch))
    return stack


def trace(spec: GraphSpec, path: Path, opset: int = DEFAULT_OPSET) -> Path:
    """Export ``spec.module`` (already made exportable) to ``path``; returns ``path``."""
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ExportError(f"opset {opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    path = Path(path)
    with warnings.catch_warnings(), torch.no_grad():
        # The exporter's deprecation notice and its constant-folding remarks are expected.
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(spec.module.eval(), spec.example_inputs, str(path), dynamo=False,
                              opset_version=opset, input_names=spec.input_names,
                              output_names=spec.output_names, dynamic_axes=spec.dynamic_axes or None,
                              do_constant_folding=True)
        except TypeError as error:
            if "dynamo" in str(error):
                raise ExportError(f"this torch ({torch.__version__}) has no legacy ONNX exporter "
                                  "(dynamo=False); use torch 2.1 .. 2.13") from error
            raise
        except Exception as error:  # the exporter raises many types; name the graph, keep the cause
            raise ExportError(f"{spec.role} graph: torch.onnx.export failed: "
                              f"{str(error).splitlines()[0] if str(error) else type(error).__name__}") from error
    annotate_outputs(path, spec)
    return path


def annotate_outputs(path: Path, spec: GraphSpec) -> None:
    """Write the known output shapes onto the graph's outputs (fixed batch, symbolic H/W)."""
    if not spec.output_shapes:
        return
    model = onnx.load(str(path))
    for output in model.graph.output:
        shape = spec.output_shapes.get(output.name)
        if shape is None:
            continue
        dims = output.type.tensor_type.shape.dim
        del dims[:]
        for value in shape:
            dim = dims.add()
            if isinstance(value, str):
                dim.dim_param = value
            else:
                dim.dim_value = int(value)
    onnx.save(model, str(path))
