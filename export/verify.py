"""Step 4, verify: run every exported graph in ONNX Runtime (CPU) and compare with PyTorch.

Each check feeds the same inputs to a graph (or a chain of graphs) and to the PyTorch model in
FP32, with its ordinary modules (adaptive pooling, batched AdaConv), and measures

* max abs and mean abs error of the raw outputs (normalized space, or the kernels);
* PSNR of the uint8 images (denormalized, clipped, rounded: what a user sees);
* range PSNR: the same error against the reference's own peak-to-peak range.

Limits: an FP32 graph passes when max abs <= 1e-3 on every check; an FP16/INT8 graph when the
lower of the two PSNRs reaches its floor (default 40 dB FP16, 25 dB INT8) on every image check.

Why two PSNRs: a trained network's output spans most of [0, 255], and then the two agree within
a few dB. An untrained network (the default without --checkpoint) outputs an almost flat grey
image spanning ~8 grey levels, so the uint8 images of FP32, FP16 and INT8 are often identical
(PSNR capped at 100 dB) and a uint8 floor would pass anything. Range PSNR rescales the error to
the signal that is actually there, so the same floors stay meaningful for both.
"""
from dataclasses import asdict, dataclass, field
from types import SimpleNamespace
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from infusionnet.runtime.images import denormalize
from infusionnet.runtime.metrics import PSNR_CAP, psnr

from .calibration import CONTENT, STYLE, Feed
from .graphs import STYLIZED



@dataclass
class Tolerances:
    fp32_max_abs: float = 1e-3
    fp16_min_psnr: float = 40.0
    int8_min_psnr: float = 25.0

    def floor(self, precision: str) -> Optional[float]:
        return {"fp16": self.fp16_min_psnr, "int8": self.int8_min_psnr}.get(precision)


@dataclass
class Check:
    """One comparison: ``graphs`` run on ``inputs`` against the PyTorch reference."""
    graphs: str            # "full", "style", "content", "style -> content", "baked"
    inputs: str            # "random 32x48", "samples 256x256"
    output: str            # "stylized" or "kernels"
    max_abs: float
    mean_abs: float
    psnr_db: Optional[float] = None        # uint8 images; None for kernels
    range_psnr_db: Optional[float] = None
    limit: str = ""
    passed: bool = True

    @property
    def is_image(self) -> bool:
        return self.psnr_db is not None

    def to_dict(self) -> dict:
        return {k: (round(v, 7) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class Verification:
    precision: str
    tolerances: Tolerances
    checks: List[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(check.passed for check in self.checks)

    def failures(self) -> List[Check]:
        return [check for check in self.checks if not check.passed]

    def worst(self) -> Dict[str, Optional[float]]:
        images = [c for c in self.checks if c.is_image]
        return {"max_abs": max((c.max_abs for c in self.checks), default=None),
                "min_psnr_db": min((c.psnr_db for c in images), default=None),
                "min_range_psnr_db": min((c.range_psnr_db for c in images), default=None)}

    def to_dict(self) -> dict:
        return {"passed": self.passed, "precision": self.precision,
                "reference": f"PyTorch FP32 model (torch {torch.__version__}), ONNX Runtime CPU",
                "limits": asdict(self.tolerances), "worst": self.worst(),
                "checks": [check.to_dict() for check in self.checks],
                "note": "range_psnr_db measures the error against the reference output's own "
                        "peak-to-peak range; limits apply to min(psnr_db, range_psnr_db)."}


# -- metrics -------------------------------------------------------------------------------------

def compare(output: np.ndarray, reference: np.ndarray, image: bool) -> Dict[str, Optional[float]]:
    """Error metrics of ``output`` against ``reference`` (same shape)."""
    if output.shape != reference.shape:
        raise ValueError(f"output shape {output.shape} differs from the reference {reference.shape}")
    diff = np.abs(output.astype(np.float64) - reference.astype(np.float64))
    metrics = {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "psnr_db": None,
               "range_psnr_db": None}
    if image:
        metrics["psnr_db"] = psnr(denormalize(output), denormalize(reference), 255.0)
        metrics["range_psnr_db"] = psnr(output, reference, float(reference.max() - reference.min()))
    return metrics


def judge(check: Check, precision: str, tolerances: Tolerances) -> Check:
    """Set ``limit`` and ``passed`` for ``precision``; kernel checks of reduced precision only inform."""
    if precision == "fp32":
        check.limit = f"max abs <= {tolerances.fp32_max_abs:g}"
        check.passed = check.max_abs <= tolerances.fp32_max_abs
    elif check.is_image:
        floor = tolerances.floor(precision)
        check.limit = f"PSNR >= {floor:g} dB"
        check.passed = min(check.psnr_db, check.range_psnr_db) >= floor
    else:
        check.limit = "(via chained output)"
        check.passed = True
    if not np.isfinite(check.max_abs):
        check.passed = False
    return check


# -- running -------------------------------------------------------------------------------------

class Sessions:
    """ONNX Runtime CPU sessions by role (OpenVINO for the OpenVINO IR of NNCF INT8 exports, which
    ONNX Runtime cannot read); ``run(role, feed)`` returns {output name: array}."""

    def __init__(self, paths: Dict[str, str]):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3  # FP16 graphs on CPU log per-node fallback warnings
        self.sessions = {role: OpenVinoSession(path) if str(path).endswith(".xml") else
                         ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                         for role, path in paths.items()}

    def run(self, role: str, feed: Feed) -> Dict[str, np.ndarray]:
        session = self.sessions[role]
        names = [o.name for o in session.get_outputs()]
        wanted = {i.name for i in session.get_inputs()}
        outputs = session.run(names, {k: v for k, v in feed.items() if k in wanted})
        return dict(zip(names, outputs))


class OpenVinoSession:
    """An OpenVINO IR graph behind the part of ONNX Runtime's session API that ``Sessions`` uses.
    Compiled with FP32 compute, so the check measures the graph's own INT8 error, not BF16's."""

    def __init__(self, path: str):
        import openvino as ov

        self.compiled = ov.Core().compile_model(str(path), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        self._inputs = [SimpleNamespace(name=port.get_any_name()) for port in self.compiled.inputs]
        self._outputs = [SimpleNamespace(name=port.get_any_name()) for port in self.compiled.outputs]

    def get_inputs(self):
        return self._inputs

    def get_outputs(self):
        return self._outputs

    def run(self, names, feed):
        results = self.compiled.create_infer_request().infer(feed)
        by_name = {port.get_any_name(): value for port, value in results.items()}
        return [np.array(by_name[name], copy=True) for name in names]


class TorchReference:
    """The PyTorch model's outputs for the same feeds (FP32, CPU, no export patches)."""

    def __init__(self, model: torch.nn.Module, baked_kernels: Optional[Dict[str, torch.Tensor]] = None):
        self.model = model
        self.baked_kernels = baked_kernels

    @torch.no_grad()
    def kernels(self, style: np.ndarray) -> Dict[str, np.ndarray]:
        return {k: v.numpy() for k, v in self.model.style_kernels(torch.from_numpy(style)).items()}

    @torch.no_grad()
    def stylize(self, content: np.ndarray, style: np.ndarray) -> np.ndarray:
        return self.model(torch.from_numpy(content), torch.from_numpy(style)).numpy()

    @torch.no_grad()
    def decode(self, content: np.ndarray, kernels: Dict[str, np.ndarray]) -> np.ndarray:
        tensors = {k: torch.from_numpy(v) for k, v in kernels.items()}
        return self.model.decode(self.model.encode_content(torch.from_numpy(content)), tensors)[0].numpy()

    def baked(self, content: np.ndarray) -> np.ndarray:
        return self.decode(content, {k: v.numpy() for k, v in self.baked_kernels.items()})


def verify(paths: Dict[str, str], reference: TorchReference, feeds: Sequence[Tuple[str, Feed]],
           precision: str, tolerances: Optional[Tolerances] = None) -> Verification:
    """Run the graphs in ``paths`` (role -> file) on each named feed and compare with PyTorch.

    ``feeds`` are (label, {"content", "style"}) pairs; each graph takes what it needs.
    """
    tolerances = tolerances or Tolerances()
    sessions = Sessions(paths)
    result = Verification(precision, tolerances)

    def add(graphs: str, label: str, output: np.ndarray, expected: np.ndarray, image: bool = True):
        check = Check(graphs, label, STYLIZED if image else "kernels", **compare(output, expected, image))
        result.checks.append(judge(check, precision, tolerances))

    for label, pair in feeds:
        content, style = pair[CONTENT], pair[STYLE]
        if "full" in paths or "style" in paths:
            # model(content, style) is decode(encode_content(content), style_kernels(style)):
            # computed once, it is the reference of the full, content and chained checks.
            torch_kernels = reference.kernels(style)
            expected = reference.decode(content, torch_kernels)
        if "full" in paths:
            add("full", label, sessions.run("full", pair)[STYLIZED], expected)
        if "style" in paths:
            onnx_kernels = sessions.run("style", {STYLE: style})
            add("style", label, _stack(onnx_kernels), _stack(torch_kernels), image=False)
            # The content graph alone (PyTorch kernels in) and chained behind the style graph.
            add("content", label, sessions.run("content", dict(torch_kernels, content=content))[STYLIZED], expected)
            add("style -> content", label, sessions.run("content", dict(onnx_kernels, content=content))[STYLIZED],
                expected)
        if "baked" in paths:
            add("baked", label, sessions.run("baked", {CONTENT: content})[STYLIZED], reference.baked(content))
    return result


def _stack(kernels: Dict[str, np.ndarray]) -> np.ndarray:
    return np.concatenate([kernels[name].ravel() for name in sorted(kernels)])


def print_table(result: Verification, console=None) -> None:
    """A compact table (fits 80 columns): one row per check, the limit in the title."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console(stderr=True)
    limits = sorted({check.limit for check in result.checks if not check.limit.startswith("(")})
    table = Table(title=f"{result.precision} ONNX vs PyTorch FP32 (limit: {'; '.join(limits)})",
                  title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("graphs", no_wrap=True)
    table.add_column("inputs", no_wrap=True)
    for column in ("max abs", "mean abs", "PSNR", "range PSNR"):
        table.add_column(column, justify="right")
    table.add_column("")
    for check in result.checks:
        kernels = "kernels" if not check.is_image else None
        table.add_row(check.graphs.replace(" -> ", "->"), check.inputs, f"{check.max_abs:.1e}",
                      f"{check.mean_abs:.1e}", kernels or _db(check.psnr_db), kernels or _db(check.range_psnr_db),
                      "[green]ok[/]" if check.passed else "[red bold]FAIL[/]")
    console.print(table)


def _db(value: Optional[float]) -> str:
    if value is None:
        return "-"
    return "exact" if value >= PSNR_CAP else f"{value:.1f} dB"

