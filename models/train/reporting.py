"""What a run reports while it runs: ``metrics.csv`` (and TensorBoard scalars if asked) and the
progress bar. Rank 0 alone reports."""
import csv
import sys
from pathlib import Path
from typing import Dict, Optional

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from infusionnet.runtime.fileio import atomic_path
from infusionnet.runtime.lazy import lazy_import, load

from .config import TrainingError

# --tensorboard only: the tensorboard package is not a dependency.
torch_tensorboard = lazy_import("torch.utils.tensorboard")

METRICS = ("loss", "content", "style", "contrastive")


class MetricsLogger:
    """``metrics.csv`` (one row per log step) and, if asked, TensorBoard scalars. On resume,
    rows after the resumed step (from the interrupted run's tail) are dropped."""

    COLUMNS = ("step",) + METRICS + ("lr", "it_per_s", "skipped_files")

    def __init__(self, output: Path, start_step: int, tensorboard: bool = False):
        output.mkdir(parents=True, exist_ok=True)
        self.path = output / "metrics.csv"
        kept = []
        if start_step and self.path.is_file():
            with open(self.path, newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row.get("step", 0)) <= start_step]
        with atomic_path(self.path) as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(kept)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.COLUMNS)
        self.tensorboard = None
        if tensorboard:
            try:
                summary_writer = load(torch_tensorboard).SummaryWriter
            except ImportError:
                raise TrainingError("--tensorboard needs the tensorboard package (pip install tensorboard); "
                                    "metrics.csv is always written") from None
            self.tensorboard = summary_writer(str(output / "tensorboard"), purge_step=start_step or None)

    def write(self, step: int, means: Dict[str, float], lr: float, speed: Optional[float], skipped: int) -> None:
        row = {"step": step, **{k: f"{v:.6g}" for k, v in means.items()}, "lr": f"{lr:.6g}",
               "it_per_s": f"{speed:.4g}" if speed else "", "skipped_files": skipped}
        self.writer.writerow(row)
        self.file.flush()
        if self.tensorboard is not None:
            for name, value in means.items():
                self.tensorboard.add_scalar(f"loss/{name}", value, step)
            self.tensorboard.add_scalar("lr", lr, step)

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


class SpeedColumn(ProgressColumn):
    """Steps per second (-- until there is a speed to show)."""

    def render(self, task):
        return Text(f"{task.speed:.2f} it/s" if task.speed else "-- it/s")


class TrainingProgress:
    """A rich progress bar (step, it/s, ETA, latest losses); plain lines when not on a terminal."""

    def __init__(self, start: int, total: int, enabled: bool = True):
        self.enabled, self.start, self.total = enabled, start, total
        self.interactive = enabled and sys.stderr.isatty()
        self.progress = None
        self.task = None

    def __enter__(self):
        if self.enabled:
            self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), SpeedColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.description}"),
                                     console=Console(stderr=True), disable=not self.interactive)
            self.progress.__enter__()
            self.task = self.progress.add_task("", total=self.total, completed=self.start)
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def show(self, means: Dict[str, float], skipped: int) -> None:
        if self.progress is None:
            return
        text = " ".join(f"{k} {v:.4g}" for k, v in means.items())
        if skipped:
            text += f" | skipped files {skipped}"
        self.progress.update(self.task, description=text)
        if not self.interactive:
            task = self.progress.tasks[self.task]
            speed = f" {task.speed:.2f} it/s" if task.speed else ""
            print(f"step {int(task.completed)}/{self.total}{speed} {text}", file=sys.stderr, flush=True)
