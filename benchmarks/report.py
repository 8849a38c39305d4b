"""Benchmark results: one row per (backend, precision, graph, size, batch); JSON, CSV, a terminal
table, PNG plots and a markdown report that embeds them, and the difference against an older run."""
import csv
import json
import math
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
from rich.table import Table

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import atomic_path
from infusionnet.runtime.lazy import lazy_import
from infusionnet.runtime.metrics import PSNR_CAP

from .machine import INSTRUCTION_SETS
from .peak import peak_share

# The plots only (the plots extra; `bench --no-plots` runs without it). pyplot is imported after
# write_plots has selected the headless backend.
matplotlib = lazy_import("matplotlib")
plt = lazy_import("matplotlib.pyplot")
matplotlib_lines = lazy_import("matplotlib.lines")

CSV_COLUMNS = ("backend", "precision", "compute_precision", "graph", "mode", "size", "batch", "status", "median_ms",
               "p90_ms", "p99_ms", "mean_ms", "std_ms", "fps", "speedup", "speedup_min", "speedup_max", "rounds",
               "psnr_db", "max_abs", "content_gmac", "gmacs", "peak", "peak_share", "peak_share_min",
               "peak_share_max", "peak_rss_mb", "gpu_mem_mb",
               "preprocess_ms", "style_ms", "content_ms", "postprocess_ms", "reason")
STAGES = ("preprocess", "style", "content", "postprocess")


def row_key(row: dict) -> tuple:
    return (row["backend"], row["precision"], row["graph"], row["mode"], row["size"], row["batch"])


def flatten(row: dict) -> Dict[str, object]:
    """The CSV view of a row: latency statistics, stages and accuracy as columns."""
    flat = {key: row.get(key) for key in ("backend", "precision", "compute_precision", "graph", "mode", "size",
                                           "batch", "status", "speedup", "content_gmac", "peak_rss_mb",
                                           "gpu_mem_mb", "reason")}
    spread = row.get("speedup_rounds") or {}
    flat.update(speedup_min=spread.get("min"), speedup_max=spread.get("max"), rounds=len(spread.get("ratios", [])))
    share = row.get("peak") or {}
    share_spread = share.get("share_rounds") or {}
    flat.update(gmacs=share.get("gmacs"), peak=share.get("peak"), peak_share=share.get("share"),
                peak_share_min=share_spread.get("min"), peak_share_max=share_spread.get("max"))
    flat.update({k: v for k, v in (row.get("latency") or {}).items() if k in CSV_COLUMNS})
    flat.update({k: v for k, v in (row.get("accuracy") or {}).items() if k in CSV_COLUMNS})
    flat.update({f"{stage}_ms": (row.get("stages_ms") or {}).get(stage) for stage in STAGES})
    return flat


def add_speedups(rows: List[dict]) -> None:
    """Speed-up of every measured row over the reference row of the same size and batch.

    Rows timed in interleaved rounds (``round_medians_ms``) get one ratio per round, each
    comparing the same minutes of the machine: the speed-up is their median and
    ``speedup_rounds`` keeps them all with their min and max (the spread to quote). Rows timed
    one after another get the ratio of the medians.
    """
    references = {(r["size"], r["batch"]): r for r in rows if r["backend"] == "reference" and r["status"] == "ok"}
    for row in rows:
        base = references.get((row["size"], row["batch"]))
        if row["status"] != "ok" or not base:
            continue
        row["speedup"] = base["latency"]["median_ms"] / row["latency"]["median_ms"]
        ratios = round_ratios(base.get("round_medians_ms"), row.get("round_medians_ms"))
        if ratios:
            row["speedup"] = float(np.median(ratios))
            row["speedup_rounds"] = {"ratios": ratios, "min": min(ratios), "max": max(ratios)}


def round_ratios(reference_ms: Optional[Sequence[float]], row_ms: Optional[Sequence[float]]) -> List[float]:
    """Reference / row median per round; empty unless both were timed in the same rounds."""
    if not reference_ms or not row_ms or len(reference_ms) != len(row_ms):
        return []
    return [float(ref / ms) for ref, ms in zip(reference_ms, row_ms) if ms > 0]


def add_peak_shares(rows: List[dict], peaks: Dict[str, dict]) -> None:
    """Each measured row's content-path throughput and its share of the machine's measured peak
    for the precision it ran in (``benchmarks.peak``)."""
    for row in rows:
        macs = row.get("content_gmac")
        share = peak_share(row, int(macs * 1e9) if macs else None, peaks)
        if share:
            row["peak"] = share


def write_results(directory: Path, machine: dict, settings: dict, rows: List[dict]) -> Dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "results.json", "csv": directory / "results.csv"}
    with atomic_path(paths["json"]) as tmp:
        tmp.write_text(json.dumps({"machine": machine, "settings": settings, "rows": rows}, indent=2) + "\n")
    with atomic_path(paths["csv"]) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _csv_value(v) for k, v in flatten(row).items()})
    return paths


def load_results(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text())
        data["rows"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InfusionNetError(f"{path}: not a benchmark results.json ({error})") from None
    return data


def _csv_value(value):
    return f"{value:.4g}" if isinstance(value, float) else ("" if value is None else value)


def _fmt(value, spec: str = ".2f", suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float) and math.isinf(value):
        return "inf" + suffix
    return f"{value:{spec}}{suffix}"


def precision_label(row: dict) -> str:
    """The export's precision, and what really ran where a backend chose otherwise: "fp32>bf16"."""
    computed = row.get("compute_precision")
    return f"{row['precision']}>{computed}" if computed and computed != row["precision"] else row["precision"]


def speedup_label(row: dict) -> str:
    """"3.10x", or with interleaved rounds "3.10x (2.95-3.30)": the median and the spread of the
    per-round ratios."""
    text = _fmt(row.get("speedup"), ".2f", "x")
    spread = row.get("speedup_rounds")
    if spread:
        text += f" ({spread['min']:.2f}-{spread['max']:.2f})"
    return text


def peak_label(row: dict) -> str:
    """"23% fp32": the row's share of the measured peak of the precision it is held against;
    with peaks measured in every round "23% fp32 (21-26%)", the median and spread of the
    per-round shares."""
    share = row.get("peak")
    if not share:
        return "-"
    text = f"{share['share'] * 100:.0f}% {share['peak']}"
    spread = share.get("share_rounds")
    if spread:
        text += f" ({spread['min'] * 100:.0f}-{spread['max'] * 100:.0f}%)"
    return text


def results_table(rows: Sequence[dict], title: str = "InfusionNet benchmark"):
    """A rich Table of every row, skipped ones with their reason."""
    table = Table(title=title, header_style="bold")
    for column in ("backend", "prec", "graph", "size", "B", "median ms", "p99 ms", "FPS", "speed-up",
                   "of peak", "PSNR dB", "max abs", "RSS MiB", "stages ms (pre/style/content/post)"):
        table.add_column(column, justify="left" if column in ("backend", "prec", "graph") else "right")
    for row in rows:
        if row["status"] != "ok":
            table.add_row(row["backend"], row["precision"], row["graph"], row["size"], str(row["batch"]),
                          f"[yellow]{row['status']}[/]", *[""] * 8)  # reasons are listed below the table
            continue
        latency, accuracy, stages = row["latency"], row.get("accuracy") or {}, row.get("stages_ms") or {}
        table.add_row(
            row["backend"], precision_label(row), row["graph"], row["size"], str(row["batch"]),
            _fmt(latency["median_ms"]), _fmt(latency["p99_ms"]), _fmt(latency["fps"], ".1f"),
            speedup_label(row), peak_label(row), _fmt(accuracy.get("psnr_db"), ".1f"),
            _fmt(accuracy.get("max_abs"), ".2e"), _fmt(row.get("peak_rss_mb"), ".0f"),
            "/".join(_fmt(stages.get(s), ".1f") for s in STAGES))
    return table


def compare_table(old: dict, new_rows: Sequence[dict]):
    """Median latency and PSNR of this run against an older results.json, row by row."""
    previous = {tuple(row_key(r)): r for r in old["rows"] if r.get("status") == "ok"}
    table = Table(title="difference against the earlier run", header_style="bold")
    for column in ("backend", "prec", "graph", "size", "B", "old ms", "new ms", "change", "old PSNR", "new PSNR"):
        table.add_column(column, justify="left" if column in ("backend", "prec", "graph") else "right")
    for row in new_rows:
        before = previous.get(row_key(row))
        if row["status"] != "ok" or before is None:
            continue
        old_ms, new_ms = before["latency"]["median_ms"], row["latency"]["median_ms"]
        change = (new_ms - old_ms) / old_ms * 100.0
        colour = "green" if change < -3 else "red" if change > 3 else "white"
        table.add_row(row["backend"], row["precision"], row["graph"], row["size"], str(row["batch"]),
                      _fmt(old_ms), _fmt(new_ms), f"[{colour}]{change:+.1f}%[/]",
                      _fmt((before.get("accuracy") or {}).get("psnr_db"), ".1f"),
                      _fmt((row.get("accuracy") or {}).get("psnr_db"), ".1f"))
    return table


def _size_pixels(size: str) -> int:
    height, width = (int(v) for v in size.split("x"))
    return height * width


def write_plots(directory: Path, rows: Sequence[dict]) -> List[Path]:
    """latency_vs_resolution.png and speedup_vs_accuracy.png (matplotlib, headless)."""
    matplotlib.use("Agg")
    ok = [r for r in rows if r["status"] == "ok"]
    written = []
    series: Dict[str, List[dict]] = {}
    for row in ok:
        series.setdefault(f"{row['backend']} {row['precision']} {row['graph']}", []).append(row)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, members in sorted(series.items()):
        members = sorted(members, key=lambda r: _size_pixels(r["size"]))
        ax.plot([_size_pixels(r["size"]) / 1e6 for r in members], [r["latency"]["median_ms"] for r in members],
                marker="o", label=label)
    ax.set_xlabel("content megapixels")
    ax.set_ylabel("median latency per frame (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    ax.set_title("latency vs resolution")
    fig.tight_layout()
    written.append(_save_figure(fig, directory / "latency_vs_resolution.png"))

    measured = [r for r in ok if r.get("speedup") and (r.get("accuracy") or {}).get("psnr_db") is not None]
    # Colour = backend/precision/graph, marker = size, named in one legend: per-point labels overlap
    # where several rows reach the 100 dB cap.
    names = sorted({f"{r['backend']} {r['precision']} {r['graph']}" for r in measured})
    sizes = sorted({r["size"] for r in measured}, key=_size_pixels)
    colours = {name: f"C{index % 10}" for index, name in enumerate(names)}
    markers = {size: "osD^v<>p"[index % 8] for index, size in enumerate(sizes)}
    fig, ax = plt.subplots(figsize=(8, 4.8))
    for row in measured:
        psnr = min(row["accuracy"]["psnr_db"], PSNR_CAP)  # identical outputs sit at the cap
        ax.scatter(row["speedup"], psnr, s=40, color=colours[f"{row['backend']} {row['precision']} {row['graph']}"],
                   marker=markers[row["size"]])
    handles = [matplotlib_lines.Line2D([], [], color=colours[name], marker="o", linestyle="", label=name)
               for name in names]
    handles += [matplotlib_lines.Line2D([], [], color="grey", marker=markers[size], linestyle="", label=size)
                for size in sizes]
    ax.legend(handles=handles, fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xlabel("speed-up over the reference row (x)")
    ax.set_ylabel("PSNR vs PyTorch FP32 (dB, capped at 100)")
    ax.grid(True, alpha=0.3)
    ax.set_title("speed-up vs accuracy")
    fig.tight_layout()
    written.append(_save_figure(fig, directory / "speedup_vs_accuracy.png"))
    plt.close("all")
    return written


def _save_figure(fig, path: Path) -> Path:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=120)
    return path


def write_markdown(directory: Path, machine: dict, settings: dict, rows: Sequence[dict],
                   plots: Sequence[Path], command: Optional[str] = None) -> Path:
    gpu = machine.get("gpu")
    lines = ["# InfusionNet benchmark", "",
             f"- machine: {machine['cpu']}, {machine['cpu_cores']} cores, {machine.get('memory_gib')} GiB"
             + (f"; GPU {gpu['name']} (driver {gpu['driver']})" if gpu else "; no GPU"),
             "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(machine["versions"].items())),
             "- settings: " + ", ".join(f"{k}={v}" for k, v in settings.items())]
    features = machine.get("cpu_features")
    if features is not None:
        lines += ["- CPU features: " + (", ".join(features) or "none of " + ", ".join(INSTRUCTION_SETS))]
    for name, peak in sorted((machine.get("peaks") or {}).items()):
        lines += [f"- measured peak {name}: {peak['gmacs']:.0f} G MAC/s ({peak['how']})"]
    if command:
        lines += ["- reproduce: `" + command + "`"]
    lines += ["", "| backend | precision | graph | size | batch | median ms | p99 ms | FPS | speed-up | of peak | "
              "PSNR dB | max abs | peak RSS MiB |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if row["status"] != "ok":
            lines.append(f"| {row['backend']} | {row['precision']} | {row['graph']} | {row['size']} | "
                         f"{row['batch']} | {row['status']}: {row.get('reason', '')} | | | | | | | |")
            continue
        latency, accuracy = row["latency"], row.get("accuracy") or {}
        lines.append(f"| {row['backend']} | {precision_label(row)} | {row['graph']} | {row['size']} | "
                     f"{row['batch']} | {_fmt(latency['median_ms'])} | {_fmt(latency['p99_ms'])} | "
                     f"{_fmt(latency['fps'], '.1f')} | {speedup_label(row)} | {peak_label(row)} | "
                     f"{_fmt(accuracy.get('psnr_db'), '.1f')} | {_fmt(accuracy.get('max_abs'), '.2e')} | "
                     f"{_fmt(row.get('peak_rss_mb'), '.0f')} |")
    lines.append("")
    for plot in plots:
        lines += [f"![{plot.stem}]({plot.name})", ""]
    path = directory / "report.md"
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(lines))
    return path
