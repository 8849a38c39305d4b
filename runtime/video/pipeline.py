"""The pipeline: capture thread -> inference on the caller's thread -> output thread, then the summary.

Inference stays on the caller's thread on purpose: CUDA contexts (pycuda, TensorRT) are bound to
the thread that made them, and Ctrl-C (KeyboardInterrupt) is delivered there.

Whatever ends a run (end of stream, Ctrl-C, a source that drops or stalls, a stylizer error),
every sink is finalized, so an output video is always playable.
"""
import queue
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from .errors import VideoError
from .file_sink import VideoFileSink
from .frames import (STOP_END, STOP_INTERRUPTED, STOP_OUTPUT_ERROR, STOP_QUIT, STOP_STALLED, STOP_STYLIZER_ERROR,
                     EndOfStream, FrameQueue)
from .overlay import Overlay
from .styles import Controls, StyleCycler
from .summary import VideoSummary, stage_stats
from .threads import CaptureThread, OutputThread


def resize_transform(size: Optional[Tuple[int, int]]) -> Optional[Callable[[np.ndarray], np.ndarray]]:
    """Resize every frame to (H, W) on the capture thread (in parallel with inference)."""
    if not size:
        return None
    height, width = size

    def transform(image: np.ndarray) -> np.ndarray:
        if image.shape[:2] == (height, width):
            return image
        shrink = height * width < image.shape[0] * image.shape[1]
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return transform


def run_pipeline(capture, stylizer, *, live: bool, sinks: Sequence = (), styles: Optional[StyleCycler] = None,
                 controls: Optional[Controls] = None, label: str = "source", size: Optional[Tuple[int, int]] = None,
                 stall_timeout: float = 10.0, max_fps: Optional[float] = None, overlay: bool = False,
                 max_frames: Optional[int] = None, queue_size: int = 4, fps_in: Optional[float] = None,
                 expected_frames: int = 0) -> VideoSummary:
    """Run capture -> stylize -> sinks until the source ends, stalls or fails, quit or Ctrl-C.

    ``capture`` is anything with OpenCV's ``read()``; ``stylizer`` follows FrameStylizer (BGR in
    and out); ``sinks`` have ``write(frame)`` and ``finalize()`` (called here, whatever happens).
    Source problems and Ctrl-C do not raise: they end the run and are in the summary's
    ``stop_reason``/``message``. A stylizer or output error is re-raised after every sink has
    been finalized, so a partial video is still a valid file.
    """
    controls = controls or Controls()
    live_queue = 1 if live else queue_size  # live: a one-frame mailbox holding the newest frame
    frames_in = FrameQueue(live_queue, drop_oldest=live)
    frames_out = FrameQueue(queue_size, drop_oldest=live)
    capture_thread = CaptureThread(capture, frames_in, live, label, resize_transform(size), max_frames,
                                   expected_frames)
    output_thread = OutputThread(frames_out, sinks, controls)
    loop = InferenceLoop(frames_in, frames_out, stylizer, controls, styles, Overlay() if overlay else None,
                         LoopSettings(label, stall_timeout, max_fps))
    stop_reason, message = STOP_END, ""
    pending: Optional[BaseException] = None
    start = time.perf_counter()
    if styles is not None and styles.index < 0:
        styles.select(0)
    capture_thread.start()
    output_thread.start()
    try:
        stop_reason, message = loop.run()
    except KeyboardInterrupt:
        stop_reason = STOP_INTERRUPTED
    except BaseException as error:  # the stylizer failed: finish the file, then report the error
        stop_reason, pending = STOP_STYLIZER_ERROR, error
    finally:
        capture_thread.stop_event.set()
        frames_in.close()
        frames_out.finish(EndOfStream(stop_reason))
        try:
            output_thread.join()
        except KeyboardInterrupt:  # a second Ctrl-C: stop writing queued frames, still finalize
            frames_out.close()
            output_thread.join(5.0)
        capture_thread.join(1.0)  # a read() stuck in a stalled source is left to its daemon thread
        # The summary is written here only, from what each stage kept, once every thread is done.
        dropped = frames_in.dropped + frames_out.dropped
        summary = VideoSummary(
            source=label, live=live, fps_in=fps_in, stop_reason=stop_reason, message=message,
            seconds=time.perf_counter() - start,
            frames_in=capture_thread.frames_read, frames_out=output_thread.frames_out, dropped=dropped,
            unprocessed=max(0, capture_thread.frames_read - output_thread.frames_out - dropped),
            input_size=capture_thread.source_size, output_size=loop.output_size,
            styles_used=loop.styles_used, stages=_stages(capture_thread, loop, output_thread, styles),
            max_queue={"capture": frames_in.high_water, "output": frames_out.high_water},
            capture_alive=capture_thread.is_alive())
        finalize_error = _finalize_sinks(sinks, summary)
    if output_thread.error is not None and not isinstance(output_thread.error, KeyboardInterrupt):
        pending = pending or output_thread.error
        summary.stop_reason = STOP_OUTPUT_ERROR
    if pending is None and finalize_error is not None:
        pending = finalize_error
    if pending is not None:
        pending.summary = summary  # the caller can still print what was done
        raise pending
    return summary


@dataclass(frozen=True)
class LoopSettings:
    """How the inference loop paces itself and when it gives up on a silent source."""
    label: str                       # how messages name the source
    stall_timeout: float             # seconds without a frame before the source counts as stalled
    max_fps: Optional[float] = None  # at most this many frames stylized per second (None: no cap)


class InferenceLoop:
    """Takes frames off the capture queue, stylizes them and queues them for the output thread.

    It keeps what it measured and saw (queue and stylize times, the output size, the styles
    used) as attributes, so that ``run_pipeline`` writes the summary from them even when the
    loop ended in an exception.
    """

    def __init__(self, frames_in: FrameQueue, frames_out: FrameQueue, stylizer, controls: Controls,
                 styles: Optional[StyleCycler], overlay: Optional[Overlay], settings: LoopSettings):
        self.frames_in, self.frames_out, self.stylizer = frames_in, frames_out, stylizer
        self.controls, self.styles, self.overlay, self.settings = controls, styles, overlay, settings
        self.queue_ms: List[float] = []    # capture -> start of inference
        self.infer_ms: List[float] = []    # the stylizer's own time
        self.output_size: Optional[Tuple[int, int]] = None
        self.styles_used: List[str] = []   # in the order they were first used, switches included

    def run(self) -> Tuple[str, str]:
        """Stylize until something stops the run; returns (stop reason, message)."""
        controls, styles, settings = self.controls, self.styles, self.settings
        interval = 1.0 / settings.max_fps if settings.max_fps else 0.0
        next_start = 0.0
        recent_buffers: deque = deque(maxlen=self.frames_out.maxsize + 2)
        while True:
            if controls.quit.is_set():
                return STOP_QUIT, ""
            if styles is not None:
                styles.step(controls.take_style_step())
            if interval:
                # Wait BEFORE taking a frame: a live source keeps refreshing its mailbox meanwhile.
                delay = next_start - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            item = _next_item(self.frames_in, controls, settings.stall_timeout)
            if item is None:
                if controls.quit.is_set():
                    return STOP_QUIT, ""
                return STOP_STALLED, (f"{settings.label}: no frame for {settings.stall_timeout:g} s, the source "
                                      "stalled (raise --stall-timeout to wait longer)")
            if isinstance(item, EndOfStream):
                return item.reason, item.message
            begin = time.perf_counter()
            next_start = begin + interval
            self.queue_ms.append((begin - item.t_read) * 1000.0)
            result = self.stylizer.stylize(item.image)
            done = time.perf_counter()
            self.infer_ms.append((done - begin) * 1000.0)
            result = _check_output(result, item.image)
            # A stylizer may hand back the same output buffer every time (preallocated host memory):
            # the queued frame would be overwritten by the next call. The first frame is always
            # copied, later ones when their buffer was seen recently (rarely true for fresh arrays).
            buffer = result.__array_interface__["data"][0]
            if not recent_buffers or buffer in recent_buffers:
                result = result.copy()
            recent_buffers.append(buffer)
            if self.output_size is None:
                self.output_size = tuple(result.shape[:2])
            name = styles.name if styles is not None else ""
            if name and (not self.styles_used or self.styles_used[-1] != name):
                self.styles_used.append(name)
            if self.overlay is not None:
                result = self.overlay.draw(result, done, (done - item.t_read) * 1000.0, name)
            item.image, item.t_infer_start, item.infer_ms, item.style = result, begin, self.infer_ms[-1], name
            if not self.frames_out.put(item):
                return STOP_OUTPUT_ERROR if not controls.quit.is_set() else STOP_QUIT, ""


def _next_item(frames: FrameQueue, controls: Controls, stall_timeout: float):
    """The next queued item, or None after ``stall_timeout`` seconds without one (or on quit)."""
    deadline = time.monotonic() + stall_timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or controls.quit.is_set():
            return None
        try:
            return frames.get(timeout=min(0.05, remaining))
        except queue.Empty:
            continue


def _check_output(result, frame: np.ndarray) -> np.ndarray:
    if not isinstance(result, np.ndarray) or result.dtype != np.uint8 or result.ndim != 3 or result.shape[2] != 3:
        got = f"{result.dtype} {result.shape}" if isinstance(result, np.ndarray) else type(result).__name__
        raise VideoError(f"the stylizer must return an HxWx3 uint8 frame, it returned {got}")
    return result


def _stages(capture: CaptureThread, loop: InferenceLoop, output: OutputThread,
            styles: Optional[StyleCycler]) -> Dict[str, Dict[str, float]]:
    """Per-stage timing statistics, in the order a frame goes through the stages."""
    stages = {"capture": stage_stats(capture.read_ms), "queue": stage_stats(loop.queue_ms),
              "stylize": stage_stats(loop.infer_ms), "output": stage_stats(output.output_ms),
              "end-to-end": stage_stats(output.total_ms)}
    if styles is not None and styles.switch_ms:
        stages["style"] = stage_stats(styles.switch_ms)
    return stages


def _finalize_sinks(sinks: Sequence, summary: VideoSummary) -> Optional[BaseException]:
    """Finalize every sink (even after one fails); the file sink's result goes into the summary."""
    first_error = None
    for sink in sinks:
        try:
            path = sink.finalize()
        except BaseException as error:  # finalize every sink even if one fails
            first_error = first_error or error
            continue
        if isinstance(sink, VideoFileSink):
            summary.output = str(path) if path else None
            summary.frames_written = sink.frames_written
            summary.output_size = sink.size or summary.output_size  # what the file holds
            summary.audio = sink.audio_note
    return first_error
