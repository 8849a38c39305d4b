"""Video sources: what --input names (file, camera, URL, GStreamer, CSI) and opening it with OpenCV."""
import math
import re
import sys
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

import cv2

from .errors import SourceError
from .opencv_build import gstreamer_available

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


def default_opener(target, api: int, params: List[int]):
    if params:
        try:
            return cv2.VideoCapture(target, api, params)
        except (TypeError, cv2.error):  # OpenCV before 4.5.2 has no params overload
            pass
    return cv2.VideoCapture(target, api)


def open_source(spec: SourceSpec, timeout: float = 10.0, capture_size: Optional[Tuple[int, int]] = None,
                capture_fps: Optional[float] = None, opener: Callable = default_opener):
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
