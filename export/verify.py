"""Step 4, verify: run every exported graph on the CPU and compare it with the PyTorch FP32 model.

The comparison is the accuracy comparator's (``runtime.compare``), the one `infusionnet check`
runs too: the exported graphs in ONNX Runtime (OpenVINO for the OpenVINO IR of NNCF INT8
exports, which ONNX Runtime cannot read; FP32 compute, so the check measures the graph's own
INT8 error) against the model in PyTorch FP32 (``TorchBackend``), on the same inputs, with the
floors of ``runtime.floors``. Export verification differs from `check` in three choices:

* each graph is also checked on its own: a split export's style graph (kernels), its content
  graph on PyTorch's kernels, and the two chained;
* an FP32 style graph's kernels are held to max abs too (FP32 graphs must *be* the model);
* no SSIM: the limits are max abs (FP32) and PSNR (FP16/INT8), ``Tolerances`` below.

The result goes into the manifest as ``verification`` (``manifest_record``).
"""
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, Iterable, Mapping, Optional

import numpy as np
import torch

from infusionnet.runtime.backend import Backend
from infusionnet.runtime.compare import Case, Comparator, Report, Row
from infusionnet.runtime.floors import FLOORS, Floors, floors_for
from infusionnet.runtime.openvino_backend import OpenVinoBackend
from infusionnet.runtime.ort_backend import OnnxRuntimeBackend, fuses_qdq
from infusionnet.models.torch_backend import TorchBackend

from .onnx_nodes import graph_io

# `export onnx --max-abs/--fp16-min-psnr/--int8-min-psnr`: which floor of the table each one sets.
LIMIT_FLOORS = {"fp32_max_abs": ("fp32", "max_abs"), "fp16_min_psnr": ("fp16", "min_psnr_db"),
                "int8_min_psnr": ("int8", "min_psnr_db")}


def _default(limit: str) -> float:
    precision, floor = LIMIT_FLOORS[limit]
    return float(getattr(FLOORS[precision], floor))


@dataclass
class Tolerances:
    """The export's limits (recorded in the manifest as ``limits``); defaults from ``runtime.floors``."""
    fp32_max_abs: float = _default("fp32_max_abs")
    fp16_min_psnr: float = _default("fp16_min_psnr")
    int8_min_psnr: float = _default("int8_min_psnr")

    def floors(self, precision: str) -> Floors:
        """The table's floors of ``precision`` with these limits, without SSIM (not measured here)."""
        overrides = {floor: getattr(self, limit) for limit, (owner, floor) in LIMIT_FLOORS.items()
                     if owner == precision}
        return floors_for(precision, dict(overrides, min_ssim=None))


class TorchReference:
    """The PyTorch model an export comes from (FP32, CPU, no export patches) and a baked graph's
    kernels: the kernels INT8 calibration feeds the content graph, and the reference backends."""

    def __init__(self, model: torch.nn.Module, baked_kernels: Optional[Dict[str, torch.Tensor]] = None):
        self.model = model
        self.baked_kernels = baked_kernels

    @torch.no_grad()
    def kernels(self, style: np.ndarray) -> Dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.model.style_kernels(torch.from_numpy(style)).items()}

    def backends(self, graphs: Mapping[str, Backend]) -> Dict[str, Backend]:
        """Unopened TorchBackends with the roles and tensors of ``graphs``. A baked graph's is the
        content stage, fed the baked kernels by ``hold_baked`` once open (TorchBackend's own baked
        role computes them from the style image, which this reference does not keep)."""
        references = {}  # type: Dict[str, Backend]
        for role, graph in graphs.items():
            if role == "baked":
                references[role] = TorchBackend.for_role(self.model, "content", batch=graph.inputs[0].shape[0])
            else:
                references[role] = TorchBackend(self.model, role, graph.inputs, graph.outputs)
        return references

    def hold_baked(self, references: Mapping[str, Backend]) -> None:
        if "baked" not in references:
            return
        backend = references["baked"]
        batch = backend.inputs[0].shape[0]
        backend.hold({name: np.repeat(tensor.numpy(), batch // tensor.shape[0], axis=0)
                      for name, tensor in self.baked_kernels.items()})


def graph_backends(paths: Mapping[str, str], io_sources: Optional[Mapping[str, Path]] = None,
                   int8_target: Optional[str] = None) -> Dict[str, Backend]:
    """role -> an unopened CPU backend for each graph file: ONNX Runtime (Q/DQ fused as
    ``fuses_qdq(int8_target)`` says, as the runtime will run them), or OpenVINO (FP32 compute) for
    OpenVINO IR, whose inputs and outputs are read from ``io_sources[role]`` (the ONNX graph it
    was made from)."""
    backends = {}  # type: Dict[str, Backend]
    for role, path in paths.items():
        if not str(path).endswith(".xml"):
            backends[role] = OnnxRuntimeBackend(path, *graph_io(path), role=role, provider="cpu",
                                                fuse_qdq=fuses_qdq(int8_target))
        elif io_sources and role in io_sources:
            backends[role] = OpenVinoBackend(path, *graph_io(io_sources[role]), role=role, precision="fp32")
        else:
            raise ValueError(f"{path}: verifying OpenVINO IR needs the ONNX graph it was made from (io_sources)")
    return backends


def verification_comparator(precision: str, tolerances: Optional[Tolerances] = None) -> Comparator:
    """The comparator with export verification's choices (see the module docstring)."""
    floors = (tolerances or Tolerances()).floors(precision)
    return Comparator(precision, floors, ssim=False, per_graph=True, judge_kernels=True)


def verify(paths: Mapping[str, str], reference: TorchReference, cases: Iterable[Case], precision: str,
           tolerances: Optional[Tolerances] = None, io_sources: Optional[Mapping[str, Path]] = None,
           int8_target: Optional[str] = None) -> Report:
    """Run the graphs in ``paths`` (role -> file) on each case and compare them with PyTorch
    (``int8_target``: the INT8 graphs' layout, None for float graphs)."""
    candidates = graph_backends(paths, io_sources, int8_target)
    references = reference.backends(candidates)
    with ExitStack() as stack:
        for backend in list(candidates.values()) + list(references.values()):
            stack.enter_context(backend)
        reference.hold_baked(references)
        report = verification_comparator(precision, tolerances).run(candidates, references, cases)
    report.candidate, report.reference = f"{precision} ONNX", "PyTorch FP32"
    return report


def manifest_record(report: Report, tolerances: Tolerances) -> dict:
    """The manifest's ``verification`` entry."""
    return {"passed": report.passed, "precision": report.precision,
            "reference": f"PyTorch FP32 model (torch {torch.__version__}), ONNX Runtime CPU",
            "limits": asdict(tolerances), "worst": report.worst(),
            "checks": [_check_record(row) for row in report.rows],
            "note": "range_psnr_db measures the error against the reference output's own "
                    "peak-to-peak range; limits apply to min(psnr_db, range_psnr_db)."}


def _check_record(row: Row) -> dict:
    data = {"graphs": row.graphs, "inputs": f"{row.inputs} {row.size}", "output": row.output,
            "max_abs": row.max_abs, "mean_abs": row.mean_abs, "psnr_db": row.psnr_db,
            "range_psnr_db": row.range_psnr_db, "limit": row.limit, "passed": row.passed}
    return {k: (round(v, 7) if isinstance(v, float) else v) for k, v in data.items()}
