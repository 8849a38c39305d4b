"""The error every image function raises, and how an OpenCV error is shortened for it."""
from infusionnet.runtime.errors import InfusionNetError


class ImageError(InfusionNetError, ValueError):
    """An image that cannot be read, written or processed as asked (message names the file)."""


def first_line(error: Exception) -> str:
    """The first non-blank line of an OpenCV error (its messages span several lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__
