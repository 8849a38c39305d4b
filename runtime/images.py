"""Torch-free image I/O and pre/post-processing shared by the CLI, export, runtimes and benchmarks.

Everything here is numpy + OpenCV and runs on Python 3.8 (Jetson). Images are uint8 RGB arrays,
HxWx3 (or NxHxWx3 for batches); networks take ImageNet-normalized float32 NCHW.

Reading (``read_image``) decodes with ``cv2.IMREAD_UNCHANGED`` so that alpha and 16-bit depth
survive, then converts to 8-bit RGB itself. What OpenCV does and does not do, checked on
OpenCV 4.5.5 (JetPack 5) and 5.0:

* EXIF orientation is applied by ``IMREAD_COLOR`` but not by ``IMREAD_UNCHANGED`` (which is -1,
  so it also carries the IMREAD_IGNORE_ORIENTATION bit). This module reads the orientation tag
  itself from JPEG (APP1), PNG (eXIf) and WebP (EXIF chunk) and applies it. TIFF needs nothing:
  OpenCV's TIFF decoder applies the TIFF orientation tag in every mode. Orientation in AVIF/HEIF
  containers is not handled.
* A truncated baseline JPEG decodes silently on OpenCV 4.5 (the missing part is made up);
  OpenCV 5 refuses it. So a JPEG is called truncated here when no end-of-image marker (FFD9)
  follows its first start-of-scan; bytes after the marker (camera trailers) are allowed. A PNG
  is truncated when walking its chunks runs off the end before IEND; a WebP when the file is
  shorter than its RIFF header says. Other formats are left to OpenCV, which refuses them.
* Decompression bombs: OpenCV's own OPENCV_IO_MAX_IMAGE_PIXELS limit (default 2^30) is read
  once, when cv2 loads, and applies process-wide, so it cannot follow a per-call limit. Instead
  the dimensions are read from the PNG, JPEG, WebP, BMP, GIF or TIFF header before decoding and
  checked against ``max_pixels``; every decoded image is checked again afterwards (other formats
  are then bounded only by OpenCV's limit while decoding).
"""
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import PathLike, atomic_path
from infusionnet.runtime.limits import MAX_ASPECT, MAX_WORK_PIXELS

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

# Default limit of read_image: 100 megapixels is 300 MB as uint8 RGB and well above any camera.
MAX_PIXELS = 100_000_000
# A resize spec larger than this is a typo, not a request.
MAX_SIDE = 32768

# Suffixes treated as images when listing folders (all decoded by the opencv-python wheels).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff",
                  ".ppm", ".pgm", ".pbm", ".pnm", ".gif", ".avif", ".jp2")

# write_image: file suffix -> the extension cv2.imencode knows the format by.
_WRITE_FORMATS = {".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg", ".jpe": ".jpg", ".bmp": ".bmp",
                  ".webp": ".webp", ".tif": ".tiff", ".tiff": ".tiff", ".ppm": ".ppm"}

FITS = ("pad", "resize")


class ImageError(InfusionNetError, ValueError):
    """An image that cannot be read, written or processed as asked (message names the file)."""


# --------------------------------------------------------------------------------------------
# Reading


def read_image(path: PathLike, max_pixels: Optional[int] = None) -> np.ndarray:
    """Read an image file as uint8 HxWx3 RGB, upright (EXIF orientation applied).

    Grayscale becomes RGB, 16-bit is scaled (not clipped) to 8-bit, alpha is composited over
    white. ``max_pixels`` (default ``MAX_PIXELS``) refuses larger images before decoding them.
    Every problem raises ImageError with a one-line message that names the file.
    """
    path = Path(path)
    limit = MAX_PIXELS if max_pixels is None else int(max_pixels)
    data = _read_bytes(path)
    header = _inspect(data)
    if header.truncated:
        raise ImageError(f"cannot read image {path}: truncated {header.format} "
                         f"({header.truncated}; the file was cut short)")
    if header.size is not None:
        check_pixels(header.size[0], header.size[1], path, limit)
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise ImageError(f"cannot read image {path}: OpenCV failed to decode it "
                         f"({_first_line(error)})") from None
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


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


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


# --------------------------------------------------------------------------------------------
# Cheap header parsing: format, dimensions, EXIF orientation, truncation. Never raises: on
# anything unexpected it reports what it knows and leaves the verdict to OpenCV.


@dataclass
class _Header:
    format: str = "unknown"
    size: Optional[Tuple[int, int]] = None   # (height, width)
    orientation: int = 1
    truncated: str = ""                      # why the file looks cut short; "" if it does not


def _inspect(data: bytes) -> _Header:
    try:
        if data.startswith(b"\xff\xd8"):
            return _inspect_jpeg(data)
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            return _inspect_png(data)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _inspect_webp(data)
        if data.startswith(b"BM"):
            return _inspect_bmp(data)
        if data.startswith(b"GIF8"):
            return _Header("GIF", _hw(*struct.unpack("<HH", data[6:10])[::-1]))
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            tags = _tiff_tags(data, (256, 257))
            size = (tags[257], tags[256]) if 256 in tags and 257 in tags else None
            return _Header("TIFF", size)  # OpenCV applies TIFF orientation itself
    except (struct.error, IndexError, ValueError):
        pass
    return _Header()


def _hw(height: int, width: int) -> Optional[Tuple[int, int]]:
    return (height, width) if height > 0 and width > 0 else None


_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}     # frame headers (DHT, JPG, DAC excluded)
_JPEG_STANDALONE = set(range(0xD0, 0xD8)) | {0x01, 0xD8}   # markers without a length


def _inspect_jpeg(data: bytes) -> _Header:
    header = _Header("JPEG")
    pos, end = 2, len(data)
    while True:
        if pos >= end:
            header.truncated = "it ends inside its headers"
            return header
        if data[pos] != 0xFF:
            return header  # malformed; OpenCV will say so
        while pos < end and data[pos] == 0xFF:  # fill bytes
            pos += 1
        if pos >= end:
            header.truncated = "it ends inside its headers"
            return header
        marker = data[pos]
        pos += 1
        if marker in _JPEG_STANDALONE:
            continue
        if marker == 0xD9:
            return header
        if pos + 2 > end:
            header.truncated = "it ends inside its headers"
            return header
        length = struct.unpack(">H", data[pos:pos + 2])[0]
        if pos + length > end:
            header.truncated = "it ends inside its headers"
            return header
        segment = data[pos + 2:pos + length]
        if marker in _JPEG_SOF:
            header.size = _hw(*struct.unpack(">HH", segment[1:5]))
        elif marker == 0xE1 and segment.startswith(b"Exif\x00\x00"):
            header.orientation = _exif_orientation(segment[6:])
        elif marker == 0xDA:
            # Entropy-coded data stuffs every 0xFF with 0x00, so FFD9 after the first scan can
            # only be the end-of-image marker (an EXIF thumbnail's FFD9 lies before the scan).
            if data.find(b"\xff\xd9", pos + length) < 0:
                header.truncated = "no end-of-image marker"
            return header
        pos += length


def _inspect_png(data: bytes) -> _Header:
    header = _Header("PNG")
    pos, end = 8, len(data)
    while pos + 8 <= end:
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk_end = pos + 12 + length  # length, type, data, CRC
        if chunk_end > end:
            break
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header.size = _hw(*struct.unpack(">II", body[:8])[::-1])
        elif kind == b"eXIf":
            header.orientation = _exif_orientation(body)
        elif kind == b"IEND":
            return header
        pos = chunk_end
    header.truncated = "no IEND chunk"
    return header


def _inspect_webp(data: bytes) -> _Header:
    header = _Header("WebP")
    riff_size = struct.unpack("<I", data[4:8])[0]
    if len(data) < 8 + riff_size:
        header.truncated = f"{len(data)} of {8 + riff_size} bytes"
        return header
    pos = 12
    while pos + 8 <= len(data):
        kind, length = struct.unpack("<4sI", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"VP8X" and header.size is None:
            width = 1 + int.from_bytes(body[4:7], "little")
            height = 1 + int.from_bytes(body[7:10], "little")
            header.size = (height, width)
        elif kind == b"VP8 " and header.size is None and body[3:6] == b"\x9d\x01\x2a":
            width, height = struct.unpack("<HH", body[6:10])
            header.size = _hw(height & 0x3FFF, width & 0x3FFF)
        elif kind == b"VP8L" and header.size is None and body[:1] == b"\x2f":
            bits = struct.unpack("<I", body[1:5])[0]
            header.size = (((bits >> 14) & 0x3FFF) + 1, (bits & 0x3FFF) + 1)
        elif kind == b"EXIF":
            header.orientation = _exif_orientation(body)
        pos += 8 + length + (length & 1)  # chunks are padded to even sizes
    return header


def _inspect_bmp(data: bytes) -> _Header:
    dib_size = struct.unpack("<I", data[14:18])[0]
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return _Header("BMP", _hw(abs(height), abs(width)))  # negative height = top-down rows


def _exif_orientation(blob: bytes) -> int:
    if blob.startswith(b"Exif\x00\x00"):  # some writers keep the JPEG prefix in PNG/WebP too
        blob = blob[6:]
    try:
        orientation = _tiff_tags(blob, (0x0112,)).get(0x0112, 1)
    except (struct.error, IndexError, ValueError):  # a broken EXIF block must not hide the rest
        return 1
    return orientation if 1 <= orientation <= 8 else 1


def _tiff_tags(blob: bytes, wanted: Sequence[int]) -> Dict[int, int]:
    """Single SHORT/LONG values of ``wanted`` tags from the first IFD of a TIFF structure."""
    order = {b"II": "<", b"MM": ">"}.get(blob[:2])
    if order is None:
        return {}
    offset = struct.unpack(order + "I", blob[4:8])[0]
    count = struct.unpack(order + "H", blob[offset:offset + 2])[0]
    found = {}
    for index in range(count):
        entry = blob[offset + 2 + 12 * index:offset + 14 + 12 * index]
        if len(entry) < 12:
            break
        tag, kind, values = struct.unpack(order + "HHI", entry[:8])
        if tag in wanted and values == 1 and kind in (3, 4):
            found[tag] = struct.unpack(order + ("H" if kind == 3 else "I"), entry[8:10 if kind == 3 else 12])[0]
    return found


# --------------------------------------------------------------------------------------------
# Writing


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
        raise ImageError(f"cannot write image {path}: {_first_line(error)}") from None
    if not ok:
        raise ImageError(f"cannot write image {path}: OpenCV could not encode it as {ext}")
    # Write the bytes ourselves (not cv2.imwrite) so that non-ASCII paths work everywhere.
    with atomic_path(path) as tmp:
        tmp.write_bytes(encoded.tobytes())
    return path


# --------------------------------------------------------------------------------------------
# Resize policies


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


# --------------------------------------------------------------------------------------------
# Network-ready sizes: resize policy, then H and W made multiples of `multiple`.


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


# --------------------------------------------------------------------------------------------
# Normalization


_MEAN = np.array(MEAN, np.float32)
_STD = np.array(STD, np.float32)
_SCALE = (1.0 / (255.0 * _STD)).astype(np.float32)   # v / 255 / std ...
_BIAS = (-_MEAN / _STD).astype(np.float32)            # ... - mean / std


def normalize(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 or NxHxWx3 RGB -> float32 NCHW, (v / 255 - MEAN) / STD (HxWx3 gives N=1).

    The channel transpose happens while writing the output: one multiply into a fresh NCHW
    array and one in-place add, no other temporaries.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim not in (3, 4) or rgb.shape[-1] != 3:
        raise ImageError(f"normalize expects uint8 HxWx3 or NxHxWx3 RGB, got {rgb.dtype} {rgb.shape}")
    batch = rgb[np.newaxis] if rgb.ndim == 3 else rgb
    n, h, w, _ = batch.shape
    out = np.empty((n, 3, h, w), np.float32)
    np.multiply(batch.transpose(0, 3, 1, 2), _SCALE[:, None, None], out=out)
    out += _BIAS[:, None, None]
    return out


def denormalize(x: np.ndarray) -> np.ndarray:
    """float NCHW (or CHW) -> contiguous uint8 NHWC (or HWC) RGB.

    x * STD + MEAN, clipped to [0, 1] (NaN -> 0), times 255, rounded half to even (np.rint), so
    denormalize(normalize(rgb)) == rgb exactly. Any float dtype (FP16 outputs) is accepted.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ImageError(f"denormalize expects float NCHW or CHW with 3 channels, got {x.dtype} {x.shape}")
    batch = x[np.newaxis] if x.ndim == 3 else x
    n, _, h, w = batch.shape
    out = np.empty((n, h, w, 3), np.float32)
    np.multiply(batch.transpose(0, 2, 3, 1), _STD, out=out)
    out += _MEAN
    np.fmax(out, 0.0, out=out)  # fmax/fmin (unlike clip) also send NaN to 0
    np.fmin(out, 1.0, out=out)
    out *= 255.0
    np.rint(out, out=out)
    result = out.astype(np.uint8)
    return result[0] if x.ndim == 3 else result


class NonFiniteOutputError(ImageError):
    """A network output holds NaN or Inf: it would be written as black or white, silently wrong."""


def denormalize_output(x: np.ndarray, what: str = "the network's output") -> np.ndarray:
    """``denormalize`` for an output that is about to be written or shown: NaN or Inf refused.

    ``denormalize`` maps NaN to black and Inf to white, which is right for comparing outputs
    (a metric then shows the damage) but would write a wrong image with exit status 0.
    """
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise NonFiniteOutputError(f"{what} has {bad} NaN/Inf values of {finite.size}; nothing was written "
                                   "(a damaged graph or engine, or FP16 overflow: run `infusionnet check` on it)")
    return denormalize(x)


# --------------------------------------------------------------------------------------------
# Files and presentation


def is_image_file(path: PathLike) -> bool:
    """Whether the name has an image suffix (the contents are not looked at)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: PathLike, recursive: bool = False) -> List[Path]:
    """Image files in ``folder`` (sorted; hidden files skipped); ImageError if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"cannot list images in {folder}: " +
                         ("not a folder" if folder.exists() else "no such folder"))
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    # Hidden names include macOS "._photo.jpg" resource forks, which are not images.
    found = sorted((p for p in candidates if p.is_file() and is_image_file(p)
                    and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                   key=lambda p: str(p.relative_to(folder)))
    if not found:
        raise ImageError(f"no images in {folder}{' (searched recursively)' if recursive else ''}; "
                         f"looked for {', '.join(IMAGE_SUFFIXES)}")
    return found


def make_grid(images: Sequence[np.ndarray], labels: Optional[Sequence[str]] = None, height: int = 256,
              gap: int = 8) -> np.ndarray:
    """Place RGB images side by side at one height (e.g. content | style | result).

    Each is scaled to ``height`` keeping its aspect ratio, with ``gap`` white pixels between;
    ``labels`` (one per image) are written in a white strip above.
    """
    if not images:
        raise ImageError("make_grid needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ImageError(f"make_grid got {len(images)} images but {len(labels)} labels")
    tiles = []
    for image in images:
        image = np.asarray(image)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(f"make_grid expects uint8 RGB images, got {image.dtype} {image.shape}")
        width = max(1, int(round(image.shape[1] * height / image.shape[0])))
        tiles.append(resize_array(image, height, width))
    strip = max(18, height // 12) if labels else 0
    total_w = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    grid = np.full((strip + height, total_w, 3), 255, np.uint8)
    x = 0
    for index, tile in enumerate(tiles):
        grid[strip:, x:x + tile.shape[1]] = tile
        if labels:
            grid[:strip, x:x + tile.shape[1]] = _label(str(labels[index]), tile.shape[1], strip)
        x += tile.shape[1] + gap
    return grid


def stack_rows(rows: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Stack RGB rows of possibly different widths on a white background, left-aligned."""
    width = max(row.shape[1] for row in rows)
    height = sum(row.shape[0] for row in rows) + gap * (len(rows) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    y = 0
    for row in rows:
        canvas[y:y + row.shape[0], :row.shape[1]] = row
        y += row.shape[0] + gap
    return canvas


def contact_sheet(styles: Sequence[np.ndarray], style_labels: Sequence[str],
                  rows: Sequence[Sequence[np.ndarray]], height: int = 192) -> np.ndarray:
    """A header row of the style images, then one row per content image: the content, then its
    stylizations in the styles' order. Tiles are centre-cropped squares, so columns line up."""
    def square(image):
        image = np.asarray(image)
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        return image[top:top + side, left:left + side]

    blank = np.full((height, height, 3), 255, np.uint8)
    lines = [make_grid([blank] + [square(s) for s in styles], labels=[""] + list(style_labels), height=height)]
    lines += [make_grid([square(tile) for tile in row], height=height) for row in rows]
    return stack_rows(lines)


def _label(text: str, width: int, height: int) -> np.ndarray:
    """Black text centred on a white strip of its own (so nothing spills onto the images)."""
    strip = np.full((height, width, 3), 255, np.uint8)
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = height / 32.0
    (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
    if text_w > width - 4:  # shrink long labels to fit their tile
        scale *= max(0.1, (width - 4) / float(text_w))
        (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
    origin = (max(0, (width - text_w) // 2), (height + text_h - baseline) // 2)
    cv2.putText(strip, text, origin, font, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return strip


__all__ = ["MEAN", "STD", "MAX_PIXELS", "IMAGE_SUFFIXES", "ImageError", "read_image", "check_pixels",
           "write_image", "Resize", "parse_resize", "resize_array", "Restore", "plan_image", "prepare_with",
           "prepare_image", "restore_image", "normalize", "denormalize", "is_image_file", "list_images",
           "make_grid"]
