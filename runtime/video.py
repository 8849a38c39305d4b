"""Real-time video stylization: capture -> stylize -> write/display, joined by bounded queues.

Three stages run at once so that reading, decoding and encoding overlap with the network:

    capture thread --FrameQueue--> inference (caller's thread) --FrameQueue--> output thread
    read, resize                   stylize, overlay                          writer, display

Inference stays on the caller's thread on purpose: CUDA contexts (pycuda, TensorRT) are bound to
the thread that made them, and Ctrl-C (KeyboardInterrupt) is delivered there.

Queue policy decides the behaviour:
- files are processed losslessly and in order: full queues block the producer;
- live sources (camera, URL, GStreamer, CSI) stay real-time: a full queue drops its OLDEST frame,
  so inference always takes the newest one and queues never grow.

Whatever ends a run (end of stream, Ctrl-C, a source that drops or stalls, a stylizer error), the
output video is released and renamed into place, so it is always playable; nothing is written
when no frame was produced. Torch-free and Python 3.8 compatible (runs on JetPack 5).
"""
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

from infusionnet.runtime.errors import InfusionNetError

try:  # typing.Protocol is 3.8+, which is the floor anyway; kept tolerant for type checkers only
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore


class VideoError(InfusionNetError):
    """A problem with a video source or output, worded for the user."""


class SourceError(VideoError):
    """The source cannot be opened or read."""


class FrameStylizer(Protocol):
    """What the pipeline needs from a model: any object with these two methods.

    ``stylize`` takes a BGR uint8 frame (as OpenCV reads it) and returns a NEW BGR uint8 frame
    (the pipeline queues it while the next frame is stylized; a reused output buffer is detected
    and copied). Wrap a Stylizer that speaks RGB with :func:`bgr_stylizer`.
    """

    def set_style(self, rgb: np.ndarray) -> None: ...

    def stylize(self, frame: np.ndarray) -> np.ndarray: ...


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------

URL_SCHEMES = ("rtsp://", "rtsps://", "rtmp://", "http://", "https://", "udp://", "tcp://", "srt://")
SOURCE_HELP = ("a video file, a camera index (0), an rtsp:// or http:// URL, a GStreamer pipeline "
               "(containing '!') or csi:N (Jetson CSI camera)")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed --input: ``kind`` is file | camera | url | gstreamer | csi."""
    kind: str
    target: Any       # path (str), camera index (int) or device path, URL, or pipeline string
    label: str        # how messages name the source

    @property
    def live(self) -> bool:
        """Live sources drop stale frames to stay real-time; files are processed losslessly."""
        return self.kind != "file"


def parse_source(text: str, csi_size: Tuple[int, int] = (1080, 1920), csi_fps: float = 30.0,
                 output_size: Optional[Tuple[int, int]] = None, flip_method: int = 0) -> SourceSpec:
    """Tell what kind of source ``text`` names; ``csi:N`` becomes an nvarguscamerasrc pipeline.

    ``csi_size`` (H, W) and ``csi_fps`` pick the sensor mode; ``output_size`` (H, W) makes the
    Jetson's hardware converter (nvvidconv) scale frames before they reach the CPU.
    """
    text = str(text).strip()
    if not text:
        raise SourceError(f"empty --input: give {SOURCE_HELP}")
    if "!" in text:
        if not re.search(r"!\s*appsink\b[^!]*$", text):
            raise SourceError("a GStreamer pipeline for OpenCV must end in appsink, e.g. '... ! videoconvert ! "
                              "video/x-raw, format=BGR ! appsink drop=true max-buffers=1'")
        return SourceSpec("gstreamer", text, "GStreamer pipeline")
    match = re.fullmatch(r"csi:(\d+)", text, flags=re.IGNORECASE)
    if match:
        pipeline = csi_pipeline(int(match.group(1)), height=csi_size[0], width=csi_size[1], fps=csi_fps,
                                flip_method=flip_method, output_size=output_size)
        return SourceSpec("csi", pipeline, f"CSI camera {match.group(1)}")
    if text.lower().startswith("csi:"):
        raise SourceError(f"{text}: a CSI camera is csi:N with N the sensor id, e.g. csi:0")
    if re.fullmatch(r"\d+", text):
        return SourceSpec("camera", int(text), f"camera {int(text)}")
    if re.fullmatch(r"/dev/video\d+", text):
        return SourceSpec("camera", text, f"camera {text}")
    if text.lower().startswith(URL_SCHEMES):
        return SourceSpec("url", text, _redact_url(text))
    path = Path(text).expanduser()
    if "%" not in text and not path.exists():  # '%04d.png' names an image sequence for OpenCV
        raise SourceError(f"{text}: no such file; --input takes {SOURCE_HELP}")
    if path.is_dir():
        raise SourceError(f"{text}: is a folder; --input takes {SOURCE_HELP}")
    return SourceSpec("file", str(path), str(path))


def parse_hw(text: str, option: str = "--size") -> Tuple[int, int]:
    """'360x640' -> (360, 640): height first, as every size option of this project."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise VideoError(f"{option} {text!r}: expected HEIGHTxWIDTH in pixels, e.g. 360x640")
    return int(match.group(1)), int(match.group(2))


def even_size(height: int, width: int) -> Tuple[int, int]:
    """(H, W) rounded down to even numbers (at least 2): the sizes video encoders can store."""
    return max(2, height - height % 2), max(2, width - width % 2)


def _redact_url(url: str) -> str:
    """rtsp://user:password@host/... -> rtsp://user:***@host/... so passwords stay out of logs."""
    return re.sub(r"(://[^/:@]*):[^/@]*@", r"\1:***@", url)


def csi_pipeline(sensor_id: int = 0, width: int = 1920, height: int = 1080, fps: float = 30.0,
                 flip_method: int = 0, output_size: Optional[Tuple[int, int]] = None) -> str:
    """The GStreamer pipeline that brings a Jetson CSI camera into OpenCV as BGR frames.

    nvarguscamerasrc delivers NV12 in NVMM (device) memory; nvvidconv (the VIC hardware unit)
    converts to BGRx and optionally scales and flips; videoconvert drops the x to BGR, which is
    what OpenCV's appsink accepts. ``drop=true max-buffers=1`` keeps only the newest frame, so a
    slow consumer sees fresh frames instead of a growing backlog.
    """
    if not (isinstance(sensor_id, int) and sensor_id >= 0):
        raise SourceError(f"csi: sensor id must be a non-negative integer, got {sensor_id!r}")
    for name, value in (("width", width), ("height", height)):
        if not (isinstance(value, int) and value > 0 and value % 2 == 0):
            raise SourceError(f"csi:{sensor_id}: capture {name} must be a positive even number, got {value!r}")
    if not (fps > 0 and math.isfinite(fps)):
        raise SourceError(f"csi:{sensor_id}: frame rate must be positive, got {fps!r}")
    if flip_method not in range(8):
        raise SourceError(f"csi:{sensor_id}: flip method must be 0..7 (nvvidconv flip-method), got {flip_method!r}")
    rate = frame_rate_fraction(fps)
    out_h, out_w = output_size if output_size else (height, width)
    if out_h <= 0 or out_w <= 0:
        raise SourceError(f"csi:{sensor_id}: output size must be positive, got {out_h}x{out_w}")
    return (f"nvarguscamerasrc sensor-id={sensor_id} ! "
            f"video/x-raw(memory:NVMM), width={width}, height={height}, "
            f"framerate={rate.numerator}/{rate.denominator}, format=NV12 ! "
            f"nvvidconv flip-method={flip_method} ! "
            f"video/x-raw, width={out_w}, height={out_h}, format=BGRx ! "
            f"videoconvert ! video/x-raw, format=BGR ! "
            f"appsink drop=true max-buffers=1")


def frame_rate_fraction(fps: float) -> Fraction:
    """GStreamer's framerate: 30 -> 30/1, 29.97 -> 30000/1001 (the NTSC rates), 12.5 -> 25/2."""
    ntsc = round(fps * 1.001)
    if ntsc and abs(fps - ntsc * 1000 / 1001) < 0.005 and abs(fps - ntsc) > 0.005:
        return Fraction(ntsc * 1000, 1001)
    return Fraction(fps).limit_denominator(1000)


def _build_info_value(name: str) -> str:
    """A value from cv2.getBuildInformation(), e.g. 'GUI' -> 'NONE' or 'GTK3'."""
    match = re.search(rf"^\s*{re.escape(name)}:\s*(.*)$", cv2.getBuildInformation(), flags=re.MULTILINE)
    return match.group(1).strip() if match else ""


def gstreamer_available() -> bool:
    return _build_info_value("GStreamer").upper().startswith("YES")


def gui_available() -> bool:
    value = _build_info_value("GUI")
    return bool(value) and not value.upper().startswith("NONE")


def _list_cameras() -> List[str]:
    return sorted(str(p) for p in Path("/dev").glob("video*")) if sys.platform.startswith("linux") else []


def _timeout_params(seconds: float) -> List[int]:
    """FFmpeg open/read timeouts where this OpenCV has them (4.6+), so a dead stream errors out."""
    params = []
    ms = int(max(seconds, 0.001) * 1000)
    for name in ("CAP_PROP_OPEN_TIMEOUT_MSEC", "CAP_PROP_READ_TIMEOUT_MSEC"):
        if hasattr(cv2, name):
            params += [getattr(cv2, name), ms]
    return params


def _default_opener(target, api: int, params: List[int]):
    if params:
        try:
            return cv2.VideoCapture(target, api, params)
        except (TypeError, cv2.error):  # OpenCV before 4.5.2 has no params overload
            pass
    return cv2.VideoCapture(target, api)


def open_source(spec: SourceSpec, timeout: float = 10.0, capture_size: Optional[Tuple[int, int]] = None,
                capture_fps: Optional[float] = None, opener: Callable = _default_opener):
    """Open ``spec`` with OpenCV and check it delivers; raises SourceError with a clear reason.

    Opening runs in a helper thread bounded by ``timeout``: a camera or stream that never answers
    fails instead of hanging. ``capture_size`` (H, W) and ``capture_fps`` are requested from
    cameras (drivers may pick the nearest mode; what they gave is in the summary).
    """
    api, params = cv2.CAP_ANY, []
    if spec.kind in ("gstreamer", "csi"):
        if not gstreamer_available():
            raise SourceError(f"{spec.label}: this OpenCV has no GStreamer support (pip's opencv-python "
                              "wheels have none; JetPack's OpenCV has it), so pipelines cannot be opened")
        api = cv2.CAP_GSTREAMER
    elif spec.kind == "url":
        api, params = cv2.CAP_FFMPEG, _timeout_params(timeout)
    elif spec.kind == "file":
        api = cv2.CAP_FFMPEG if "%" not in spec.target else cv2.CAP_ANY
    result: Dict[str, Any] = {}

    def attempt():
        try:
            result["capture"] = opener(spec.target, api, params)
        except Exception as error:  # cv2.error and friends: report, do not crash the thread
            result["error"] = error

    worker = threading.Thread(target=attempt, name="open-source", daemon=True)
    worker.start()
    # With FFmpeg's own open timeout set, let it fire first (a little margin): it returns cleanly,
    # whereas a thread still inside OpenCV when the process exits can abort it.
    worker.join(timeout + (2.0 if params else 0.0))
    if worker.is_alive():
        raise SourceError(f"{spec.label}: opening timed out after {timeout:g} s (unreachable stream or busy "
                          "camera; raise --stall-timeout to wait longer)")
    capture = result.get("capture")
    if capture is None or not capture.isOpened():
        raise SourceError(_open_failure(spec, result.get("error"), timeout))
    if spec.kind == "camera":
        _configure_camera(capture, capture_size, capture_fps)
    return capture


def _open_failure(spec: SourceSpec, error, timeout: float) -> str:
    detail = f" ({str(error).strip().splitlines()[-1]})" if error else ""
    if spec.kind == "file":
        return f"{spec.label}: cannot open as a video (unsupported format or damaged file){detail}"
    if spec.kind == "camera":
        found = _list_cameras()
        listed = ", ".join(found) if found else "none"
        return f"{spec.label}: cannot open it (no such camera, or in use by another program; video devices found: {listed}){detail}"
    if spec.kind == "url":
        return (f"{spec.label}: cannot open the stream (wrong URL, unreachable host, unsupported protocol, or no "
                f"answer within {timeout:g} s){detail}")
    if spec.kind == "csi":
        return (f"{spec.label}: the nvarguscamerasrc pipeline did not start (camera connected at this "
                f"sensor id? nvargus-daemon running? mode supported by the sensor?){detail}")
    return f"{spec.label}: the pipeline did not start (check it with gst-launch-1.0){detail}"


def _configure_camera(capture, size: Optional[Tuple[int, int]], fps: Optional[float]) -> None:
    # One buffered frame keeps latency low on V4L2; drivers ignoring it are harmless.
    capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
    if size:
        capture.set(cv2.CAP_PROP_FRAME_WIDTH, size[1])
        capture.set(cv2.CAP_PROP_FRAME_HEIGHT, size[0])
    if fps:
        capture.set(cv2.CAP_PROP_FPS, fps)


def source_fps(capture, default: float = 30.0) -> Tuple[float, bool]:
    """(frame rate, reported): streams often report 0 or 90000 (a clock rate), so clamp to sane."""
    try:
        fps = float(capture.get(cv2.CAP_PROP_FPS))
    except Exception:
        fps = 0.0
    if math.isfinite(fps) and 1.0 <= fps <= 240.0:
        return fps, True
    return default, False


# --------------------------------------------------------------------------------------------
# Queues and frames
# --------------------------------------------------------------------------------------------

@dataclass
class Frame:
    """One frame on its way through the pipeline, with the times each stage saw it."""
    index: int                 # position in the source: counts every frame read, dropped or not
    image: np.ndarray          # BGR uint8 (stylized once inference is done)
    t_read: float              # perf_counter() when read() returned
    read_ms: float
    t_infer_start: float = 0.0
    infer_ms: float = 0.0
    style: str = ""


@dataclass
class EndOfStream:
    """Sent down the queues once; ``reason`` is one of the STOP_* strings."""
    reason: str
    message: str = ""


STOP_END = "end of stream"
STOP_DROPPED = "source dropped"
STOP_ERROR = "source error"
STOP_STALLED = "source stalled"
STOP_INTERRUPTED = "interrupted"
STOP_QUIT = "quit"
STOP_LIMIT = "frame limit"
STOP_OUTPUT_ERROR = "output error"
STOP_STYLIZER_ERROR = "stylizer error"


class FrameQueue:
    """A bounded queue; when full, ``put`` blocks (lossless) or drops the oldest item (real-time).

    ``close`` is the consumer saying it will take nothing more: blocked and later ``put`` calls
    return False, so a producer never waits forever on a consumer that has gone.
    """

    def __init__(self, maxsize: int, drop_oldest: bool):
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self.high_water = 0  # the most items ever held: proves the queue stayed bounded
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item) -> bool:
        with self._cond:
            if self.drop_oldest:
                while len(self._items) >= self.maxsize and not self._closed:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self.maxsize and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()
            return True

    def finish(self, end: EndOfStream) -> None:
        """Append the end marker even past capacity: the consumer must always see it."""
        with self._cond:
            self._items.append(end)
            self._cond.notify_all()

    def get(self, timeout: Optional[float] = None):
        """The oldest item; raises queue.Empty after ``timeout`` seconds without one."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> int:
        """Refuse further items; returns how many frames were still queued (left unprocessed)."""
        with self._cond:
            self._closed = True
            left = sum(1 for item in self._items if isinstance(item, Frame))
            self._items.clear()
            self._cond.notify_all()
            return left

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


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
                                          f"{_one_line(error)}")
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


def _one_line(error: BaseException) -> str:
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__


# --------------------------------------------------------------------------------------------
# Styles and run-time control
# --------------------------------------------------------------------------------------------

@dataclass
class Style:
    """A style the pipeline can switch to: a name for the overlay and a loader giving RGB uint8."""
    name: str
    load: Callable[[], np.ndarray]


class Controls:
    """Requests from the display (keys) or another thread to the inference loop."""

    def __init__(self):
        self.quit = threading.Event()
        self._steps: deque = deque()

    def next_style(self) -> None:
        self._steps.append(1)

    def previous_style(self) -> None:
        self._steps.append(-1)

    def take_style_step(self) -> int:
        step = 0
        while self._steps:
            step += self._steps.popleft()
        return step


class StyleCycler:
    """Sets one of several styles on the stylizer; each switch encodes that style once."""

    def __init__(self, styles: Sequence[Style], stylizer):
        if not styles:
            raise VideoError("no style given")
        self.styles = list(styles)
        self.stylizer = stylizer
        self.index = -1
        self._images: Dict[int, np.ndarray] = {}
        self.switch_ms: List[float] = []

    @property
    def name(self) -> str:
        return self.styles[self.index].name if self.index >= 0 else ""

    def select(self, index: int) -> None:
        index %= len(self.styles)
        if index == self.index:
            return
        if index not in self._images:
            self._images[index] = self.styles[index].load()
        start = time.perf_counter()
        self.stylizer.set_style(self._images[index])
        self.switch_ms.append((time.perf_counter() - start) * 1000.0)
        self.index = index

    def step(self, delta: int) -> None:
        if delta:
            self.select(self.index + delta)


def bgr_stylizer(stylizer):
    """Adapt a Stylizer whose ``stylize`` speaks RGB (optionally with a ``bgr=`` flag) to BGR frames."""
    import inspect
    try:
        takes_bgr = "bgr" in inspect.signature(stylizer.stylize).parameters
    except (TypeError, ValueError):
        takes_bgr = False
    return _BGRAdapter(stylizer, takes_bgr)


class _BGRAdapter:
    def __init__(self, stylizer, takes_bgr: bool):
        self.inner, self.takes_bgr = stylizer, takes_bgr

    def set_style(self, rgb: np.ndarray) -> None:
        self.inner.set_style(rgb)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close:
            close()

    def stylize(self, frame: np.ndarray) -> np.ndarray:
        if self.takes_bgr:
            return self.inner.stylize(frame, bgr=True)
        rgb = self.inner.stylize(np.ascontiguousarray(frame[:, :, ::-1]))
        return np.ascontiguousarray(rgb[:, :, ::-1])


# --------------------------------------------------------------------------------------------
# Output sinks (run on the output thread)
# --------------------------------------------------------------------------------------------

FOURCC_BY_SUFFIX = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".mkv": "mp4v", ".avi": "MJPG"}


def fourcc_for(path: Path, fourcc: Optional[str] = None) -> str:
    if fourcc:
        if len(fourcc) != 4:
            raise VideoError(f"--fourcc must be 4 characters (e.g. mp4v, MJPG, FFV1), got {fourcc!r}")
        return fourcc
    suffix = Path(path).suffix.lower()
    if suffix not in FOURCC_BY_SUFFIX:
        raise VideoError(f"{path}: unknown video container {suffix or '(none)'}; use one of "
                         f"{', '.join(sorted(FOURCC_BY_SUFFIX))} or pass --fourcc")
    return FOURCC_BY_SUFFIX[suffix]


class VideoFileSink:
    """Writes frames to a temporary file beside ``path`` and renames it into place at the end.

    The writer opens at the first frame (its size is the output size). For live sources
    ``real_time`` repeats frames to fill the gaps left by dropped ones, so the file plays at the
    speed the scene happened, at the source's frame rate.
    """

    def __init__(self, path, fps: float, fourcc: Optional[str] = None, real_time: bool = False,
                 audio_from: Optional[str] = None):
        self.path = Path(path)
        self.fps = float(fps)
        self.fourcc = fourcc_for(self.path, fourcc)
        self.real_time = real_time
        self.audio_from = audio_from
        self.frames_written = 0   # file frames, repeats included
        self.frames_unique = 0
        self.size: Optional[Tuple[int, int]] = None
        self.audio_note = ""
        self._writer = None
        self._tmp: Optional[Path] = None
        self._t0: Optional[float] = None

    def write(self, frame: Frame) -> None:
        image = frame.image
        if self._writer is None:
            self._open(image.shape[0], image.shape[1])
        elif image.shape[:2] != self.size:
            image = cv2.resize(image, (self.size[1], self.size[0]), interpolation=cv2.INTER_AREA)
        repeats = 1
        if self.real_time:
            if self._t0 is None:
                self._t0 = frame.t_read
            due = int(round((frame.t_read - self._t0) * self.fps)) + 1  # frames the file should hold
            repeats = min(max(1, due - self.frames_written), int(self.fps * 60))
        for _ in range(repeats):
            self._writer.write(image)
        self.frames_written += repeats
        self.frames_unique += 1

    def _open(self, height: int, width: int) -> None:
        # The encoders behind OpenCV (mp4v, H.264) store even sizes only and silently drop an odd
        # row or column; write the even size on purpose (frames are scaled to it) and report it.
        height, width = even_size(height, width)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".tmp{self.path.suffix}",
                                    dir=str(self.path.parent))
        os.close(fd)
        self._tmp = Path(name)
        self.size = (height, width)
        writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, (width, height))
        if not writer.isOpened():
            self._tmp.unlink()
            raise VideoError(f"{self.path}: OpenCV cannot write {self.fourcc!r} video into a "
                             f"{self.path.suffix} file here (try .mp4 with mp4v or .avi with MJPG)")
        self._writer = writer

    def finalize(self) -> Optional[Path]:
        """Release, add audio when possible, rename into place; None when no frame was written."""
        if self._writer is None:
            return None
        self._writer.release()
        self._writer = None
        tmp = self._tmp
        try:
            if self.audio_from:
                tmp = self._add_audio(tmp)
            os.chmod(str(tmp), 0o666 & ~_umask())  # mkstemp made it private; give it normal permissions
            os.replace(str(tmp), str(self.path))
        finally:
            for leftover in {self._tmp, tmp}:
                if leftover is not None and leftover.exists():
                    leftover.unlink()
        return self.path

    def _add_audio(self, video: Path) -> Path:
        ffmpeg = shutil.which("ffmpeg")
        if not ffmpeg:
            self.audio_note = "audio not kept: ffmpeg not found (install ffmpeg to copy the input's audio)"
            return video
        if not has_audio(ffmpeg, self.audio_from):
            self.audio_note = "audio: the input has no audio track"
            return video
        muxed = video.with_name(video.stem + ".mux" + video.suffix)
        for audio_codec in ("copy", "aac"):  # copy keeps quality; aac when the container refuses it
            result = subprocess.run(audio_mux_command(ffmpeg, video, self.audio_from, muxed, audio_codec),
                                    capture_output=True, text=True)
            if result.returncode == 0 and muxed.exists() and muxed.stat().st_size > 0:
                video.unlink()
                self.audio_note = "audio kept (copied from the input)" if audio_codec == "copy" else \
                    "audio kept (re-encoded to AAC for this container)"
                return muxed
        if muxed.exists():
            muxed.unlink()
        self.audio_note = f"audio not kept: ffmpeg could not mux it ({_one_line(Exception(result.stderr))})"
        return video


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def has_audio(ffmpeg: str, source: str) -> bool:
    """Whether ``source`` has an audio stream, read from ffmpeg's stream listing."""
    try:
        result = subprocess.run([ffmpeg, "-hide_banner", "-i", str(source)], capture_output=True, text=True,
                                timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return re.search(r"Stream #\d+:\d+.*: Audio:", result.stderr) is not None


def audio_mux_command(ffmpeg: str, video, source, output, audio_codec: str = "copy") -> List[str]:
    """ffmpeg: the stylized video stream as is, plus the source's audio, cut to the video's length."""
    return [ffmpeg, "-hide_banner", "-loglevel", "error", "-y", "-i", str(video), "-i", str(source),
            "-map", "0:v:0", "-map", "1:a?", "-c:v", "copy", "-c:a", audio_codec, "-shortest", str(output)]


class DisplaySink:
    """Shows frames in a window; n/p switch to the next/previous style, q or Esc quits.

    Every HighGUI call happens on the output thread (GTK and Qt want one GUI thread).
    """
    KEYS_HELP = "keys: n next style, p previous style, q/Esc quit"

    def __init__(self, controls: Controls, title: str = "infusionnet"):
        check_display()
        self.controls, self.title = controls, title
        self._opened = False
        self._seen_visible = False

    def write(self, frame: Frame) -> None:
        if not self._opened:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
            self._opened = True
        cv2.imshow(self.title, frame.image)
        self.poll()

    def poll(self) -> None:
        key = cv2.waitKey(1) & 0xFF
        if key in (ord("q"), ord("Q"), 27):
            self.controls.quit.set()
        elif key in (ord("n"), ord("N"), ord(" ")):
            self.controls.next_style()
        elif key in (ord("p"), ord("P")):
            self.controls.previous_style()
        if self._opened:
            # Closing the window quits. Backends without this property answer -1 all along, so
            # only a window once seen visible counts as closed.
            visible = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) >= 1
            if visible:
                self._seen_visible = True
            elif self._seen_visible:
                self.controls.quit.set()

    def finalize(self):
        if self._opened:
            cv2.destroyWindow(self.title)
            cv2.waitKey(1)
        return None


def check_display() -> None:
    """Raise a clear error when frames cannot be shown (headless OpenCV, no display server)."""
    if not gui_available():
        raise VideoError("--display needs OpenCV with GUI support, but this OpenCV was built without it "
                         "(opencv-python-headless): pip uninstall opencv-python-headless && pip install "
                         "opencv-python (on Jetson, JetPack's OpenCV has GUI support)")
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise VideoError("--display: no display server (DISPLAY is not set); run it in a desktop session, "
                         "over ssh -X, or write a file with --output instead")


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


# --------------------------------------------------------------------------------------------
# Overlay and summary
# --------------------------------------------------------------------------------------------

class Overlay:
    """Draws throughput, capture-to-stylized latency and the style name on a frame."""

    def __init__(self):
        self._last: Optional[float] = None
        self._fps: Optional[float] = None

    def draw(self, image: np.ndarray, now: float, latency_ms: float, style: str) -> np.ndarray:
        if self._last is not None and now > self._last:
            instant = 1.0 / (now - self._last)
            # An exponential average keeps the number readable instead of flickering.
            self._fps = instant if self._fps is None else 0.9 * self._fps + 0.1 * instant
        self._last = now
        fps = f"{self._fps:.1f}" if self._fps is not None else "--"
        text = f"{fps} FPS  {latency_ms:.0f} ms" + (f"  {style}" if style else "")
        scale = max(0.4, min(image.shape[0], image.shape[1]) / 720.0)
        thickness = max(1, int(round(scale * 2)))
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        pad = int(6 * scale) + 2
        cv2.rectangle(image, (0, 0), (w + 2 * pad, h + base + 2 * pad), (0, 0, 0), thickness=-1)
        cv2.putText(image, text, (pad, pad + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)
        return image


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


# --------------------------------------------------------------------------------------------
# The pipeline
# --------------------------------------------------------------------------------------------

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
    summary = VideoSummary(source=label, live=live, fps_in=fps_in)
    live_queue = 1 if live else queue_size  # live: a one-frame mailbox holding the newest frame
    frames_in = FrameQueue(live_queue, drop_oldest=live)
    frames_out = FrameQueue(queue_size, drop_oldest=live)
    capture_thread = CaptureThread(capture, frames_in, live, label, resize_transform(size), max_frames,
                                   expected_frames)
    output_thread = OutputThread(frames_out, sinks, controls)
    draw = Overlay() if overlay else None
    infer_ms: List[float] = []
    queue_ms: List[float] = []
    pending: Optional[BaseException] = None
    start = time.perf_counter()
    if styles is not None and styles.index < 0:
        styles.select(0)
    capture_thread.start()
    output_thread.start()
    try:
        summary.stop_reason, summary.message = _inference_loop(
            frames_in, frames_out, stylizer, controls, styles, draw, summary, label, stall_timeout, max_fps,
            infer_ms, queue_ms)
    except KeyboardInterrupt:
        summary.stop_reason = STOP_INTERRUPTED
    except BaseException as error:  # the stylizer failed: finish the file, then report the error
        summary.stop_reason, pending = STOP_STYLIZER_ERROR, error
    finally:
        capture_thread.stop_event.set()
        frames_in.close()
        frames_out.finish(EndOfStream(summary.stop_reason))
        try:
            output_thread.join()
        except KeyboardInterrupt:  # a second Ctrl-C: stop writing queued frames, still finalize
            frames_out.close()
            output_thread.join(5.0)
        capture_thread.join(1.0)  # a read() stuck in a stalled source is left to its daemon thread
        summary.capture_alive = capture_thread.is_alive()
        summary.seconds = time.perf_counter() - start
        summary.frames_in = capture_thread.frames_read
        summary.input_size = capture_thread.source_size
        summary.frames_out = output_thread.frames_out
        summary.dropped = frames_in.dropped + frames_out.dropped
        summary.unprocessed = max(0, summary.frames_in - summary.frames_out - summary.dropped)
        summary.max_queue = {"capture": frames_in.high_water, "output": frames_out.high_water}
        summary.stages = {"capture": stage_stats(capture_thread.read_ms), "queue": stage_stats(queue_ms),
                          "stylize": stage_stats(infer_ms), "output": stage_stats(output_thread.output_ms),
                          "end-to-end": stage_stats(output_thread.total_ms)}
        if styles is not None and styles.switch_ms:
            summary.stages["style"] = stage_stats(styles.switch_ms)
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


def _inference_loop(frames_in: FrameQueue, frames_out: FrameQueue, stylizer, controls: Controls,
                    styles: Optional[StyleCycler], draw: Optional[Overlay], summary: VideoSummary, label: str,
                    stall_timeout: float, max_fps: Optional[float], infer_ms: List[float],
                    queue_ms: List[float]) -> Tuple[str, str]:
    interval = 1.0 / max_fps if max_fps else 0.0
    next_start = 0.0
    recent_buffers: deque = deque(maxlen=frames_out.maxsize + 2)
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
        item = _next_item(frames_in, controls, stall_timeout)
        if item is None:
            if controls.quit.is_set():
                return STOP_QUIT, ""
            return STOP_STALLED, (f"{label}: no frame for {stall_timeout:g} s, the source stalled "
                                  "(raise --stall-timeout to wait longer)")
        if isinstance(item, EndOfStream):
            return item.reason, item.message
        begin = time.perf_counter()
        next_start = begin + interval
        queue_ms.append((begin - item.t_read) * 1000.0)
        result = stylizer.stylize(item.image)
        done = time.perf_counter()
        infer_ms.append((done - begin) * 1000.0)
        result = _check_output(result, item.image)
        # A stylizer may hand back the same output buffer every time (preallocated host memory):
        # the queued frame would be overwritten by the next call. The first frame is always
        # copied, later ones when their buffer was seen recently (rarely true for fresh arrays).
        buffer = result.__array_interface__["data"][0]
        if not recent_buffers or buffer in recent_buffers:
            result = result.copy()
        recent_buffers.append(buffer)
        if summary.output_size is None:
            summary.output_size = tuple(result.shape[:2])
        name = styles.name if styles is not None else ""
        if name and (not summary.styles_used or summary.styles_used[-1] != name):
            summary.styles_used.append(name)
        if draw is not None:
            result = draw.draw(result, done, (done - item.t_read) * 1000.0, name)
        item.image, item.t_infer_start, item.infer_ms, item.style = result, begin, infer_ms[-1], name
        if not frames_out.put(item):
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


def _finalize_sinks(sinks: Sequence, summary: VideoSummary) -> Optional[BaseException]:
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


# --------------------------------------------------------------------------------------------
# The whole job: parse, open, run, finalize
# --------------------------------------------------------------------------------------------

def stylize_video(source: str, stylizer, styles: Sequence[Style], output: Optional[str] = None,
                  display: bool = False, size: Optional[Tuple[int, int]] = None,
                  capture_size: Optional[Tuple[int, int]] = None, capture_fps: Optional[float] = None,
                  max_fps: Optional[float] = None, overlay: bool = False, stall_timeout: float = 10.0,
                  fourcc: Optional[str] = None, max_frames: Optional[int] = None, keep_audio: bool = True,
                  controls: Optional[Controls] = None, extra_sinks: Sequence = (),
                  opener: Callable = _default_opener) -> VideoSummary:
    """Stylize ``source`` (see parse_source) into ``output`` and/or a window.

    ``stylizer`` follows FrameStylizer (BGR frames). Output keeps the source's frame rate and
    frame size, or ``size`` (H, W). Raises SourceError when the source cannot be opened; later
    problems end the run and are reported in the summary.
    """
    if not output and not display and not extra_sinks:
        raise VideoError("nothing to do: give --output FILE and/or --display")
    if display:
        check_display()
    if output:
        fourcc_for(Path(output), fourcc)  # an unknown container fails before the camera opens
    controls = controls or Controls()
    spec = parse_source(source, csi_size=capture_size or (1080, 1920), csi_fps=capture_fps or 30.0,
                        output_size=size)
    capture = open_source(spec, timeout=stall_timeout, capture_size=capture_size, capture_fps=capture_fps,
                          opener=opener)
    summary = None
    try:
        fps, reported = source_fps(capture)
        expected = 0
        if not spec.live:
            try:
                expected = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
            except Exception:
                expected = 0
        sinks: List = []
        if output:
            audio_source = spec.target if (keep_audio and spec.kind == "file") else None
            sinks.append(VideoFileSink(output, fps, fourcc=fourcc, real_time=spec.live, audio_from=audio_source))
        if display:
            sinks.append(DisplaySink(controls))
        sinks.extend(extra_sinks)
        summary = run_pipeline(capture, stylizer, live=spec.live, sinks=sinks, styles=StyleCycler(styles, stylizer),
                               controls=controls, label=spec.label, size=size, stall_timeout=stall_timeout,
                               max_fps=max_fps, overlay=overlay, max_frames=max_frames,
                               fps_in=fps if reported else None, expected_frames=expected)
    except BaseException as error:
        summary = getattr(error, "summary", None)
        raise
    finally:
        if summary is None or not summary.capture_alive:
            # release() while another thread is inside read() can crash some backends; a stalled
            # source's reader is left to its daemon thread and process exit instead.
            capture.release()
    if output and not reported and summary.output:
        summary.audio = (summary.audio + "; " if summary.audio else "") + \
            f"the source reports no frame rate: the file is written at {fps:g} fps"
    return summary

