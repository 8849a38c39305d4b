"""The video errors (worded for the user) and how an exception becomes one line of a message."""
from infusionnet.runtime.errors import InfusionNetError


class VideoError(InfusionNetError):
    """A problem with a video source or output, worded for the user."""


class SourceError(VideoError):
    """The source cannot be opened or read."""


def one_line(error: BaseException) -> str:
    """The last non-blank line of an error: where OpenCV and ffmpeg put the reason."""
    text = str(error).strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else type(error).__name__
