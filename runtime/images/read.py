"""Reading an image file as upright uint8 RGB, whatever its depth, alpha or orientation.

``read_image`` decodes with ``cv2.IMREAD_UNCHANGED`` so that alpha and 16-bit depth survive,
then converts to 8-bit RGB itself. What OpenCV does and does not do, checked on OpenCV 4.5.5
(JetPack 5) and 5.0:

* EXIF orientation is applied by ``IMREAD_COLOR`` but not by ``IMREAD_UNCHANGED`` (which is -1,
  so it also carries the IMREAD_IGNORE_ORIENTATION bit). The orientation tag is read here
  (``headers``) and applied. Orientation in AVIF/HEIF containers is not handled.
* A truncated baseline JPEG decodes silently on OpenCV 4.5 (the missing part is made up);
  OpenCV 5 refuses it. So truncation is told from the headers before decoding; other formats
  are left to OpenCV, which refuses them.
* Decompression bombs: OpenCV's own OPENCV_IO_MAX_IMAGE_PIXELS limit (default 2^30) is read
  once, when cv2 loads, and applies process-wide, so it cannot follow a per-call limit. Instead
  the dimensions are read from the header before decoding and checked against ``max_pixels``;
  every decoded image is checked again afterwards (other formats are then bounded only by
  OpenCV's limit while decoding).
"""
from pathlib import Path
from typing import Optional

import cv2
import numpy as np

from infusionnet.runtime.fileio import PathLike

from .errors import ImageError, first_line
from .headers import read_header

# Default limit of read_image: 100 megapixels is 300 MB as uint8 RGB and well above any camera.
MAX_PIXELS = 100_000_000


def read_image(path: PathLike, max_pixels: Optional[int] = None) -> np.ndarray:
    """Read an image file as uint8 HxWx3 RGB, upright (EXIF orientation applied).

    Grayscale becomes RGB, 16-bit is scaled (not clipped) to 8-bit, alpha is composited over
    white. ``max_pixels`` (default ``MAX_PIXELS``) refuses larger images before decoding them.
    Every problem raises ImageError with a one-line message that names the file.
    """
    path = Path(path)
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    data = _read_bytes(path)
    header = read_header(data)
    if header.truncated:
        raise ImageError(f"cannot read image {path}: truncated {header.format} "
                         f"({header.truncated}; the file was cut short)")
    if header.size is not None:
        check_pixels(header.size[0], header.size[1], path, limit)
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise ImageError(f"cannot read image {path}: OpenCV failed to decode it "
                         f"({first_line(error)})") from None
    if decoded is None or decoded.size == 0:
        what = f"corrupt {header.format} data" if header.format != "unknown" else \
            "not an image format OpenCV can decode, or corrupt data"
        raise ImageError(f"cannot read image {path}: {what}")
    check_pixels(decoded.shape[0], decoded.shape[1], path, limit)
    rgb = _to_rgb8(decoded, path)
    return _apply_orientation(rgb, header.orientation)


def check_pixels(height: int, width: int, name: PathLike = "image", max_pixels: int = MAX_PIXELS) -> None:
    """Raise ImageError when ``height x width`` exceeds ``max_pixels`` (decompression bombs)."""
    if height * width > max_pixels:
        raise ImageError(f"cannot read image {name}: {width}x{height} is {height * width / 1e6:.1f} "
                         f"megapixels, over the limit of {max_pixels / 1e6:g} (raise max_pixels to allow it)")


def _read_bytes(path: Path) -> bytes:
    if path.is_dir():
        raise ImageError(f"cannot read image {path}: it is a directory")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ImageError(f"cannot read image {path}: no such file") from None
    except OSError as error:
        raise ImageError(f"cannot read image {path}: {error.strerror or error}") from None
    if not data:
        raise ImageError(f"cannot read image {path}: the file is empty (0 bytes)")
    return data


def _to_rgb8(image: np.ndarray, name: PathLike = "image") -> np.ndarray:
    """OpenCV's decoded array (gray, gray+alpha, BGR or BGRA; any depth) -> uint8 RGB."""
    if image.ndim == 2:
        image = image[:, :, np.newaxis]
    channels = image.shape[2]
    if image.ndim != 3 or channels not in (1, 2, 3, 4):
        raise ImageError(f"cannot read image {name}: unsupported layout {image.shape}")
    has_alpha = channels in (2, 4)
    color = image[:, :, :channels - 1] if has_alpha else image
    color8 = _to_uint8(color, name)
    if has_alpha:
        alpha = image[:, :, channels - 1:].astype(np.float32) / _full_scale(image.dtype)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        # out = c * a + 255 * (1 - a), rounded to nearest.
        blended = color8 * alpha + 255.0 * (1.0 - alpha)
        color8 = np.rint(blended).astype(np.uint8)
    if color8.shape[2] == 1:
        return cv2.cvtColor(color8, cv2.COLOR_GRAY2RGB)
    return cv2.cvtColor(color8, cv2.COLOR_BGR2RGB)


def _full_scale(dtype: np.dtype) -> float:
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    return 1.0  # float images (HDR, EXR) are taken as [0, 1]


def _to_uint8(color: np.ndarray, name: PathLike) -> np.ndarray:
    if color.dtype == np.uint8:
        return color
    if color.dtype == np.uint16:
        # round(v * 255 / 65535) == round(v / 257), exactly, in integers.
        return ((color.astype(np.uint32) + 128) // 257).astype(np.uint8)
    if np.issubdtype(color.dtype, np.integer) or np.issubdtype(color.dtype, np.floating):
        scaled = np.nan_to_num(color.astype(np.float64) * (255.0 / _full_scale(color.dtype)))
        return np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)
    raise ImageError(f"cannot read image {name}: unsupported pixel type {color.dtype}")


def _apply_orientation(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1-8) so the image displays upright."""
    transposed = rgb.transpose(1, 0, 2)
    views = {
        2: rgb[:, ::-1],                # mirrored left-right
        3: rgb[::-1, ::-1],             # rotated 180
        4: rgb[::-1],                   # mirrored top-bottom
        5: transposed,                  # mirrored, then rotated 270 CW
        6: transposed[:, ::-1],         # rotated 90 CW
        7: transposed[::-1, ::-1],      # mirrored, then rotated 90 CW
        8: transposed[::-1],            # rotated 270 CW
    }
    if orientation not in views:
        return rgb
    return np.ascontiguousarray(views[orientation])
