"""Timing done right: warm-up excluded, a clock that waits for the device, robust statistics."""
import math
import statistics
import time
from typing import Callable, Dict, List, Optional

import numpy as np


def latency_stats(samples_ms: List[float]) -> Dict[str, float]:
    """Median / p90 / p99 / mean / std (ms) and frames per second of per-iteration latencies."""
    if not samples_ms:
        raise ValueError("no timing samples")
    values = np.asarray(samples_ms, dtype=np.float64)
    median = float(np.median(values))
    return {
        "median_ms": median,
        "p90_ms": float(np.percentile(values, 90)),
        "p99_ms": float(np.percentile(values, 99)),
        "mean_ms": float(values.mean()),
        "std_ms": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min_ms": float(values.min()),
        "iterations": int(len(values)),
        "fps": 1000.0 / median if median > 0 else math.inf,
    }


def measure(step: Callable[[], object], warmup: int = 3, iterations: Optional[int] = None,
            seconds: Optional[float] = None, synchronize: Callable[[], None] = lambda: None,
            min_iterations: int = 5, max_iterations: int = 10000) -> List[float]:
    """Run ``step`` ``warmup`` times untimed, then time it for ``iterations`` runs or ``seconds``.

    ``synchronize`` must block until the device is idle (e.g. torch.cuda.synchronize, a stream
    synchronize); it runs before each clock read so asynchronous GPU work is counted.
    """
    if iterations is None and seconds is None:
        iterations = 20
    for _ in range(warmup):
        step()
    synchronize()
    samples = []
    deadline = None if seconds is None else time.perf_counter() + seconds
    while True:
        start = time.perf_counter()
        step()
        synchronize()
        samples.append((time.perf_counter() - start) * 1000.0)
        done = len(samples)
        if iterations is not None and done >= iterations:
            break
        if deadline is not None and time.perf_counter() >= deadline and done >= min_iterations:
            break
        if done >= max_iterations:
            break
    return samples


def interleaved(steps: Dict[str, Callable[[], object]], rounds: int, runs: int,
                warmup: int = 2) -> Dict[str, List[float]]:
    """Time several steps against each other: each round runs every step ``runs`` times in turn
    (``warmup`` untimed runs each in the first round), so every ratio compares the same minutes of
    a noisy machine. Returns each step's samples (ms), all rounds together."""
    times: Dict[str, List[float]] = {name: [] for name in steps}
    for index in range(rounds):
        for name, step in steps.items():
            times[name] += measure(step, warmup=warmup if index == 0 else 0, iterations=runs)
    return times


def ratio_table(title: str, times: Dict[str, List[float]]) -> List[str]:
    """Markdown rows of ``interleaved``'s samples: median, range and the median's ratio to the
    first step's; ``title`` heads the first column."""
    first_name = next(iter(times))
    first = statistics.median(times[first_name])
    lines = [f"| {title} | median ms | min-max ms | vs {first_name} |", "|---|---|---|---|"]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| {name} | {median:.1f} | {min(values):.1f}-{max(values):.1f} | {median / first:.2f}x |")
    return lines


class StageTimer:
    """Accumulates wall time per named stage of a pipeline (pre-processing, style, content, post)."""

    def __init__(self, synchronize: Callable[[], None] = lambda: None):
        self.synchronize = synchronize
        self.totals_ms: Dict[str, float] = {}
        self.counts: Dict[str, int] = {}

    def time(self, stage: str, fn: Callable[[], object]):
        start = time.perf_counter()
        result = fn()
        self.synchronize()
        elapsed = (time.perf_counter() - start) * 1000.0
        self.totals_ms[stage] = self.totals_ms.get(stage, 0.0) + elapsed
        self.counts[stage] = self.counts.get(stage, 0) + 1
        return result

    def means_ms(self) -> Dict[str, float]:
        return {stage: total / self.counts[stage] for stage, total in self.totals_ms.items()}
