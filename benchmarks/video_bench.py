"""End-to-end video throughput vs the bare model: what the pipeline costs (or hides) on a machine.

Three numbers for one stylizer at one frame size:
- bare: ``stylize(frame)`` in a loop on one in-memory frame (no decode, no encode, no threads);
- file: a synthetic MJPG clip through the real pipeline into an mp4 (decode, stylize, encode,
  every frame kept) - the capture and writer threads overlap with inference, so this approaches
  the bare rate when decoding and encoding are cheap next to the network;
- live: a synthetic camera paced at ``camera_fps`` through the pipeline with the live drop
  policy - frames per second actually shown, and how many the camera offered.

The stylizer follows runtime.video.styles.FrameStylizer with its style already set; nothing here imports
torch, so the same function measures the ONNX Runtime or TensorRT path on a Jetson.
"""
import tempfile
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import cv2
import numpy as np

from infusionnet.benchmarks.timing import latency_stats, measure
from infusionnet.runtime.video.file_sink import VideoFileSink
from infusionnet.runtime.video.pipeline import run_pipeline
from infusionnet.runtime.video.summary import VideoSummary


def synthetic_frame(index: int, size: Tuple[int, int]) -> np.ndarray:
    """A moving colour gradient with texture: compresses and decodes like camera content."""
    height, width = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    phase = index * 0.15
    frame = np.stack([127 + 120 * np.sin(x / 17.0 + phase), 127 + 120 * np.sin(y / 23.0 - phase),
                      127 + 120 * np.sin((x + y) / 31.0 + 2 * phase)], axis=-1)
    noise = np.random.default_rng(index).integers(-12, 13, (height, width, 3))
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


class SyntheticCamera:
    """An OpenCV-like live capture that delivers pre-made frames at ``fps`` for ``count`` frames."""

    def __init__(self, frames, fps: float, count: int):
        self.frames, self.fps, self.count = frames, fps, count
        self.offered = 0
        self._next = None

    def isOpened(self) -> bool:
        return True

    def read(self):
        if self.offered >= self.count:
            return False, None
        now = time.perf_counter()
        if self._next is None:
            self._next = now
        if self._next > now:
            time.sleep(self._next - now)  # a camera blocks until its next frame is exposed
        self._next += 1.0 / self.fps
        frame = self.frames[self.offered % len(self.frames)].copy()
        self.offered += 1
        return True, frame

    def get(self, prop) -> float:
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop, value) -> bool:
        return True

    def release(self) -> None:
        pass


def video_benchmark(stylizer, size: Tuple[int, int] = (256, 256), frames: int = 48, camera_fps: float = 30.0,
                    camera_seconds: float = 3.0, warmup: int = 3, workdir: Optional[Path] = None) -> Dict[str, object]:
    """Measure bare, file-pipeline and live-pipeline throughput; returns a JSON-ready dict.

    ``frames`` is the number of bare iterations and of clip frames; the synthetic camera runs
    for ``camera_seconds``.
    """
    height, width = size
    clip_frames = [synthetic_frame(i, size) for i in range(min(frames, 24))]
    sample = clip_frames[0]
    bare_ms = measure(lambda: stylizer.stylize(sample), warmup=warmup, iterations=frames)
    bare = latency_stats(bare_ms)
    bare["fps_mean"] = 1000.0 / bare["mean_ms"]
    with tempfile.TemporaryDirectory(prefix="video-bench-", dir=str(workdir) if workdir else None) as tmp:
        clip = Path(tmp) / "input.avi"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"MJPG"), camera_fps, (width, height))
        for i in range(frames):
            writer.write(clip_frames[i % len(clip_frames)])
        writer.release()
        capture = cv2.VideoCapture(str(clip))
        file_summary = run_pipeline(capture, stylizer, live=False, label="synthetic clip",
                                    sinks=[VideoFileSink(Path(tmp) / "out.mp4", camera_fps)])
        capture.release()
        camera = SyntheticCamera(clip_frames, camera_fps, count=max(1, int(camera_fps * camera_seconds)))
        live_summary = run_pipeline(camera, stylizer, live=True, label="synthetic camera",
                                    sinks=[VideoFileSink(Path(tmp) / "live.mp4", camera_fps, real_time=True)])
    return {
        "size": f"{height}x{width}",
        "frames": frames,
        "bare": bare,
        "file": _pipeline_row(file_summary),
        "live": dict(_pipeline_row(live_summary), camera_fps=camera_fps, offered=camera.offered),
        "file_vs_bare": _pipeline_row(file_summary)["fps"] / bare["fps_mean"],
    }


def _pipeline_row(summary: VideoSummary) -> Dict[str, object]:
    return {"fps": summary.fps, "frames_in": summary.frames_in, "frames_out": summary.frames_out,
            "dropped": summary.dropped, "seconds": summary.seconds,
            "stages": {name: dict(stats) for name, stats in summary.stages.items()}}


def format_lines(result: Dict[str, object]) -> list:
    """A short plain-text report of ``video_benchmark``'s result."""
    bare, file, live = result["bare"], result["file"], result["live"]
    lines = [f"video benchmark at {result['size']} (HxW), {result['frames']} frames",
             f"  bare model     {bare['fps_mean']:7.2f} fps  (mean {bare['mean_ms']:.1f} ms, "
             f"median {bare['median_ms']:.1f} ms, p99 {bare['p99_ms']:.1f} ms)",
             f"  file pipeline  {file['fps']:7.2f} fps  ({file['frames_out']} frames in {file['seconds']:.2f} s, "
             f"{result['file_vs_bare'] * 100:.0f}% of bare)",
             f"  live pipeline  {live['fps']:7.2f} fps  (camera offered {live['offered']} at "
             f"{live['camera_fps']:g} fps, {live['frames_out']} shown, {live['dropped']} dropped)"]
    for mode in ("file", "live"):
        stages = result[mode]["stages"]
        parts = [f"{name} {stats['mean_ms']:.1f}/{stats['p99_ms']:.1f}" for name, stats in stages.items()
                 if stats["count"]]
        lines.append(f"  {mode} stages mean/p99 ms: " + ", ".join(parts))
    return lines
