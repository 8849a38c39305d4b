"""Writing an image file atomically, the format chosen by the suffix."""
from pathlib import Path
from typing import List

import cv2
import numpy as np

from infusionnet.runtime.fileio import PathLike, atomic_path

from .errors import ImageError, first_line

# write_image: file suffix -> the extension cv2.imencode knows the format by.
_WRITE_FORMATS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg", ".jpe": ".jpg", ".bmp": ".bmp",
                  ".webp": ".webp", ".tif": ".tiff", ".tiff": ".tiff", ".ppm": ".ppm"}


def write_image(path: PathLike, rgb: np.ndarray, quality: int = 95) -> Path:
    """Write uint8 RGB (HxWx3) or gray (HxW) atomically; the format comes from the suffix.

    ``quality`` (1-100) applies to JPEG and WebP (WebP above 100 is lossless). Parent folders
    are created; the file appears complete or not at all. Returns the path.
    """
    path = Path(path)
    ext = _WRITE_FORMATS.get(path.suffix.lower())
    if ext is None:
        raise ImageError(f"cannot write image {path}: unknown suffix {path.suffix!r} "
                         f"(use one of {', '.join(sorted(_WRITE_FORMATS))})")
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or not (rgb.ndim == 2 or (rgb.ndim == 3 and rgb.shape[2] == 3)):
        raise ImageError(f"cannot write image {path}: expected uint8 HxWx3 RGB or HxW gray, "
                         f"got {rgb.dtype} {rgb.shape}")
    pixels = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    params: List[int] = []
    if ext == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    elif ext == ".webp":
        params = [cv2.IMWRITE_WEBP_QUALITY, int(quality)]
    try:
        ok, encoded = cv2.imencode(ext, pixels, params)
    except cv2.error as error:
        raise ImageError(f"cannot write image {path}: {first_line(error)}") from None
    if not ok:
        raise ImageError(f"cannot write image {path}: OpenCV could not encode it as {ext}")
    # Write the bytes ourselves (not cv2.imwrite) so that non-ASCII paths work everywhere.
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return path
