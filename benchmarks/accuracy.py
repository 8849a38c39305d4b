"""`infusionnet check`: an exported form against the PyTorch FP32 model, on the same inputs.

The candidate (ONNX Runtime or TensorRT on an export/engine directory, or PyTorch itself at
FP16) and the reference (the PyTorch FP32 model the export came from, found through the
manifest) run the same graphs on the same inputs: random images and the built-in sample images,
at the export's size, and for dynamic-size graphs at several sizes (a TensorRT engine's profile
min, opt and max). Split exports chain style -> content on the device, as the Stylizer does.

Per output: max abs and mean abs error (normalized space); for the stylized image also PSNR and
SSIM of the uint8 images (scikit-image's structural_similarity) and range PSNR (the error
against the reference's own peak-to-peak range; an untrained network's nearly flat output makes
uint8 PSNR meaningless, see export/verify.py). The PSNR floor applies to the lower of the two.
Floors are per precision and configurable; a missed floor fails the check.
"""
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import atomic_path
from infusionnet.runtime.images import denormalize
from infusionnet.runtime.metrics import PSNR_CAP, psnr
from infusionnet.runtime.model_choice import untrained_seed

HW = Tuple[int, int]


class CheckError(InfusionNetError):
    """Options or inputs the check cannot use."""


@dataclass
class Floors:
    """What a precision must reach on every stylized image; None = not checked."""
    max_abs: Optional[float] = None
    min_psnr_db: Optional[float] = None
    min_ssim: Optional[float] = None

    def describe(self) -> str:
        parts = [f"max abs <= {self.max_abs:g}" if self.max_abs is not None else "",
                 f"PSNR >= {self.min_psnr_db:g} dB" if self.min_psnr_db is not None else "",
                 f"SSIM >= {self.min_ssim:g}" if self.min_ssim is not None else ""]
        return ", ".join(p for p in parts if p) or "none"


# FP32 as export verification (1e-3); reduced precision by image quality. INT8 SSIM is loose
# because an untrained network's near-flat output has little structure to keep.
DEFAULT_FLOORS = {
    "fp32": Floors(max_abs=1e-3, min_ssim=0.99),
    "fp16": Floors(min_psnr_db=40.0, min_ssim=0.97),
    "int8": Floors(min_psnr_db=25.0, min_ssim=0.80),
    # OpenVINO computing an FP32 graph in BF16 (its default on CPUs with AMX/AVX-512 BF16): 8
    # mantissa bits, between FP16 and INT8.
    "bf16": Floors(min_psnr_db=30.0, min_ssim=0.95),
}


def floors_for(precision: str, overrides: Optional[Mapping[str, Any]] = None) -> Floors:
    """Default floors of ``precision`` with ``overrides`` (a dict of Floors fields) applied."""
    if precision not in DEFAULT_FLOORS:
        raise CheckError(f"no floors for precision {precision!r} (known: {', '.join(DEFAULT_FLOORS)})")
    values = asdict(DEFAULT_FLOORS[precision])
    for key, value in (overrides or {}).items():
        if key not in values:
            raise CheckError(f"unknown floor {key!r}: use {', '.join(values)}")
        values[key] = None if value is None else float(value)
    return Floors(**values)


def load_floors_file(path) -> Dict[str, Dict[str, Any]]:
    """``{"fp16": {"min_psnr_db": 38}, ...}`` from a JSON file."""
    try:
        with open(str(path)) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise CheckError(f"--floors {path}: cannot read JSON ({error})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise CheckError(f"--floors {path}: expected {{precision: {{floor: value}}}}, e.g. "
                         '{"fp16": {"min_psnr_db": 38, "min_ssim": 0.97}}')
    return data


# -- metrics ---------------------------------------------------------------------------------------

def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of uint8 NHWC batches (scikit-image, per image over the colour channels)."""
    from skimage.metrics import structural_similarity

    scores = [structural_similarity(x, y, channel_axis=-1, data_range=255) for x, y in zip(a, b)]
    return float(np.mean(scores))


def image_metrics(output: np.ndarray, reference: np.ndarray) -> Dict[str, float]:
    """Errors of a normalized NCHW output against the reference, raw and as uint8 images."""
    if output.shape != reference.shape:
        raise CheckError(f"output shape {output.shape} differs from the reference {reference.shape}")
    diff = np.abs(output.astype(np.float64) - reference.astype(np.float64))
    got, want = denormalize(output), denormalize(reference)
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "psnr_db": psnr(got, want, 255.0),
            "range_psnr_db": psnr(output, reference, float(reference.max() - reference.min())),
            "ssim": ssim(got, want)}


def kernel_metrics(output: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """Max and mean abs error over all kernel tensors (same names required)."""
    if set(output) != set(reference):
        raise CheckError(f"kernel names differ: {sorted(set(output) ^ set(reference))}")
    diffs = [np.abs(output[n].astype(np.float64) - reference[n].astype(np.float64)).ravel() for n in reference]
    joined = np.concatenate(diffs)
    return {"max_abs": float(joined.max()), "mean_abs": float(joined.mean())}


@dataclass
class Row:
    inputs: str              # "random" or "samples"
    size: str                # "256x256"
    output: str              # "stylized" or "kernels"
    max_abs: float
    mean_abs: float
    psnr_db: Optional[float] = None
    range_psnr_db: Optional[float] = None
    ssim: Optional[float] = None
    images: str = ""         # which sample images (content / style), for the JSON
    failures: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_dict(self) -> Dict[str, Any]:
        # Four significant digits: errors span 1e-8 (FP32) to 1e-1 (INT8), so no fixed rounding fits.
        data = {k: ((float(f"{v:.4g}") if math.isfinite(v) else None) if isinstance(v, float) else v)
                for k, v in asdict(self).items()}
        data["passed"] = self.passed
        return data


def judge(row: Row, floors: Floors) -> Row:
    """Record every floor the row misses. Kernels only inform: the stylized image is what counts."""
    row.failures = []
    if not math.isfinite(row.max_abs):
        row.failures.append("non-finite output")
    if row.output != "stylized":
        return row
    if floors.max_abs is not None and row.max_abs > floors.max_abs:
        row.failures.append(f"max abs {row.max_abs:.3g} > {floors.max_abs:g}")
    if floors.min_psnr_db is not None:
        worst = min(row.psnr_db, row.range_psnr_db)
        if worst < floors.min_psnr_db:
            row.failures.append(f"PSNR {worst:.1f} dB < {floors.min_psnr_db:g}")
    if floors.min_ssim is not None and row.ssim < floors.min_ssim:
        row.failures.append(f"SSIM {row.ssim:.4f} < {floors.min_ssim:g}")
    return row


# -- inputs ----------------------------------------------------------------------------------------

def check_sizes(content_size: Sequence[int], dynamic: bool, profile_hw: Optional[Tuple[HW, HW, HW]] = None,
                requested: Optional[Sequence[HW]] = None) -> List[HW]:
    """Content sizes to check: the export size; for dynamic graphs a second size too, or a
    TensorRT profile's opt, min and max. ``requested`` sizes replace the defaults."""
    export_hw = (int(content_size[0]), int(content_size[1]))
    if requested:
        sizes = [tuple(hw) for hw in requested]
        if not dynamic and any(hw != export_hw for hw in sizes):
            raise CheckError(f"this export has a fixed size {export_hw[0]}x{export_hw[1]}: --sizes cannot change it")
        return list(dict.fromkeys(sizes))  # type: ignore[arg-type]
    if not dynamic:
        return [export_hw]
    if profile_hw is not None:
        minimum, opt, maximum = profile_hw
        return list(dict.fromkeys([opt, minimum, maximum]))
    return [export_hw, (export_hw[0] + 16, export_hw[1] + 8)]


def check_inputs(batch: int, sizes: Sequence[HW], style_size: int, samples: int = 1,
                 seed: int = 20250) -> List[Tuple[str, str, HW, Dict[str, np.ndarray]]]:
    """(label, images, size, {"content", "style"}) cases: random images, sample photos x textures."""
    from infusionnet.export.calibration import PairFeed, image_pairs, random_pairs

    content, style, _ = image_pairs(None)
    cases = []
    for index, size in enumerate(sizes):
        cases.append(("random", "", size, random_pairs(batch, size, style_size, 1, seed=seed + index)[0]))
        if samples:
            feed = PairFeed(content, style, batch, size, style_size, limit=samples)
            for number, pair in enumerate(feed):
                picked = [(number * batch + i) % len(content) for i in range(batch)]
                names = ", ".join(f"{content[i].stem} / {style[i].stem}" for i in picked)
                cases.append(("samples", names, size, pair))
    return cases


# -- running ---------------------------------------------------------------------------------------

def run_graphs(backends: Mapping[str, Any], graph_kind: str, feed: Mapping[str, np.ndarray]):
    """(stylized, kernels or None) of one export's graphs; split graphs chain on the device."""
    if graph_kind == "full":
        return backends["full"].run({"content": feed["content"], "style": feed["style"]})["stylized"], None
    if graph_kind == "baked":
        return backends["baked"].run({"content": feed["content"]})["stylized"], None
    styler, frames = backends["style"], backends["content"]
    on_device = styler.run_on_device({"style": feed["style"]})
    kernels = styler.to_host(on_device)
    frames.hold(on_device)
    try:
        return frames.run({"content": feed["content"]})["stylized"], kernels
    finally:
        frames.release()


@dataclass
class CheckReport:
    model_dir: str
    backend: str
    candidate: str
    reference: str
    precision: str
    graph_kind: str
    floors: Floors
    rows: List[Row]
    notes: List[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def to_dict(self) -> Dict[str, Any]:
        return {"model_dir": self.model_dir, "backend": self.backend, "candidate": self.candidate,
                "reference": self.reference, "precision": self.precision, "graph_kind": self.graph_kind,
                "floors": asdict(self.floors), "passed": self.passed, "notes": self.notes,
                "rows": [row.to_dict() for row in self.rows]}


def run_check(model_dir, backend: str = "onnxruntime", checkpoint=None, sizes: Optional[Sequence[HW]] = None,
              samples: int = 1, floor_overrides: Optional[Mapping[str, Any]] = None,
              floors_file: Optional[Mapping[str, Mapping[str, Any]]] = None, reference_device: str = "cpu",
              log=None, **options) -> CheckReport:
    """Compare ``backend`` on ``model_dir`` with the PyTorch FP32 model; options go to the backend.

    Floors: the precision's defaults, then ``floors_file[precision]``, then ``floor_overrides``.
    """
    from infusionnet.runtime.stylizer import make_backends, open_model_dir
    from infusionnet.models.torch_backend import TorchBackend, baked_style, reference_model

    kind, manifest, index = open_model_dir(model_dir)
    if backend == "torch":
        precision = "fp16" if options.get("fp16") else "fp32"
    else:
        precision = index.get("precision", manifest.precision) if kind == "tensorrt" else manifest.precision
    candidates = make_backends(model_dir, backend, checkpoint, **options)
    model = reference_model(manifest, checkpoint)
    references = {}
    for role, graph in manifest.graphs.items():
        extra = {"baked_style": baked_style(manifest)} if role == "baked" else {}
        references[role] = TorchBackend.from_graph(graph, model, device=reference_device, **extra)
    profile_hw = None
    frames_role = {"split": "content", "full": "full", "baked": "baked"}[manifest.graph_kind]
    limits = candidates[frames_role].profile()
    if limits and manifest.dynamic_size:
        shapes = limits["content"]
        profile_hw = tuple((s[2], s[3]) for s in (shapes.min, shapes.opt, shapes.max))
    cases = check_inputs(manifest.batch, check_sizes(manifest.content_size, manifest.dynamic_size, profile_hw, sizes),
                         manifest.style_size, samples)
    rows = []
    opened = []
    try:
        for item in list(candidates.values()) + list(references.values()):
            opened.append(item.open())
        precision = ran_precision(candidates[frames_role], precision)
        overrides = dict((floors_file or {}).get(precision, {}))
        overrides.update(floor_overrides or {})
        floors = floors_for(precision, overrides)
        for label, names, size, feed in cases:
            if log:
                log(f"{label} {size[0]}x{size[1]}")
            got, got_kernels = run_graphs(candidates, manifest.graph_kind, feed)
            want, want_kernels = run_graphs(references, manifest.graph_kind, feed)
            text = f"{size[0]}x{size[1]}"
            rows.append(judge(Row(label, text, "stylized", images=names, **image_metrics(got, want)), floors))
            if got_kernels is not None:
                rows.append(judge(Row(label, text, "kernels", images=names,
                                      **kernel_metrics(got_kernels, want_kernels)), floors))
        candidate = candidates[frames_role].description
        reference = references[frames_role].description + " FP32"
    finally:
        for item in opened:
            item.close()
    notes = []
    if untrained_seed(manifest.checkpoint_sha256) is not None:
        notes.append("untrained network (--checkpoint untrained): outputs are nearly flat, so uint8 PSNR/SSIM say little; "
                     "range PSNR and max abs carry the signal")
    return CheckReport(str(model_dir), backend, candidate, reference, precision, manifest.graph_kind, floors, rows,
                       notes)


def ran_precision(candidate, exported: str) -> str:
    """The precision the candidate computed in: the export's, except where the backend chose a
    lower one itself (OpenVINO runs FP32 graphs in BF16 on CPUs that have it, by default)."""
    computed = getattr(candidate, "compute_precision", None)
    if exported == "fp32" and computed in DEFAULT_FLOORS:
        return computed
    return exported


# -- presenting ------------------------------------------------------------------------------------

def _fmt(value: Optional[float], digits: str) -> str:
    if value is None:
        return "-"
    if value >= PSNR_CAP and digits == ".1f":
        return "exact"
    return format(value, digits)


def print_report(report: CheckReport, console=None) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"{report.candidate} vs {report.reference} ({report.precision}; floors: "
                        f"{report.floors.describe()})", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False,
                  collapse_padding=True)
    for column, justify in (("inputs", "left"), ("size", "right"), ("output", "left"), ("max abs", "right"),
                            ("mean abs", "right"), ("PSNR", "right"), ("rPSNR", "right"), ("SSIM", "right"),
                            ("", "left")):
        table.add_column(column, justify=justify, no_wrap=True)
    for row in report.rows:
        verdict = "[green]ok[/]" if row.passed else "[red]FAIL[/]"
        if row.output != "stylized" and row.passed:
            verdict = "[dim]info[/]"
        table.add_row(row.inputs, row.size, row.output, f"{row.max_abs:.2g}", f"{row.mean_abs:.2g}",
                      _fmt(row.psnr_db, ".1f"), _fmt(row.range_psnr_db, ".1f"), _fmt(row.ssim, ".4f"), verdict)
    console.print(table)
    for row in report.rows:
        if not row.passed:
            console.print(f"[red]{row.inputs} {row.size} {row.output}: {'; '.join(row.failures)}[/]")
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")
    console.print("[dim]PSNR: uint8 images; rPSNR: error against the reference's own range; "
                  "the PSNR floor applies to the lower of the two[/]")


def write_report(report: CheckReport, path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(report.to_dict(), indent=2, allow_nan=False) + "\n")
