"""Resize policies (keep, shorter side, exact HxW, square crop) and the one resampling function."""
from dataclasses import dataclass
from typing import Tuple, Union

import cv2
import numpy as np

from .errors import ImageError

# A resize spec larger than this is a typo, not a request.
MAX_SIDE = 32768

RESIZE_MODES = ("keep", "short", "exact", "square")
RESIZE_HELP = ("keep (no resize), N (shorter side to N, keeping the aspect ratio), HxW (exactly), "
               "or square:N (shorter side to N, then centre-crop NxN: the official test)")


@dataclass(frozen=True)
class Resize:
    """A resize policy: mode is "keep", "short" (shorter side), "exact" (HxW) or "square"."""

    mode: str = "keep"
    height: int = 0   # exact: target height; short/square: the size
    width: int = 0    # exact: target width; short/square: the size

    def __post_init__(self) -> None:
        if self.mode not in RESIZE_MODES:
            raise ImageError(f"invalid resize mode {self.mode!r}: use one of {', '.join(RESIZE_MODES)}")
        if self.mode != "keep" and not (1 <= self.height <= MAX_SIDE and 1 <= self.width <= MAX_SIDE):
            raise ImageError(f"invalid resize {self.height}x{self.width}: sizes must be 1 to {MAX_SIDE}")

    def __str__(self) -> str:
        if self.mode == "short":
            return str(self.height)
        if self.mode == "exact":
            return f"{self.height}x{self.width}"
        if self.mode == "square":
            return f"square:{self.height}"
        return "keep"

    def resized_size(self, height: int, width: int) -> Tuple[int, int]:
        """(height, width) before any crop: what the image is scaled to."""
        if self.mode == "exact":
            return self.height, self.width
        if self.mode in ("short", "square"):
            # Same arithmetic as torchvision's Resize(int): the long side is truncated.
            size = self.height
            if height <= width:
                return size, max(1, size * width // height)
            return max(1, size * height // width), size
        return height, width

    def output_size(self, height: int, width: int) -> Tuple[int, int]:
        """(height, width) of an image of this size after the policy (crop included)."""
        if self.mode == "square":
            return self.height, self.height
        return self.resized_size(height, width)

    def crop_box(self, height: int, width: int) -> Tuple[int, int]:
        """(top, left) of the centre crop after resizing (0, 0 unless mode is square)."""
        if self.mode != "square":
            return 0, 0
        resized_h, resized_w = self.resized_size(height, width)
        # torchvision's CenterCrop offsets, Python rounding included.
        return int(round((resized_h - self.height) / 2.0)), int(round((resized_w - self.height) / 2.0))

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """Apply the policy to HxWxC or NxHxWxC; returns the input itself when nothing changes."""
        height, width = rgb.shape[-3:-1]
        out = resize_array(rgb, *self.resized_size(height, width))
        if self.mode == "square":
            top, left = self.crop_box(height, width)
            out = out[..., top:top + self.height, left:left + self.height, :]
        return out


KEEP = Resize()


def parse_resize(spec: Union[str, Resize, None]) -> Resize:
    """Parse "keep", "512", "384x512" or "square:256" (a Resize or None passes through)."""
    if spec is None:
        return KEEP
    if isinstance(spec, Resize):
        return spec
    text = str(spec).strip().lower()

    def size(value: str) -> int:
        if not value.isdigit() or not 1 <= int(value) <= MAX_SIDE:
            raise ImageError(f"invalid resize {spec!r}: sizes must be whole numbers from 1 to {MAX_SIDE}; "
                             f"use {RESIZE_HELP}")
        return int(value)

    if text == "keep":
        return KEEP
    if text.startswith("square:"):
        side = size(text[len("square:"):].strip())
        return Resize("square", side, side)
    if "x" in text:
        parts = text.split("x")
        if len(parts) == 2:
            return Resize("exact", size(parts[0].strip()), size(parts[1].strip()))
    elif text.isdigit():
        side = size(text)
        return Resize("short", side, side)
    raise ImageError(f"invalid resize {spec!r}: use {RESIZE_HELP}")


def resize_array(rgb: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize HxWxC or NxHxWxC to (height, width); the input itself if already that size.

    INTER_AREA when shrinking (no aliasing), INTER_CUBIC when either side grows (sharper than
    linear; on uint8 OpenCV saturates the cubic overshoot to [0, 255], so it is clipped).
    """
    in_h, in_w = rgb.shape[-3:-1]
    if (in_h, in_w) == (height, width):
        return rgb
    interpolation = cv2.INTER_AREA if height <= in_h and width <= in_w else cv2.INTER_CUBIC

    def one(image: np.ndarray) -> np.ndarray:
        out = cv2.resize(image, (width, height), interpolation=interpolation)
        return out[:, :, np.newaxis] if out.ndim == 2 else out  # cv2 drops a single channel

    if rgb.ndim == 4:
        return np.stack([one(image) for image in rgb])
    return one(rgb)
