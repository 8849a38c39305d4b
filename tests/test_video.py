"""The video pipeline: real OpenCV files for ordering and playability, fake captures for live
behaviour (drops, stalls, sources that die), and the pure helpers (sources, CSI pipeline)."""
import importlib.util
import os
import stat
import sys
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from infusionnet.runtime.video import display
from infusionnet.runtime.video.display import DisplaySink
from infusionnet.runtime.video.errors import SourceError, VideoError
from infusionnet.runtime.video.file_sink import audio_mux_command, fourcc_for
from infusionnet.runtime.video.frames import (STOP_DROPPED, STOP_END, STOP_ERROR, STOP_INTERRUPTED, STOP_QUIT,
                                              STOP_STALLED, EndOfStream, Frame, FrameQueue)
from infusionnet.runtime.video.opencv_build import gstreamer_available, gui_available
from infusionnet.runtime.sizes import parse_frame_size
from infusionnet.runtime.video.sources import SourceSpec, csi_pipeline, open_source, parse_source
from infusionnet.runtime.video.styles import Controls, Style, bgr_stylizer
from infusionnet.runtime.video.stylize import stylize_video
from infusionnet.runtime.video.threads import CallbackSink
from infusionnet.runtime.errors import InfusionNetError

HEIGHT, WIDTH = 48, 64
# The video command's default stylizer is the PyTorch model; without torch (Jetson) these CLI
# tests skip (the torch-free path is covered by --model DIR --backend onnxruntime below).
needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                                 reason="needs torch for the default PyTorch stylizer (pip install torch==2.13.0)")
BITS = 8  # frame index encoded in 8 flat blocks (2 rows x 4), robust to MJPG compression


def make_frame(index: int, seed: int = 0) -> np.ndarray:
    """A BGR frame whose top 32 rows encode ``index`` in big black/white blocks; the bottom 16 rows
    are a colour texture (catches channel swaps and inexact pipelines)."""
    frame = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    for bit in range(BITS):
        if index >> bit & 1:
            row, col = divmod(bit, 4)
            frame[row * 16:(row + 1) * 16, col * 16:(col + 1) * 16] = 255
    rng = np.random.default_rng(seed * 1000 + index)
    frame[32:] = rng.integers(0, 256, (HEIGHT - 32, WIDTH, 3), dtype=np.uint8)
    return frame


def read_index(frame: np.ndarray, inverted: bool = False) -> int:
    index = 0
    for bit in range(BITS):
        row, col = divmod(bit, 4)
        block = frame[row * 16 + 4:(row + 1) * 16 - 4, col * 16 + 4:(col + 1) * 16 - 4]
        on = block.mean() > 127
        index |= int(on != inverted) << bit
    return index


def write_video(path: Path, count: int, fps: float = 12.0, fourcc: str = "MJPG") -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    assert writer.isOpened()
    for i in range(count):
        writer.write(make_frame(i))
    writer.release()
    return path


def read_video(path: Path):
    capture = cv2.VideoCapture(str(path))
    assert capture.isOpened(), f"{path} does not reopen"
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    info = (capture.get(cv2.CAP_PROP_FPS), int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
            int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    capture.release()
    return frames, info


class Invert:
    """A deterministic stand-in for a model: inverts the frame and stamps the style's colour on a
    corner, so style switches are visible in the output."""

    def __init__(self, delay: float = 0.0, fail_at=None, interrupt_at=None, on_call=None):
        self.delay, self.fail_at, self.interrupt_at, self.on_call = delay, fail_at, interrupt_at, on_call
        self.calls = 0
        self.style_value = 0
        self.styles_set = []

    def set_style(self, rgb):
        self.style_value = int(rgb[0, 0, 0])
        self.styles_set.append(self.style_value)

    def stylize(self, frame):
        if self.on_call:
            self.on_call(self, frame)
        if self.interrupt_at is not None and self.calls == self.interrupt_at:
            raise KeyboardInterrupt
        if self.fail_at is not None and self.calls == self.fail_at:
            raise RuntimeError("backend exploded")
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        out = 255 - frame
        out[40:, :4] = self.style_value
        return out


def solid_style(value: int, name: str = None) -> Style:
    return Style(name or f"style{value}", lambda: np.full((96, 96, 3), value, np.uint8))


class FakeLive:
    """An OpenCV-like live capture: frames every ``interval`` s, optionally dying, failing or
    blocking forever after some frames. ``produced`` is how many frames it has handed out."""

    def __init__(self, count=10_000, interval=0.002, fps=30.0, die_at=None, raise_at=None, block_at=None):
        self.count, self.interval, self.fps = count, interval, fps
        self.die_at, self.raise_at, self.block_at = die_at, raise_at, block_at
        self.produced = 0
        self.released = False
        self.unblock = threading.Event()

    def isOpened(self):
        return True

    def read(self):
        if self.block_at is not None and self.produced >= self.block_at:
            self.unblock.wait(20)  # a stream that never answers (tests release it at the end)
            return False, None
        if self.raise_at is not None and self.produced >= self.raise_at:
            raise cv2.error("connection reset by peer")
        if self.produced >= self.count or (self.die_at is not None and self.produced >= self.die_at):
            return False, None
        time.sleep(self.interval)
        frame = make_frame(self.produced)
        self.produced += 1
        return True, frame

    def get(self, prop):
        return self.fps if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop, value):
        return True

    def release(self):
        self.released = True


def fake_opener(capture):
    return lambda target, api, params: capture


def no_temp_files(folder: Path):
    return [p.name for p in folder.iterdir() if p.name.startswith(".")] == []


# ---------------------------------------------------------------------------------------------
# Sources and the CSI pipeline builder


def test_parse_source_kinds(tmp_path):
    clip = write_video(tmp_path / "clip.avi", 2)
    assert parse_source("0") == SourceSpec("camera", 0, "camera 0")
    assert parse_source(" 2 ").target == 2
    assert parse_source("/dev/video1").kind == "camera"
    url = parse_source("rtsp://admin:secret@10.0.0.5:554/stream1")
    assert (url.kind, url.live, url.target) == ("url", True, "rtsp://admin:secret@10.0.0.5:554/stream1")
    assert "secret" not in url.label and "admin:***@10.0.0.5" in url.label
    assert parse_source("http://host/video.mjpg").kind == "url"
    gst = parse_source("videotestsrc ! videoconvert ! appsink sync=false")
    assert (gst.kind, gst.live) == ("gstreamer", True)
    csi = parse_source("csi:1")
    assert csi.kind == "csi" and csi.live and "sensor-id=1 " in csi.target
    file = parse_source(str(clip))
    assert (file.kind, file.live, file.target) == ("file", False, str(clip))
    assert parse_source(str(tmp_path / "frames_%04d.png")).kind == "file"  # an image sequence pattern


@pytest.mark.parametrize("text, words", [
    ("missing.mp4", ["missing.mp4", "no such file", "camera index"]),
    ("csi:left", ["csi:left", "csi:N"]),
    ("v4l2src ! videoconvert ! autovideosink", ["must end in appsink", "drop=true max-buffers=1"]),
    ("", ["empty --input"]),
])
def test_parse_source_errors(text, words):
    with pytest.raises(SourceError) as info:
        parse_source(text)
    assert all(word in str(info.value) for word in words)
    assert isinstance(info.value, InfusionNetError)


def test_parse_source_refuses_a_folder(tmp_path):
    with pytest.raises(SourceError, match="is a folder"):
        parse_source(str(tmp_path))


def test_csi_pipeline_default_is_the_documented_chain():
    assert csi_pipeline(0) == (
        "nvarguscamerasrc sensor-id=0 ! "
        "video/x-raw(memory:NVMM), width=1920, height=1080, framerate=30/1, format=NV12 ! "
        "nvvidconv flip-method=0 ! video/x-raw, width=1920, height=1080, format=BGRx ! "
        "videoconvert ! video/x-raw, format=BGR ! appsink drop=true max-buffers=1")


def test_csi_pipeline_options():
    pipe = csi_pipeline(1, width=1280, height=720, fps=29.97, flip_method=2, output_size=(360, 640))
    elements = [e.strip() for e in pipe.split("!")]
    assert elements[0] == "nvarguscamerasrc sensor-id=1"
    assert "width=1280, height=720" in elements[1] and "framerate=30000/1001" in elements[1]
    assert elements[2] == "nvvidconv flip-method=2"
    assert elements[3] == "video/x-raw, width=640, height=360, format=BGRx"  # scaled by the VIC, not the CPU
    assert elements[-1] == "appsink drop=true max-buffers=1"
    assert "framerate=60/1" in csi_pipeline(0, fps=60)
    # parse_source forwards capture size, rate and the processing size
    spec = parse_source("csi:0", csi_size=(720, 1280), csi_fps=60, output_size=(256, 448))
    assert spec.target == csi_pipeline(0, width=1280, height=720, fps=60, output_size=(256, 448))


@pytest.mark.parametrize("kwargs, words", [
    (dict(sensor_id=-1), "sensor id"),
    (dict(width=1279), "even"),
    (dict(height=0), "height"),
    (dict(fps=0), "frame rate"),
    (dict(flip_method=9), "flip"),
])
def test_csi_pipeline_rejects_bad_values(kwargs, words):
    args = dict(sensor_id=0)
    args.update(kwargs)
    with pytest.raises(SourceError, match=words):
        csi_pipeline(**args)


def test_unopenable_file_camera_and_pipeline_give_clear_errors(tmp_path):
    fake = tmp_path / "notes.mp4"
    fake.write_text("this is not a video")
    with pytest.raises(SourceError, match="notes.mp4: cannot open as a video"):
        open_source(parse_source(str(fake)))
    with pytest.raises(SourceError, match=r"camera 57: cannot open it .*video devices found"):
        open_source(parse_source("57"), timeout=5)
    if not gstreamer_available():
        with pytest.raises(SourceError, match="no GStreamer support"):
            open_source(parse_source("csi:0"))


def test_opening_that_hangs_times_out():
    release = threading.Event()

    def hanging(target, api, params):
        release.wait(10)

    start = time.perf_counter()
    with pytest.raises(SourceError, match="camera 5: opening timed out after 0.2 s"):
        open_source(parse_source("5"), timeout=0.2, opener=hanging)
    assert time.perf_counter() - start < 1.5
    # streams get FFmpeg's own open timeout plus a margin, so FFmpeg gives up first and cleanly
    start = time.perf_counter()
    with pytest.raises(SourceError, match="opening timed out"):
        open_source(parse_source("rtsp://camera.invalid/stream"), timeout=0.2, opener=hanging)
    assert 2.0 <= time.perf_counter() - start < 3.5
    release.set()


def test_stream_urls_get_ffmpeg_timeouts():
    seen = {}

    def opener(target, api, params):
        seen.update(target=target, api=api, params=params)
        return FakeLive()

    open_source(parse_source("rtsp://cam/1"), timeout=3, opener=opener)
    assert seen["api"] == cv2.CAP_FFMPEG
    if hasattr(cv2, "CAP_PROP_OPEN_TIMEOUT_MSEC"):
        assert seen["params"] == [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, 3000, cv2.CAP_PROP_READ_TIMEOUT_MSEC, 3000]


# ---------------------------------------------------------------------------------------------
# Queues


def test_lossless_queue_blocks_until_the_consumer_takes():
    q = FrameQueue(2, drop_oldest=False)
    assert q.put(1) and q.put(2)
    result = []
    producer = threading.Thread(target=lambda: result.append(q.put(3)))
    producer.start()
    time.sleep(0.1)
    assert producer.is_alive() and len(q) == 2  # full: the producer waits, nothing is lost
    assert q.get(1) == 1
    producer.join(1)
    assert result == [True] and [q.get(1), q.get(1)] == [2, 3] and q.dropped == 0


def test_dropping_queue_keeps_the_newest_and_close_releases_producers():
    q = FrameQueue(1, drop_oldest=True)
    for i in range(5):
        assert q.put(i)
    assert q.get(0.1) == 4 and q.dropped == 4 and q.high_water == 1
    blocking = FrameQueue(1, drop_oldest=False)
    blocking.put("a")
    result = []
    producer = threading.Thread(target=lambda: result.append(blocking.put("b")))
    producer.start()
    time.sleep(0.05)
    blocking.close()
    producer.join(1)
    assert result == [False] and not producer.is_alive()
    blocking.finish(EndOfStream(STOP_END))  # the end marker always gets through
    assert isinstance(blocking.get(0.1), EndOfStream)
    with pytest.raises(Exception):
        q.get(0.01)


# ---------------------------------------------------------------------------------------------
# Files: lossless, in order, playable


def test_file_keeps_every_frame_in_order_and_is_playable(tmp_path):
    clip = write_video(tmp_path / "clip.avi", 30, fps=12.0)
    seen = []
    out = tmp_path / "out" / "styled.avi"
    summary = stylize_video(str(clip), Invert(), [solid_style(7)], output=str(out),
                              extra_sinks=[CallbackSink(lambda f: seen.append(f.index))])
    assert summary.stop_reason == STOP_END and summary.message == ""
    assert (summary.frames_in, summary.frames_out, summary.dropped) == (30, 30, 0)
    assert seen == list(range(30))
    frames, (fps, width, height) = read_video(out)
    assert len(frames) == 30 and (fps, width, height) == (12.0, WIDTH, HEIGHT)
    assert [read_index(f, inverted=True) for f in frames] == list(range(30))
    assert no_temp_files(out.parent)
    mode = stat.S_IMODE(os.stat(out).st_mode)
    assert mode & stat.S_IRGRP, "output should not stay private like a temporary file"
    text = "\n".join(summary.lines())
    assert "30 in, 30 out, 0 dropped" in text and "stylize" in text and "p99" in text


def test_frames_equal_single_image_stylization(tmp_path):
    """Lossless FFV1 output: every written frame is exactly stylize(decoded input frame)."""
    clip = write_video(tmp_path / "clip.avi", 12)
    out = tmp_path / "styled.mkv"
    before_encoding = []
    stylize_video(str(clip), Invert(), [solid_style(200)], output=str(out), fourcc="FFV1",
                    extra_sinks=[CallbackSink(lambda f: before_encoding.append(f.image.copy()))])
    reference = Invert()
    reference.set_style(np.full((96, 96, 3), 200, np.uint8))
    expected = [reference.stylize(frame) for frame in read_video(clip)[0]]
    written, _ = read_video(out)
    assert len(expected) == len(written) == len(before_encoding) == 12
    for want, got, hooked in zip(expected, written, before_encoding):
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(hooked, want)


def test_size_option_resizes_frames_and_output(tmp_path):
    clip = write_video(tmp_path / "clip.avi", 5)
    out = tmp_path / "small.mp4"
    summary = stylize_video(str(clip), Invert(), [solid_style(1)], output=str(out), size=(32, 40))
    frames, (fps, width, height) = read_video(out)
    assert (len(frames), width, height, fps) == (5, 40, 32, 12.0)
    assert summary.input_size == (HEIGHT, WIDTH) and summary.output_size == (32, 40)
    assert "source: " + str(clip) + " (file, 64x48 @ 12 fps)" in summary.lines()[0]
    assert "(40x32, 5 frames)" in summary.lines()[3]


def test_ctrl_c_mid_run_leaves_a_valid_finalized_file(tmp_path):
    clip = write_video(tmp_path / "clip.avi", 40)
    out = tmp_path / "out.mp4"
    summary = stylize_video(str(clip), Invert(interrupt_at=10), [solid_style(1)], output=str(out))
    assert summary.stop_reason == STOP_INTERRUPTED and summary.produced
    frames, (fps, width, height) = read_video(out)
    assert len(frames) == summary.frames_out == 10 and (width, height) == (WIDTH, HEIGHT)
    assert [read_index(f, inverted=True) for f in frames] == list(range(10))
    assert no_temp_files(tmp_path)


def test_interrupt_before_any_frame_writes_nothing(tmp_path):
    clip = write_video(tmp_path / "clip.avi", 5)
    out = tmp_path / "out.mp4"
    summary = stylize_video(str(clip), Invert(interrupt_at=0), [solid_style(1)], output=str(out))
    assert summary.stop_reason == STOP_INTERRUPTED and not summary.produced
    assert not out.exists() and no_temp_files(tmp_path) and summary.output is None


def test_stylizer_error_still_finalizes_the_file_then_raises(tmp_path):
    clip = write_video(tmp_path / "clip.avi", 20)
    out = tmp_path / "out.avi"
    with pytest.raises(RuntimeError, match="backend exploded") as info:
        stylize_video(str(clip), Invert(fail_at=6), [solid_style(1)], output=str(out))
    assert info.value.summary.frames_out == 6
    assert len(read_video(out)[0]) == 6 and no_temp_files(tmp_path)


def test_max_fps_throttles(tmp_path):
    clip = write_video(tmp_path / "clip.avi", 6)
    start = time.perf_counter()
    summary = stylize_video(str(clip), Invert(), [solid_style(1)], output=str(tmp_path / "o.avi"), max_fps=20)
    assert time.perf_counter() - start >= 5 / 20 and summary.frames_out == 6


def test_overlay_draws_fps_and_latency(tmp_path):
    clip = write_video(tmp_path / "clip.avi", 3)
    plain, marked = [], []
    stylize_video(str(clip), Invert(), [solid_style(1)], extra_sinks=[CallbackSink(lambda f: plain.append(f.image))])
    stylize_video(str(clip), Invert(), [solid_style(1)], overlay=True,
                    extra_sinks=[CallbackSink(lambda f: marked.append(f.image))])
    corner = (slice(0, 12), slice(0, 40))
    assert not np.array_equal(plain[2][corner], marked[2][corner])
    np.testing.assert_array_equal(plain[2][30:], marked[2][30:])  # the rest is untouched


def test_reused_output_buffer_is_copied(tmp_path):
    class Reuses(Invert):
        buffer = np.zeros((HEIGHT, WIDTH, 3), np.uint8)

        def stylize(self, frame):
            np.copyto(self.buffer, 255 - frame)
            return self.buffer

    clip = write_video(tmp_path / "clip.avi", 8)
    got = []
    stylize_video(str(clip), Reuses(), [solid_style(1)], extra_sinks=[CallbackSink(lambda f: got.append(f.image))])
    assert [read_index(f, inverted=True) for f in got] == list(range(8))


def test_style_switches_at_run_time_and_each_is_encoded_once(tmp_path):
    clip = write_video(tmp_path / "clip.avi", 12)
    controls = Controls()

    def switch(stylizer, frame):
        if stylizer.calls in (4, 8):
            controls.next_style()

    stylizer = Invert(on_call=switch)
    stamps = []
    summary = stylize_video(str(clip), stylizer, [solid_style(10, "ten"), solid_style(20, "twenty")],
                              controls=controls, extra_sinks=[CallbackSink(lambda f: stamps.append(int(f.image[-1, 0, 0])))])
    assert summary.styles_used == ["ten", "twenty", "ten"]
    assert stylizer.styles_set == [10, 20, 10]
    assert stamps[0] == 10 and stamps[-1] == 10 and 20 in stamps


def test_bgr_adapter_for_rgb_stylizers():
    class RGBOnly:
        def set_style(self, rgb):
            pass

        def stylize(self, rgb):
            out = rgb.copy()
            out[..., 0] = 0  # zero red
            return out

    class Flag(RGBOnly):
        def stylize(self, frame, bgr=False):
            out = frame.copy()
            out[..., 2 if bgr else 0] = 0
            return out

    frame = np.full((4, 4, 3), 100, np.uint8)
    for inner in (RGBOnly(), Flag()):
        out = bgr_stylizer(inner).stylize(frame)
        assert out[..., 2].max() == 0 and out[..., 0].min() == 100  # red is BGR channel 2


# ---------------------------------------------------------------------------------------------
# Live sources: drops, deaths, stalls


def test_drop_policy_under_a_slow_stylizer_keeps_the_newest_frames(tmp_path):
    source = FakeLive(count=150, interval=0.003)  # ~330 fps source
    lag = []

    def check_fresh(stylizer, frame):
        lag.append(source.produced - read_index(frame))  # how far behind the newest frame it is

    stylizer = Invert(delay=0.03, on_call=check_fresh)  # ~30 fps consumer
    seen = []
    summary = stylize_video("0", stylizer, [solid_style(1)], output=str(tmp_path / "live.avi"),
                              extra_sinks=[CallbackSink(lambda f: seen.append(f.index))],
                              opener=fake_opener(source))
    assert summary.live and summary.stop_reason == STOP_DROPPED
    assert summary.dropped > 0 and summary.frames_out < summary.frames_in
    assert summary.frames_in == summary.frames_out + summary.dropped + summary.unprocessed
    assert summary.max_queue["capture"] == 1 and summary.max_queue["output"] <= 4  # never grows
    # the frame stylized is the newest one (a frame or two may arrive between take and call);
    # a FIFO would lag by dozens here
    assert max(lag) <= 3 and np.mean(lag) < 2, f"stale frames were stylized: lag {lag}"
    assert seen == sorted(seen) and len(set(seen)) == len(seen)
    assert any(b - a > 1 for a, b in zip(seen, seen[1:]))  # frames were skipped, not queued
    assert source.released


def test_live_recording_repeats_frames_to_keep_real_time(tmp_path):
    source = FakeLive(count=40, interval=0.01, fps=50.0)  # 0.4 s of a 50 fps camera
    out = tmp_path / "live.avi"
    times = []
    summary = stylize_video("0", Invert(delay=0.04), [solid_style(1)], output=str(out), opener=fake_opener(source),
                              extra_sinks=[CallbackSink(lambda f: times.append(f.t_read))])
    frames, (fps, _, _) = read_video(out)
    assert fps == 50.0 and len(frames) == summary.frames_written
    assert summary.frames_written > summary.frames_out  # gaps filled
    # the file lasts as long as the capture did: (last - first capture time) at 50 fps
    assert abs(summary.frames_written - ((times[-1] - times[0]) * 50 + 1)) <= 1.5
    indices = [read_index(f, inverted=True) for f in frames]
    assert indices == sorted(indices)


def test_source_that_dies_mid_stream_ends_cleanly(tmp_path):
    source = FakeLive(die_at=7, interval=0.0)
    out = tmp_path / "out.avi"
    summary = stylize_video("rtsp://cam/live", Invert(), [solid_style(1)], output=str(out),
                              opener=fake_opener(source))
    assert summary.stop_reason == STOP_DROPPED
    assert "stopped delivering frames after 7" in summary.message
    assert summary.produced and len(read_video(out)[0]) >= 1 and no_temp_files(tmp_path)


def test_source_read_error_is_reported_and_the_file_kept(tmp_path):
    source = FakeLive(raise_at=5, interval=0.0)
    out = tmp_path / "out.avi"
    summary = stylize_video("1", Invert(), [solid_style(1)], output=str(out), opener=fake_opener(source))
    assert summary.stop_reason == STOP_ERROR
    assert "camera 1: reading failed after 5 frames: connection reset by peer" in summary.message
    assert out.exists() and len(read_video(out)[0]) >= 1


def test_stalled_source_times_out_instead_of_hanging(tmp_path):
    source = FakeLive(block_at=3, interval=0.0)
    out = tmp_path / "out.avi"
    start = time.perf_counter()
    try:
        summary = stylize_video("0", Invert(), [solid_style(1)], output=str(out), stall_timeout=0.3,
                                  opener=fake_opener(source))
    finally:
        source.unblock.set()
    assert time.perf_counter() - start < 3
    assert summary.stop_reason == STOP_STALLED and "no frame for 0.3 s" in summary.message
    assert "--stall-timeout" in summary.message
    assert summary.frames_in == 3 and summary.frames_out + summary.dropped == 3
    assert summary.frames_out >= 1 and len(read_video(out)[0]) >= 1
    assert summary.capture_alive and not source.released  # never release() under a blocked read()


def test_source_that_never_gives_a_frame_produces_nothing(tmp_path):
    source = FakeLive(block_at=0)
    out = tmp_path / "out.avi"
    try:
        summary = stylize_video("0", Invert(), [solid_style(1)], output=str(out), stall_timeout=0.2,
                                  opener=fake_opener(source))
    finally:
        source.unblock.set()
    assert summary.stop_reason == STOP_STALLED and not summary.produced
    assert not out.exists() and no_temp_files(tmp_path)


def test_quit_request_stops_a_live_run(tmp_path):
    controls = Controls()
    source = FakeLive(interval=0.005)

    def quit_later(stylizer, frame):
        if stylizer.calls == 5:
            controls.quit.set()

    summary = stylize_video("0", Invert(on_call=quit_later), [solid_style(1)], output=str(tmp_path / "o.avi"),
                              controls=controls, opener=fake_opener(source))
    assert summary.stop_reason == STOP_QUIT and summary.frames_out >= 5


# ---------------------------------------------------------------------------------------------
# Output options, display, audio


def test_output_and_display_options_are_checked_first(tmp_path):
    with pytest.raises(VideoError, match="nothing to do"):
        stylize_video("0", Invert(), [solid_style(1)])
    with pytest.raises(VideoError, match="unknown video container .webm"):
        stylize_video("0", Invert(), [solid_style(1)], output=str(tmp_path / "x.webm"))
    with pytest.raises(VideoError, match="4 characters"):
        fourcc_for(tmp_path / "x.avi", "H264X")
    assert fourcc_for(Path("a.MP4")) == "mp4v" and fourcc_for(Path("a.avi")) == "MJPG"


@pytest.mark.skipif(gui_available(), reason="this OpenCV has GUI support")
def test_display_on_headless_opencv_says_what_to_install():
    with pytest.raises(VideoError, match="pip install opencv-python"):
        stylize_video("0", Invert(), [solid_style(1)], display=True)


def test_display_keys_drive_the_controls(monkeypatch):
    keys = iter([ord("n"), ord("p"), ord("n"), 27])
    monkeypatch.setattr(display, "check_display", lambda: None)
    monkeypatch.setattr(display.cv2, "waitKey", lambda delay: next(keys))
    controls = Controls()
    sink = DisplaySink(controls)
    for _ in range(3):
        sink.poll()
    assert controls.take_style_step() == 1 and not controls.quit.is_set()
    sink.poll()
    assert controls.quit.is_set()


def test_audio_not_kept_says_so_without_ffmpeg(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    clip = write_video(tmp_path / "clip.avi", 3)
    summary = stylize_video(str(clip), Invert(), [solid_style(1)], output=str(tmp_path / "o.mp4"))
    assert summary.audio.startswith("audio not kept: ffmpeg not found")


def test_audio_is_muxed_with_ffmpeg_when_present(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "ffmpeg.log"
    fake = bin_dir / "ffmpeg"
    # A stand-in ffmpeg: reports an audio stream when probed, "muxes" by copying the video input.
    fake.write_text(f"#!{sys.executable}\n"
                    "import shutil, sys\n"
                    f"open({str(log)!r}, 'a').write(' '.join(sys.argv[1:]) + '\\n')\n"
                    "args = sys.argv[1:]\n"
                    "if '-map' not in args:\n"
                    "    sys.stderr.write('  Stream #0:1: Audio: aac, 44100 Hz\\n'); sys.exit(1)\n"
                    "shutil.copy(args[args.index('-i') + 1], args[-1])\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    clip = write_video(tmp_path / "clip.avi", 4)
    out = tmp_path / "o.mp4"
    summary = stylize_video(str(clip), Invert(), [solid_style(1)], output=str(out))
    assert summary.audio == "audio kept (copied from the input)"
    calls = log.read_text().splitlines()
    assert len(calls) == 2 and "-map 1:a? -c:v copy -c:a copy -shortest" in calls[1]
    assert str(clip) in calls[1] and len(read_video(out)[0]) == 4 and no_temp_files(tmp_path)


def test_audio_mux_command():
    cmd = audio_mux_command("ffmpeg", "v.mp4", "in.mov", "out.mp4", "aac")
    assert cmd[cmd.index("-c:a") + 1] == "aac" and cmd[-1] == "out.mp4"
    assert cmd.index("v.mp4") < cmd.index("in.mov") and "-shortest" in cmd


def test_parse_frame_size():
    assert parse_frame_size("360x640") == (360, 640) and parse_frame_size(" 32X48 ") == (32, 48)
    for bad in ("640", "0x10", "axb", "10x10x3"):
        with pytest.raises(VideoError, match="--frame-size .*expected HxW"):
            parse_frame_size(bad, "--frame-size", VideoError)


# ---------------------------------------------------------------------------------------------
# The benchmark and the `infusionnet video` command


def test_video_benchmark_reports_bare_file_and_live_rates(tmp_path):
    from infusionnet.benchmarks.video_bench import format_lines, video_benchmark

    stylizer = Invert(delay=0.01)
    stylizer.set_style(np.zeros((96, 96, 3), np.uint8))
    result = video_benchmark(stylizer, size=(32, 48), frames=6, camera_fps=50, camera_seconds=0.3,
                             warmup=1, workdir=tmp_path)
    assert result["size"] == "32x48" and result["bare"]["iterations"] == 6
    assert result["file"]["frames_out"] == 6 and result["file"]["dropped"] == 0
    assert 0 < result["bare"]["fps_mean"] <= 100 and 0 < result["file"]["fps"] <= 100  # 10 ms per frame
    assert result["live"]["offered"] == 15 and result["live"]["frames_out"] >= 1
    assert "bare model" in "\n".join(format_lines(result)) and list(tmp_path.iterdir()) == []


@pytest.fixture
def tiny_clip(tmp_path):
    return write_video(tmp_path / "clip.avi", 4, fps=8.0)


@needs_torch
def test_cli_stylizes_a_file_like_single_images(tiny_clip, tmp_path, capsys):
    """Through `infusionnet video` with the PyTorch model: lossless output equals the model run
    on each decoded frame alone."""
    pytest.importorskip("torch", reason="the PyTorch path needs torch (the torch-free runs test --model instead)")
    from infusionnet.cli import video as cli_video
    from infusionnet.cli.main import main
    from infusionnet.models.default_model import resolve_network
    from infusionnet.runtime import images, samples

    out = tmp_path / "styled.mkv"
    code = main(["video", "--input", str(tiny_clip), "-o", str(out), "--fourcc", "FFV1", "--style-size", "96"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "4 in, 4 out, 0 dropped" in captured.out and "UNTRAINED" not in captured.err
    written, (fps, width, height) = read_video(out)
    assert (len(written), fps, width, height) == (4, 8.0, WIDTH, HEIGHT)

    # The command runs the runtime Stylizer over the network's TorchBackends (no export needed).
    from infusionnet.models.torch_backend import network_stylizer
    from infusionnet.runtime.video.styles import bgr_stylizer
    model = resolve_network(None)[0]  # the default model
    reference = bgr_stylizer(network_stylizer(model, 96))
    reference.set_style(samples.load_image_arg(cli_video.DEFAULT_STYLE))
    for frame, got in zip(read_video(tiny_clip)[0], written):
        np.testing.assert_array_equal(got, reference.stylize(frame))

    # ... and that is the model's own test path on the padded frame, cropped back
    import torch
    frame = read_video(tiny_clip)[0][1]
    style, _ = images.prepare_image(samples.load_image_arg(cli_video.DEFAULT_STYLE), "square:96")
    rgb, restore = images.prepare_image(frame[:, :, ::-1], "keep")
    with torch.inference_mode():
        direct = model(torch.from_numpy(images.normalize(rgb)), torch.from_numpy(images.normalize(style)))
    direct = images.restore_image(images.denormalize(direct.numpy())[0], restore)[:, :, ::-1]
    assert np.abs(direct.astype(int) - reference.stylize(frame).astype(int)).max() <= 1


@pytest.mark.parametrize("argv, words", [
    (["--input", "nope.mp4", "-o", "x.mp4"], "nope.mp4: no such file"),
    (["--input", "0"], "nothing to do"),
    (["-o", "x.mp4"], "--input is required"),
    (["--input", "0", "-o", "x.mp4", "--frame-size", "big"], "--frame-size 'big': expected HxW"),
    (["--input", "0", "-o", "x.mp4", "--max-fps", "0"], "--max-fps must be positive"),
    (["--input", "0", "-o", "x.flv"], "unknown video container .flv"),
    (["--input", "0", "-o", "x.mp4", "--style", "missing_style.jpg"], "missing_style.jpg: no such style image"),
    (["--input", "0", "-o", "x.mp4", "--model", "exported/", "--max-frames", "0"], "--max-frames must be at least 1"),
])
def test_cli_bad_options_fail_fast_with_one_line(argv, words, tmp_path, monkeypatch, capsys):
    from infusionnet.cli.main import main

    monkeypatch.chdir(tmp_path)
    assert main(["video"] + argv) == 2
    err = capsys.readouterr().err
    assert words in err and err.startswith("error: ") and err.count("\n") == 1


@needs_torch
def test_cli_refuses_to_overwrite_and_headless_display(tiny_clip, tmp_path, capsys):
    from infusionnet.cli.main import main

    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"keep me")
    assert main(["video", "--input", str(tiny_clip), "-o", str(existing)]) == 2
    assert "already exists" in capsys.readouterr().err and existing.read_bytes() == b"keep me"
    if not gui_available():
        assert main(["video", "--input", str(tiny_clip), "--display"]) == 2
        assert "opencv-python" in capsys.readouterr().err


@needs_torch
def test_cli_source_that_cannot_open_exits_2_and_writes_nothing(tmp_path, capsys):
    pytest.importorskip("torch", reason="without --model, video loads the PyTorch model before the source")
    from infusionnet.cli.main import main

    bogus = tmp_path / "bogus.avi"
    bogus.write_bytes(b"\x00" * 100)
    out = tmp_path / "out.mp4"
    assert main(["video", "--input", str(bogus), "-o", str(out), "--style-size", "96"]) == 2
    assert "bogus.avi: cannot open as a video" in capsys.readouterr().err
    assert not out.exists() and no_temp_files(tmp_path)


@pytest.mark.slow  # builds (or reuses) the shared 32x32 split export: ~3 s alone, more under load
def test_cli_with_an_onnx_export_matches_the_runtime_stylizer(tiny_clip, tmp_path, capsys):
    """--model DIR --backend onnxruntime: the torch-free path; frames equal Stylizer.stylize on
    each decoded frame (lossless output)."""
    stylizer_module = pytest.importorskip("infusionnet.runtime.stylizer")
    runtime_exports = pytest.importorskip("runtime_exports")
    from infusionnet.cli.main import main
    from infusionnet.runtime import samples

    model_dir = runtime_exports.export("split", dynamic=True)
    out = tmp_path / "styled.mkv"
    code = main(["video", "--model", str(model_dir), "--backend", "onnxruntime", "--input", str(tiny_clip),
                 "-o", str(out), "--fourcc", "FFV1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "UNTRAINED" not in captured.err and "4 in, 4 out" in captured.out
    written, _ = read_video(out)
    with stylizer_module.Stylizer(model_dir, backend="onnxruntime") as reference:
        reference.set_style(samples.load_image_arg("sample:hubble_deep_field"))
        expected = [reference.stylize(frame, bgr=True) for frame in read_video(tiny_clip)[0]]
    assert len(written) == 4
    for want, got in zip(expected, written):
        np.testing.assert_array_equal(got, want)


def test_display_window_closed_quits_but_unsupported_property_does_not(monkeypatch):
    monkeypatch.setattr(display, "check_display", lambda: None)
    for name in ("namedWindow", "imshow", "destroyWindow"):
        monkeypatch.setattr(display.cv2, name, lambda *args: None)
    monkeypatch.setattr(display.cv2, "waitKey", lambda delay: -1)
    frame = Frame(0, np.zeros((4, 4, 3), np.uint8), 0.0, 0.0)
    answers = iter([-1.0, -1.0, -1.0])  # a backend without WND_PROP_VISIBLE
    monkeypatch.setattr(display.cv2, "getWindowProperty", lambda *args: next(answers))
    controls = Controls()
    sink = DisplaySink(controls)
    for _ in range(3):
        sink.write(frame)
    assert not controls.quit.is_set()
    answers = iter([1.0, 1.0, 0.0])  # visible, then closed by the user
    controls = Controls()
    sink = DisplaySink(controls)
    sink.write(frame)
    sink.write(frame)
    assert not controls.quit.is_set()
    sink.write(frame)
    assert controls.quit.is_set()
