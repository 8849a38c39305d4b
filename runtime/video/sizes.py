"""Frame sizes given on the command line, and the sizes video encoders can store."""
import re
from typing import Tuple

from .errors import VideoError


def parse_hw(text: str, option: str = "--size") -> Tuple[int, int]:
    """'360x640' -> (360, 640): height first, as every size option of this project."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", str(text))
    if not match or int(match.group(1)) < 1 or int(match.group(2)) < 1:
        raise VideoError(f"{option} {text!r}: expected HEIGHTxWIDTH in pixels, e.g. 360x640")
    return int(match.group(1)), int(match.group(2))


def even_size(height: int, width: int) -> Tuple[int, int]:
    """(H, W) rounded down to even numbers (at least 2): the sizes video encoders can store."""
    return max(2, height - height % 2), max(2, width - width % 2)
