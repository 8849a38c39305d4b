"""The comparator: an export and its reference run the same inputs; every output is measured
(``runtime.metrics``) and judged against a precision's floors (``runtime.floors``).

In the spirit of Polygraphy's ``Comparator.run(runners, data_loader)``::

    with ExitStack() as stack:                       # the caller owns (opens and closes) the backends
        ...
        report = Comparator("fp16").run(candidate, reference, cases)
    print_report(report)

* ``candidate`` and ``reference``: the graphs of one export by role (``{"style": ..., "content":
  ...}``, ``{"full": ...}`` or ``{"baked": ...}``), each an open ``runtime.backend.Backend`` (ONNX
  Runtime, TensorRT, OpenVINO, PyTorch). Split graphs chain style -> content on the device, as
  the Stylizer does. The reference is usually the PyTorch model in FP32 (``TorchBackend``),
  which the caller builds and hands in: this module never imports torch.
* ``cases``: the data loader, any iterable of ``Case`` (what the inputs are, the content size,
  the feed); ``export.calibration.image_cases`` makes random images and the sample photos x
  textures at the sizes ``check_sizes`` picks.
* the result: one ``Report``, a row per output (the stylized image; a split export's kernels),
  and one printer, ``print_report``.

Who calls it: export verification (``export/verify.py``: ONNX Runtime or OpenVINO on the CPU,
each graph also on its own, no SSIM, an FP32 style graph's kernels judged too), ``infusionnet
check`` (``cli/check.py``: any backend, SSIM, floors configurable); ``infusionnet bench`` takes
its accuracy columns from the same metrics (``runtime.metrics``).
"""
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from .backend import Arrays, Backend
from .errors import CheckError
from .floors import Floors, floors_for
from .lazy import lazy_import
from .metrics import PSNR_CAP, image_metrics, kernel_metrics
from .stylizer import CONTENT, STYLE, STYLIZED

# The printer's (rich takes ~50 ms to import, and the command line loads this module to build its
# parsers: `infusionnet --help` stays instant).
rich_box = lazy_import("rich.box")
rich_console = lazy_import("rich.console")
rich_table = lazy_import("rich.table")

HW = Tuple[int, int]
KERNELS = "kernels"  # a split export's style graph outputs, compared as one
INFORMS = "(via chained output)"  # the limit of a row that only informs: the stylized image is judged


# -- inputs ----------------------------------------------------------------------------------------

class Case(NamedTuple):
    """One batch of inputs for both sides: ``feed`` is ``{"content", "style"}`` (normalized NCHW)."""
    inputs: str                    # "random" or "samples"
    size: HW                       # content height, width
    feed: Dict[str, np.ndarray]
    images: str = ""               # which sample images (content / style), for the report


def second_size(size: Sequence[int]) -> HW:
    """Another valid content size, different in both dimensions (checks dynamic graphs)."""
    return int(size[0]) + 16, int(size[1]) + 8


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
    return [export_hw, second_size(export_hw)]


# -- running an export -----------------------------------------------------------------------------

class Graphs:
    """One export's graphs by role as a single runner: what goes in is a ``Case`` feed, what comes
    out the stylized image (and a split export's kernels, copied to the host)."""

    def __init__(self, backends: Mapping[str, Backend]):
        self.backends = dict(backends)
        if "full" in self.backends or "baked" in self.backends:
            self.kind = "full" if "full" in self.backends else "baked"
        elif {STYLE, CONTENT} <= set(self.backends):
            self.kind = "split"
        else:
            raise CheckError(f"cannot run graphs {', '.join(self.backends) or '(none)'}: need full, baked, "
                             "or style and content")

    @property
    def frames(self) -> Backend:
        """The per-frame graph (content, full or baked): its description and precision name the export."""
        return self.backends[CONTENT if self.kind == "split" else self.kind]

    @property
    def label(self) -> str:
        """Which graphs produce the stylized image."""
        return "style -> content" if self.kind == "split" else self.kind

    def stylize(self, feed: Mapping[str, np.ndarray]) -> Tuple[np.ndarray, Optional[Arrays]]:
        """(stylized, kernels or None); split graphs chain on the device."""
        if self.kind == "full":
            return self.backends["full"].run({CONTENT: feed[CONTENT], STYLE: feed[STYLE]})[STYLIZED], None
        if self.kind == "baked":
            return self.backends["baked"].run({CONTENT: feed[CONTENT]})[STYLIZED], None
        styler, frames = self.backends[STYLE], self.backends[CONTENT]
        on_device = styler.run_on_device({STYLE: feed[STYLE]})
        kernels = styler.to_host(on_device)
        return self.decode(feed[CONTENT], on_device), kernels

    def decode(self, content: np.ndarray, kernels: Mapping[str, Any]) -> np.ndarray:
        """The content graph alone on ``kernels`` (host arrays, or the style graph's device values)."""
        frames = self.backends[CONTENT]
        frames.hold(kernels)
        try:
            return frames.run({CONTENT: content})[STYLIZED]
        finally:
            frames.release()


# -- rows, judging and the report ------------------------------------------------------------------

@dataclass
class Row:
    """One output of one case, measured against the reference and judged."""
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
    graphs: str = ""         # which graphs ran: "full", "baked", "style", "content", "style -> content"
    limit: str = ""          # the floors it was held to, or INFORMS

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def is_image(self) -> bool:
        return self.output == STYLIZED

    @property
    def judged(self) -> bool:
        return self.limit != INFORMS

    def to_dict(self) -> Dict[str, Any]:
        """`check`'s JSON row. Four significant digits: errors span 1e-8 (FP32) to 1e-1 (INT8), so
        no fixed rounding fits."""
        data = {k: v for k, v in asdict(self).items() if k not in ("graphs", "limit")}
        data = {k: ((float(f"{v:.4g}") if math.isfinite(v) else None) if isinstance(v, float) else v)
                for k, v in data.items()}
        data["passed"] = self.passed
        return data


def judge(row: Row, floors: Floors, judge_kernels: bool = False) -> Row:
    """Record every floor the row misses. The stylized image is what counts: kernels only inform,
    unless ``judge_kernels`` holds them to ``max_abs`` (the only floor that applies to them)."""
    row.failures = []
    if not math.isfinite(row.max_abs):
        row.failures.append("non-finite output")
    if not row.is_image and not (judge_kernels and floors.max_abs is not None):
        row.limit = INFORMS
        return row
    row.limit = floors.describe(image=row.is_image)
    if floors.max_abs is not None and row.max_abs > floors.max_abs:
        row.failures.append(f"max abs {row.max_abs:.3g} > {floors.max_abs:g}")
    if not row.is_image:
        return row
    if floors.min_psnr_db is not None:
        worst = min(row.psnr_db, row.range_psnr_db)
        if worst < floors.min_psnr_db:
            row.failures.append(f"PSNR {worst:.1f} dB < {floors.min_psnr_db:g}")
    if floors.min_ssim is not None and row.ssim < floors.min_ssim:
        row.failures.append(f"SSIM {row.ssim:.4f} < {floors.min_ssim:g}")
    return row


@dataclass
class Report:
    candidate: str           # what ran the export (a backend's description, or the caller's label)
    reference: str           # what it was compared with
    precision: str           # whose floors apply
    floors: Floors
    graph_kind: str
    rows: List[Row] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    per_graph: bool = False  # rows for each graph on its own too (the printer shows a graphs column)

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    def failures(self) -> List[Row]:
        return [row for row in self.rows if not row.passed]

    def worst(self) -> Dict[str, Optional[float]]:
        """Largest max abs of any row; lowest PSNR and range PSNR of the images."""
        images = [row for row in self.rows if row.is_image]
        return {"max_abs": max((row.max_abs for row in self.rows), default=None),
                "min_psnr_db": min((row.psnr_db for row in images), default=None),
                "min_range_psnr_db": min((row.range_psnr_db for row in images), default=None)}

    def to_dict(self) -> Dict[str, Any]:
        return {"candidate": self.candidate, "reference": self.reference, "precision": self.precision,
                "graph_kind": self.graph_kind, "floors": asdict(self.floors), "passed": self.passed,
                "notes": self.notes, "rows": [row.to_dict() for row in self.rows]}


# -- the comparator --------------------------------------------------------------------------------

class Comparator:
    """Runs a candidate and a reference (role -> open backend) on the same cases and judges the
    candidate's every output against ``floors`` (default: the table's floors of ``precision``).

    ``ssim``: measure SSIM (scikit-image; slow at large sizes); by default where a floor asks for
    it. ``per_graph``: for split exports also run the content graph alone on the reference's
    kernels, which tells a style graph's error from a content graph's; rows then come in graph
    order (style, content, style -> content). ``judge_kernels``: hold kernels to ``max_abs`` too.
    """

    def __init__(self, precision: str, floors: Optional[Floors] = None, ssim: Optional[bool] = None,
                 per_graph: bool = False, judge_kernels: bool = False):
        self.precision = precision
        self.floors = floors if floors is not None else floors_for(precision)
        self.ssim = self.floors.min_ssim is not None if ssim is None else ssim
        if self.floors.min_ssim is not None and not self.ssim:
            raise CheckError("an SSIM floor needs SSIM measured (ssim=True)")
        self.per_graph = per_graph
        self.judge_kernels = judge_kernels

    def judge(self, row: Row) -> Row:
        return judge(row, self.floors, self.judge_kernels)

    def run(self, candidate: Mapping[str, Backend], reference: Mapping[str, Backend], cases: Iterable[Case],
            log: Optional[Callable[[str], None]] = None) -> Report:
        ours, theirs = Graphs(candidate), Graphs(reference)
        report = Report(ours.frames.description, theirs.frames.description, self.precision, self.floors, ours.kind,
                        per_graph=self.per_graph)
        for case in cases:
            size = f"{case.size[0]}x{case.size[1]}"
            if log:
                log(f"{case.inputs} {size}")
            got, got_kernels = ours.stylize(case.feed)
            want, want_kernels = theirs.stylize(case.feed)

            def row(graphs: str, output: str, metrics: Mapping[str, Optional[float]]) -> Row:
                return self.judge(Row(case.inputs, size, output, images=case.images, graphs=graphs, **metrics))

            stylized = row(ours.label, STYLIZED, image_metrics(got, want, self.ssim))
            if got_kernels is None or want_kernels is None:
                report.rows.append(stylized)
                continue
            kernels = row(STYLE, KERNELS, kernel_metrics(got_kernels, want_kernels))
            if self.per_graph:
                alone = ours.decode(case.feed[CONTENT], want_kernels)
                report.rows += [kernels, row(CONTENT, STYLIZED, image_metrics(alone, want, self.ssim)), stylized]
            else:
                report.rows += [stylized, kernels]
        return report


# -- presenting ------------------------------------------------------------------------------------

def _fmt(value: Optional[float], digits: str) -> str:
    if value is None:
        return "-"
    if value >= PSNR_CAP and digits == ".1f":
        return "exact"
    return format(value, digits)


def print_report(report: Report, console=None) -> None:
    """One row per output; the floors in the title, every missed floor spelled out below."""
    console = console or rich_console.Console()
    table = rich_table.Table(title=f"{report.candidate} vs {report.reference} ({report.precision}; floors: "
                                   f"{report.floors.describe()})", title_justify="left", box=rich_box.SIMPLE_HEAD,
                             pad_edge=False, collapse_padding=True)
    # Per graph, the graphs column says what the output is (the style graph's are kernels).
    columns = [("graphs", "left"), ("inputs", "left"), ("size", "right")] if report.per_graph else \
        [("inputs", "left"), ("size", "right"), ("output", "left")]
    columns += [("max abs", "right"), ("mean abs", "right"), ("PSNR", "right"), ("rPSNR", "right")]
    with_ssim = any(row.ssim is not None for row in report.rows)
    columns += [("SSIM", "right")] if with_ssim else []
    for column, justify in columns + [("", "left")]:
        table.add_column(column, justify=justify, no_wrap=True)
    for row in report.rows:
        verdict = "[green]ok[/]" if row.passed else "[red]FAIL[/]"
        if not row.judged and row.passed:
            verdict = "[dim]info[/]"
        cells = [row.graphs.replace(" -> ", "->"), row.inputs, row.size] if report.per_graph else \
            [row.inputs, row.size, row.output]
        cells += [f"{row.max_abs:.2g}", f"{row.mean_abs:.2g}", _fmt(row.psnr_db, ".1f"), _fmt(row.range_psnr_db, ".1f")]
        cells += [_fmt(row.ssim, ".4f")] if with_ssim else []
        table.add_row(*cells, verdict)
    console.print(table)
    for row in report.failures():
        where = f"{row.graphs} on " if report.per_graph else ""
        console.print(f"[red]{where}{row.inputs} {row.size} {row.output}: {'; '.join(row.failures)}[/]")
    for note in report.notes:
        console.print(f"[dim]note: {note}[/]")
    console.print("[dim]PSNR: uint8 images; rPSNR: error against the reference's own range; "
                  "the PSNR floor applies to the lower of the two[/]")
