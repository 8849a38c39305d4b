"""Cheap header parsing: format, dimensions, EXIF orientation, truncation, before any decoding.

Never raises: on anything unexpected it reports what it knows and leaves the verdict to OpenCV.
Orientation is read from JPEG (APP1), PNG (eXIf) and WebP (EXIF chunk); TIFF needs nothing, as
OpenCV's TIFF decoder applies the TIFF orientation tag itself. Dimensions come from the PNG, JPEG,
WebP, BMP, GIF or TIFF header, so that a decompression bomb is refused before it is decoded.
A JPEG is called truncated when no end-of-image marker (FFD9) follows its first start-of-scan
(bytes after the marker, camera trailers, are allowed); a PNG when walking its chunks runs off
the end before IEND; a WebP when the file is shorter than its RIFF header says.
"""
import struct
from dataclasses import dataclass
from typing import Dict, Optional, Sequence, Tuple


@dataclass
class Header:
    """What the first bytes of a file say about the image in it."""

    format: str = "unknown"
    size: Optional[Tuple[int, int]] = None   # (height, width)
    orientation: int = 1
    truncated: str = ""                      # why the file looks cut short; "" if it does not


def read_header(data: bytes) -> Header:
    """Format, (height, width), EXIF orientation and truncation of an encoded image."""
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
            return Header("GIF", _hw(*struct.unpack("<HH", data[6:10])[::-1]))
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            tags = _tiff_tags(data, (256, 257))
            size = (tags[257], tags[256]) if 256 in tags and 257 in tags else None
            return Header("TIFF", size)  # OpenCV applies TIFF orientation itself
    except (struct.error, IndexError, ValueError):
        pass
    return Header()


def _hw(height: int, width: int) -> Optional[Tuple[int, int]]:
    return (height, width) if height > 0 and width > 0 else None


_JPEG_SOF = set(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}     # frame headers (DHT, JPG, DAC excluded)
_JPEG_STANDALONE = set(range(0xD0, 0xD8)) | {0x01, 0xD8}   # markers without a length


def _inspect_jpeg(data: bytes) -> Header:
    header = Header("JPEG")
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


def _inspect_png(data: bytes) -> Header:
    header = Header("PNG")
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


def _inspect_webp(data: bytes) -> Header:
    header = Header("WebP")
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


def _inspect_bmp(data: bytes) -> Header:
    dib_size = struct.unpack("<I", data[14:18])[0]
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER
        width, height = struct.unpack("<HH", data[18:22])
    else:
        width, height = struct.unpack("<ii", data[18:26])
    return Header("BMP", _hw(abs(height), abs(width)))  # negative height = top-down rows


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
