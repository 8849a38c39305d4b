"""The two helper threads: capture (source -> queue) and output (queue -> every sink).

Inference stays on the caller's thread (see pipeline.py); these two overlap reading, decoding
and encoding with it.
"""
import queue
import threading
import time
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

from .errors import one_line
from .frames import STOP_DROPPED, STOP_END, STOP_ERROR, STOP_LIMIT, EndOfStream, Frame, FrameQueue
from .styles import Controls


class CaptureThread(threading.Thread):
    """Reads frames from an OpenCV-like capture (``read() -> (ok, image)``) into a FrameQueue.

    It keeps reading as fast as the source gives frames; with a dropping queue that drains the
    driver's or network buffer, so the newest frame is always the one inference gets.
    """

    def __init__(self, capture, out: FrameQueue, live: bool, label: str,
                 transform: Optional[Callable[[np.ndarray], np.ndarray]] = None,
                 max_frames: Optional[int] = None, expected_frames: int = 0):
        super().__init__(name="capture", daemon=True)  # daemon: a read() stuck in C cannot block exit
        self.capture, self.out, self.live, self.label = capture, out, live, label
        self.transform, self.max_frames, self.expected_frames = transform, max_frames, expected_frames
        self.frames_read = 0
        self.source_size: Optional[Tuple[int, int]] = None  # (H, W) as the source delivers it
        self.read_ms: List[float] = []
        self.stop_event = threading.Event()

    def run(self) -> None:
        end = EndOfStream(STOP_END)
        try:
            while not self.stop_event.is_set():
                start = time.perf_counter()
                ok, image = self.capture.read()
                now = time.perf_counter()
                if not ok or image is None:
                    end = self._ended()
                    break
                if self.stop_event.is_set():
                    break
                if self.source_size is None:
                    self.source_size = (int(image.shape[0]), int(image.shape[1]))
                if self.transform is not None:
                    image = self.transform(image)
                read_ms = (now - start) * 1000.0
                self.read_ms.append(read_ms)
                frame = Frame(self.frames_read, image, now, read_ms)
                self.frames_read += 1
                if not self.out.put(frame):
                    break  # the consumer has stopped
                if self.max_frames is not None and self.frames_read >= self.max_frames:
                    end = EndOfStream(STOP_LIMIT)
                    break
        except Exception as error:  # cv2.error, OSError from a broken stream, a bad transform
            end = EndOfStream(STOP_ERROR, f"{self.label}: reading failed after {self.frames_read} frames: "
                                          f"{one_line(error)}")
        finally:
            self.out.finish(end)

    def _ended(self) -> EndOfStream:
        if self.live:
            return EndOfStream(STOP_DROPPED, f"{self.label}: the source stopped delivering frames after "
                                             f"{self.frames_read} (stream ended or connection dropped)")
        if self.frames_read == 0:
            return EndOfStream(STOP_ERROR, f"{self.label}: no frame could be decoded (damaged file or "
                                           "unsupported codec)")
        if self.expected_frames and self.frames_read < self.expected_frames - 1:
            return EndOfStream(STOP_END, f"{self.label}: reading stopped at frame {self.frames_read} of the "
                                         f"{self.expected_frames} the file reports (truncated or damaged file?)")
        return EndOfStream(STOP_END)


class CallbackSink:
    """Hands each output Frame to ``fn`` (tests, benchmarks, custom consumers)."""

    def __init__(self, fn: Callable[[Frame], None]):
        self.fn = fn

    def write(self, frame: Frame) -> None:
        self.fn(frame)

    def finalize(self):
        return None


class OutputThread(threading.Thread):
    """Takes stylized frames off the queue and hands them to every sink until the end marker."""

    def __init__(self, frames: FrameQueue, sinks: Sequence, controls: Controls):
        super().__init__(name="output", daemon=True)
        self.frames, self.sinks, self.controls = frames, list(sinks), controls
        self.frames_out = 0
        self.output_ms: List[float] = []
        self.total_ms: List[float] = []
        self.error: Optional[BaseException] = None

    def run(self) -> None:
        try:
            while True:
                try:
                    item = self.frames.get(timeout=0.03)
                except queue.Empty:
                    for sink in self.sinks:  # keep a window responsive while waiting
                        poll = getattr(sink, "poll", None)
                        if poll:
                            poll()
                    continue
                if isinstance(item, EndOfStream):
                    return
                start = time.perf_counter()
                for sink in self.sinks:
                    sink.write(item)
                done = time.perf_counter()
                self.output_ms.append((done - start) * 1000.0)
                self.total_ms.append((done - item.t_read) * 1000.0)
                self.frames_out += 1
        except BaseException as error:  # noqa: B902 - reported to the main thread, which stops the run
            self.error = error
            self.controls.quit.set()
            self.frames.close()
