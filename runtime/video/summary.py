"""What a run did: frames in and out, why it stopped, per-stage timings, the output written."""
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .frames import STOP_END


def stage_stats(samples_ms: Sequence[float]) -> Dict[str, float]:
    if not len(samples_ms):
        return {"count": 0, "mean_ms": float("nan"), "p99_ms": float("nan")}
    values = np.asarray(samples_ms, dtype=np.float64)
    return {"count": int(values.size), "mean_ms": float(values.mean()), "p99_ms": float(np.percentile(values, 99))}


@dataclass
class VideoSummary:
    source: str
    live: bool
    frames_in: int = 0          # read from the source
    frames_out: int = 0         # stylized and handed to every output
    dropped: int = 0            # skipped on purpose to stay real-time (live sources)
    unprocessed: int = 0        # read but still queued when the run was stopped
    stop_reason: str = STOP_END
    message: str = ""           # why it stopped, when that is worth saying
    seconds: float = 0.0
    input_size: Optional[Tuple[int, int]] = None    # (H, W) of the source frames
    output_size: Optional[Tuple[int, int]] = None
    fps_in: Optional[float] = None
    output: Optional[str] = None
    frames_written: int = 0     # frames in the file, repeats that keep live recordings real-time included
    audio: str = ""
    styles_used: List[str] = field(default_factory=list)
    stages: Dict[str, Dict[str, float]] = field(default_factory=dict)
    max_queue: Dict[str, int] = field(default_factory=dict)
    capture_alive: bool = False  # a read() never returned (stalled source): do not release under it

    @property
    def produced(self) -> bool:
        """Something useful came out: the rule for the exit status."""
        return self.frames_out > 0

    @property
    def fps(self) -> float:
        return self.frames_out / self.seconds if self.seconds > 0 else 0.0

    def lines(self) -> List[str]:
        size = lambda s: f"{s[1]}x{s[0]}" if s else "?"  # noqa: E731 - W x H, as video tools print it
        out = [f"source: {self.source} ({'live' if self.live else 'file'}, {size(self.input_size)}"
               + (f" @ {self.fps_in:g} fps)" if self.fps_in else ")"),
               f"stopped: {self.stop_reason}" + (f" - {self.message}" if self.message else ""),
               f"frames: {self.frames_in} in, {self.frames_out} out, {self.dropped} dropped"
               + (f", {self.unprocessed} unprocessed at stop" if self.unprocessed else "")
               + f"; {self.fps:.2f} fps over {self.seconds:.1f} s"]
        if self.output:
            repeats = self.frames_written - self.frames_out
            out.append(f"output: {self.output} ({size(self.output_size)}, {self.frames_written} frames"
                       + (f", {repeats} repeated to keep real time" if repeats > 0 else "") + ")")
        if self.audio:
            out.append(self.audio)
        for name, stats in self.stages.items():
            if stats["count"]:
                out.append(f"  {name:<10} mean {stats['mean_ms']:8.2f} ms   p99 {stats['p99_ms']:8.2f} ms   "
                           f"(n={stats['count']})")
        return out

    def to_dict(self) -> Dict[str, Any]:
        data = dict(self.__dict__)
        data.update(produced=self.produced, fps=self.fps)
        return data
