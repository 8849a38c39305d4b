"""Network-ready sizes: a resize policy, then H and W made multiples of the network's stride.

``plan_image`` computes the plan from a size alone (one plan serves many frames),
``prepare_with``/``restore_image`` apply and undo it; ``Letterbox`` fits a fixed graph size.
"""
from dataclasses import dataclass
from typing import Optional, Tuple, Union

import numpy as np

from infusionnet.runtime.fileio import PathLike
from infusionnet.runtime.limits import MAX_ASPECT, MAX_WORK_PIXELS

from .errors import ImageError
from .resize import KEEP, Resize, parse_resize, resize_array

FITS = ("pad", "resize")


@dataclass(frozen=True)
class Restore:
    """How an image was prepared and how to undo the fit step; one plan serves many frames.

    source_size: (H, W) given to prepare; size: (H, W) after the resize policy, which is what
    restore_image returns; prepared_size: (H, W) fed to the network; pad: (top, bottom, left,
    right) reflect padding when fit is "pad".
    """

    source_size: Tuple[int, int]
    size: Tuple[int, int]
    prepared_size: Tuple[int, int]
    pad: Tuple[int, int, int, int]
    fit: str
    resize: Resize = KEEP


def plan_image(height: int, width: int, resize: Union[str, Resize, None] = "keep", multiple: int = 8,
               fit: str = "pad", min_size: int = 16, max_pixels: Optional[int] = None,
               name: PathLike = "image") -> Restore:
    """Compute, without pixels, how an image of (height, width) will be prepared.

    With ``max_pixels``, the prepared size must fit that budget and the aspect ratio
    ``MAX_ASPECT`` (``check_work``): the refusal comes before any network runs.
    """
    policy = parse_resize(resize)
    if fit not in FITS:
        raise ImageError(f"invalid fit {fit!r}: use 'pad' (reflect padding) or 'resize'")
    if multiple < 1:
        raise ImageError(f"invalid multiple {multiple}: must be at least 1")
    size = policy.output_size(height, width)
    if max_pixels is not None:
        check_work(size, policy, max_pixels, name)
    if min(size) < min_size:
        raise ImageError(f"image is {size[0]}x{size[1]} (HxW) after resize {policy}; both sides must be "
                         f"at least {min_size} px")
    if fit == "pad":
        pad_h, pad_w = -size[0] % multiple, -size[1] % multiple
        pad = (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2)
        prepared = (size[0] + pad_h, size[1] + pad_w)
    else:
        floor = -(-min_size // multiple) * multiple  # min_size rounded up to a multiple
        prepared = (max(floor, (size[0] + multiple // 2) // multiple * multiple),
                    max(floor, (size[1] + multiple // 2) // multiple * multiple))
        pad = (0, 0, 0, 0)
    return Restore((height, width), size, prepared, pad, fit, policy)


class WorkTooLargeError(ImageError):
    """An image whose prepared size is over the pixel budget or the aspect-ratio limit."""


def check_work(size: Tuple[int, int], policy: Union[str, Resize, None], max_pixels: int = MAX_WORK_PIXELS,
               name: PathLike = "image") -> None:
    """Refuse a prepared (height, width) over ``max_pixels`` or longer than MAX_ASPECT to 1.

    Memory grows with the pixels the network processes: an unbounded size ends in the kernel's
    OOM killer minutes later, with no message. The message says which option changes the outcome.
    An exact HxW policy is the user's own shape, so only the pixel budget applies to it.
    """
    height, width = size
    policy = parse_resize(policy)
    after = f" after --size {policy}" if policy.mode != "keep" else ""
    if policy.mode != "exact" and max(height, width) > MAX_ASPECT * min(height, width):
        ratio = max(height, width) / max(1, min(height, width))
        raise WorkTooLargeError(
            f"{name}: {width}x{height} (WxH){after} is {ratio:.0f} times longer than wide, over the "
            f"limit of {MAX_ASPECT}:1; crop it first or give an exact --size HxW")
    if height * width > max_pixels:
        raise WorkTooLargeError(
            f"{name}: {width}x{height} (WxH){after} is {height * width / 1e6:.1f} megapixels, over the "
            f"budget of {max_pixels:,} pixels (--max-pixels); use a smaller --size (e.g. 512, the shorter side), or "
            f"raise --max-pixels if the machine has the memory (PyTorch needs about 0.9 GB per megapixel)")


def prepare_with(rgb: np.ndarray, restore: Restore) -> np.ndarray:
    """Prepare HxWxC or NxHxWxC by a plan from ``plan_image``; contiguous (the input if unchanged)."""
    if tuple(rgb.shape[-3:-1]) != restore.source_size:
        raise ImageError(f"image is {rgb.shape[-3]}x{rgb.shape[-2]} but this plan was made for "
                         f"{restore.source_size[0]}x{restore.source_size[1]}")
    out = restore.resize.apply(rgb)
    if restore.fit == "resize":
        out = resize_array(out, *restore.prepared_size)
    elif any(restore.pad):
        top, bottom, left, right = restore.pad
        # Reflect without repeating the edge pixel: numpy/ONNX "reflect" = OpenCV REFLECT_101.
        widths = [(0, 0)] * (out.ndim - 3) + [(top, bottom), (left, right), (0, 0)]
        out = np.pad(out, widths, mode="reflect")
    return np.ascontiguousarray(out)  # a square crop is a view; runtimes want contiguous buffers


def prepare_image(rgb: np.ndarray, resize: Union[str, Resize, None] = "keep", multiple: int = 8,
                  fit: str = "pad", min_size: int = 16, max_pixels: Optional[int] = None,
                  name: PathLike = "image") -> Tuple[np.ndarray, Restore]:
    """Apply a resize policy, then make H and W multiples of ``multiple``.

    fit="pad" reflect-pads (split evenly, the extra pixel at the bottom/right); fit="resize"
    scales to the nearest multiples. Returns (prepared, restore); ``restore_image`` undoes the
    fit step. Works on HxWxC or NxHxWxC.
    """
    restore = plan_image(rgb.shape[-3], rgb.shape[-2], resize, multiple, fit, min_size, max_pixels, name)
    return prepare_with(rgb, restore), restore


def restore_image(out: np.ndarray, restore: Restore) -> np.ndarray:
    """Undo the fit step on a network output (HxWxC or NxHxWxC): back to ``restore.size``."""
    if tuple(out.shape[-3:-1]) != restore.prepared_size:
        raise ImageError(f"output is {out.shape[-3]}x{out.shape[-2]} but the prepared image was "
                         f"{restore.prepared_size[0]}x{restore.prepared_size[1]}")
    if restore.fit == "resize":
        return resize_array(out, *restore.size)
    top, _, left, _ = restore.pad
    return np.ascontiguousarray(out[..., top:top + restore.size[0], left:left + restore.size[1], :])


@dataclass(frozen=True)
class Letterbox:
    """Fit an image into a fixed (static-graph) size without distorting it, and undo that.

    The image is scaled to fit inside ``target`` keeping its aspect ratio, reflect-padded to
    ``target`` (reflection, like the fit="pad" policy, keeps the padding's statistics close to
    the image's for instance normalization), and after the network the padding is cropped off
    and the result scaled back to the source size.
    """

    source_size: Tuple[int, int]
    target: Tuple[int, int]
    scaled: Tuple[int, int]
    pad: Tuple[int, int, int, int]

    @classmethod
    def plan(cls, height: int, width: int, target: Tuple[int, int]) -> "Letterbox":
        scale = min(target[0] / height, target[1] / width)
        scaled = (min(target[0], max(1, int(round(height * scale)))), min(target[1], max(1, int(round(width * scale)))))
        pad_h, pad_w = target[0] - scaled[0], target[1] - scaled[1]
        return cls((height, width), (int(target[0]), int(target[1])), scaled,
                   (pad_h // 2, pad_h - pad_h // 2, pad_w // 2, pad_w - pad_w // 2))

    @property
    def padded(self) -> bool:
        return any(self.pad)

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        out = resize_array(rgb, *self.scaled)
        if self.padded:
            top, bottom, left, right = self.pad
            widths = [(0, 0)] * (out.ndim - 3) + [(top, bottom), (left, right), (0, 0)]
            out = np.pad(out, widths, mode="reflect" if min(self.scaled) > 1 else "edge")
        return np.ascontiguousarray(out)

    def undo(self, out: np.ndarray) -> np.ndarray:
        top, _, left, _ = self.pad
        cropped = out[..., top:top + self.scaled[0], left:left + self.scaled[1], :]
        return np.ascontiguousarray(resize_array(cropped, *self.source_size))
