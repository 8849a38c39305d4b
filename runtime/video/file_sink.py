"""Writing the stylized video to a file: atomic rename into place, the source's audio muxed back in."""
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import List, Optional, Tuple

import cv2

from .errors import VideoError, one_line
from .frames import Frame
from .sizes import even_size

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
        self.audio_note = f"audio not kept: ffmpeg could not mux it ({one_line(Exception(result.stderr))})"
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
