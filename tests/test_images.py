"""runtime/images/: reading, writing, resize policies, network sizes, normalization, helpers.

Images are tiny and built here; compressed files with EXIF tags, truncation and lying headers
are crafted byte by byte, so every branch of the readers is exercised on purpose.
"""
import struct
import subprocess
import sys
import warnings
import zlib

import cv2
import numpy as np
import pytest

from infusionnet.runtime import images
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.images import ImageError, headers
from infusionnet.runtime.images import read as image_read


# --------------------------------------------------------------------------------------------
# Builders


def quadrants(height=24, width=40):
    """RGB image with four flat, distinct quadrants: orientation is visible at a glance."""
    rgb = np.zeros((height, width, 3), np.uint8)
    rgb[:height // 2, :width // 2] = (220, 30, 30)
    rgb[:height // 2, width // 2:] = (30, 200, 30)
    rgb[height // 2:, :width // 2] = (30, 30, 210)
    rgb[height // 2:, width // 2:] = (230, 230, 40)
    return rgb


def noise(height, width, seed=0, channels=3):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), dtype=np.uint8)


def smooth(height, width):
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // max(1, width - 1), y * 255 // max(1, height - 1),
                     (x + y) * 255 // max(1, height + width - 2)], axis=2).astype(np.uint8)


def encode(ext, rgb, params=()):
    pixels = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR) if rgb.ndim == 3 and rgb.shape[2] == 3 else rgb
    ok, buf = cv2.imencode(ext, pixels, list(params))
    assert ok
    return buf.tobytes()


def exif_tiff(orientation, little_endian=True):
    """A minimal EXIF TIFF structure: one IFD with one Orientation (0x0112) SHORT entry."""
    order = "<" if little_endian else ">"
    head = b"II*\x00" if little_endian else b"MM\x00*"
    return (head + struct.pack(order + "I", 8) + struct.pack(order + "H", 1)
            + struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(order + "I", 0))


def jpeg_with_app1(jpeg, payload):
    """Insert an APP1 segment right after SOI."""
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def png_chunk(kind, body):
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_with_chunk(png, chunk):
    """Insert a chunk right after IHDR (signature 8 + IHDR 25 bytes)."""
    return png[:33] + chunk + png[33:]


def webp_with_exif(webp, exif, height, width):
    """Turn a simple WebP (one VP8/VP8L chunk) into an extended one carrying an EXIF chunk."""
    image_chunk = webp[12:]
    vp8x = b"VP8X" + struct.pack("<I", 10) + bytes([0x08, 0, 0, 0]) + \
        (width - 1).to_bytes(3, "little") + (height - 1).to_bytes(3, "little")
    exif_chunk = b"EXIF" + struct.pack("<I", len(exif)) + exif + (b"\x00" if len(exif) % 2 else b"")
    body = b"WEBP" + vp8x + image_chunk + exif_chunk
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff_rgb(rgb, orientation):
    """An uncompressed little-endian RGB TIFF with an Orientation tag, written by hand."""
    height, width, _ = rgb.shape
    pixels = rgb.tobytes()
    entries = [(256, 3, 1, width), (257, 3, 1, height), (258, 3, 3, "bps"), (259, 3, 1, 1), (262, 3, 1, 2),
               (273, 4, 1, "strip"), (274, 3, 1, orientation), (277, 3, 1, 3), (278, 3, 1, height),
               (279, 4, 1, len(pixels))]
    data_start = 8 + 2 + 12 * len(entries) + 4
    out = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", len(entries))
    for tag, kind, count, value in entries:
        value = {"bps": data_start, "strip": data_start + 6}.get(value, value)
        out += struct.pack("<HHI", tag, kind, count)
        out += struct.pack("<HH", value, 0) if kind == 3 and count == 1 else struct.pack("<I", value)
    return out + struct.pack("<I", 0) + struct.pack("<HHH", 8, 8, 8) + pixels


def write_bytes(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


# Orientation semantics written independently of the module: how the stored pixels must be
# turned to display upright (EXIF 2.3, tag 0x0112).
EXPECTED_ORIENTATION = {
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: np.rot90(np.fliplr(a), 1),     # mirror, then 90 counter-clockwise = transpose
    6: lambda a: np.rot90(a, -1),               # 90 clockwise
    7: lambda a: np.rot90(np.fliplr(a), -1),    # mirror, then 90 clockwise = transverse
    8: lambda a: np.rot90(a, 1),                # 90 counter-clockwise
}


# --------------------------------------------------------------------------------------------
# Formats and conversions


def test_image_error_is_user_facing_and_a_value_error():
    assert issubclass(ImageError, InfusionNetError) and issubclass(ImageError, ValueError)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif", ".tiff", ".ppm"])
def test_lossless_formats_round_trip_exactly(tmp_path, suffix):
    rgb = noise(21, 34, seed=len(suffix))
    path = images.write_image(tmp_path / f"img{suffix}", rgb)
    back = images.read_image(path)
    assert back.dtype == np.uint8 and back.flags.c_contiguous
    np.testing.assert_array_equal(back, rgb)


@pytest.mark.parametrize("suffix", [".jpg", ".jpeg", ".jpe", ".webp"])
def test_lossy_formats_round_trip_closely(tmp_path, suffix):
    rgb = smooth(32, 48)
    back = images.read_image(images.write_image(tmp_path / f"img{suffix}", rgb, quality=95))
    assert back.shape == rgb.shape
    assert np.abs(back.astype(int) - rgb).mean() < 3


def test_jpeg_quality_changes_the_file(tmp_path):
    rgb = noise(32, 32)
    low = images.write_image(tmp_path / "low.jpg", rgb, quality=10).stat().st_size
    high = images.write_image(tmp_path / "high.jpg", rgb, quality=95).stat().st_size
    assert low < high


def test_non_ascii_paths_round_trip(tmp_path):
    rgb = noise(8, 9)
    path = images.write_image(tmp_path / "ünïcødé 画像" / "kép.png", rgb)
    np.testing.assert_array_equal(images.read_image(str(path)), rgb)


def test_gif_is_read_where_opencv_has_the_codec(tmp_path):
    if not cv2.haveImageWriter(".gif"):
        pytest.skip("this OpenCV has no GIF codec")
    path = write_bytes(tmp_path, "a.gif", encode(".gif", quadrants()))
    assert images.read_image(path).shape == (24, 40, 3)


def test_grayscale_becomes_rgb_with_equal_channels(tmp_path):
    gray = noise(10, 12, channels=1)[:, :, 0]
    path = write_bytes(tmp_path, "g.png", encode(".png", gray))
    rgb = images.read_image(path)
    assert rgb.shape == (10, 12, 3)
    for channel in range(3):
        np.testing.assert_array_equal(rgb[:, :, channel], gray)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    values = np.array([0, 128, 129, 257, 32767, 32896, 65535], np.uint16)
    gray16 = np.tile(values, (2, 1))
    rgb = images.read_image(write_bytes(tmp_path, "g16.png", encode(".png", gray16)))
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 0, 1, 1, 127, 128, 255])
    rgb16 = np.zeros((2, 3, 3), np.uint16)
    rgb16[..., 0] = 65535
    rgb16[..., 1] = 257 * 100
    rgb = images.read_image(write_bytes(tmp_path, "c16.png", encode(".png", rgb16)))
    np.testing.assert_array_equal(rgb[0, 0], [255, 100, 0])


def test_alpha_is_composited_over_white(tmp_path):
    bgra = np.zeros((1, 4, 4), np.uint8)
    bgra[0, :, :3] = (0, 0, 200)                        # red (BGR)
    bgra[0, :, 3] = (0, 255, 128, 51)
    rgb = images.read_image(write_bytes(tmp_path, "a.png", encode(".png", bgra)))
    np.testing.assert_array_equal(rgb[0, 0], [255, 255, 255])   # transparent -> white
    np.testing.assert_array_equal(rgb[0, 1], [200, 0, 0])       # opaque -> the colour
    np.testing.assert_array_equal(rgb[0, 2], [np.rint(200 * 128 / 255 + 255 * 127 / 255), 127, 127])
    np.testing.assert_array_equal(rgb[0, 3], [np.rint(200 * 0.2 + 255 * 0.8), 204, 204])


def test_sixteen_bit_alpha_and_gray_alpha(tmp_path):
    bgra16 = np.zeros((1, 2, 4), np.uint16)
    bgra16[0, :, 1] = 65535                            # green
    bgra16[0, :, 3] = (65535, 0)
    rgb = images.read_image(write_bytes(tmp_path, "a16.png", encode(".png", bgra16)))
    np.testing.assert_array_equal(rgb[0], [[0, 255, 0], [255, 255, 255]])
    # OpenCV returns gray+alpha PNGs as BGRA, but the converter also takes 2-channel arrays.
    gray_alpha = np.array([[[10, 255], [10, 0]]], np.uint8)
    np.testing.assert_array_equal(image_read._to_rgb8(gray_alpha), [[[10] * 3, [255] * 3]])


# --------------------------------------------------------------------------------------------
# EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_is_applied(tmp_path, orientation):
    stored = quadrants(32, 64)
    data = jpeg_with_app1(encode(".jpg", stored, [cv2.IMWRITE_JPEG_QUALITY, 100]),
                          b"Exif\x00\x00" + exif_tiff(orientation, little_endian=orientation % 2 == 0))
    rgb = images.read_image(write_bytes(tmp_path, "o.jpg", data))
    expected = EXPECTED_ORIENTATION[orientation](stored)
    assert rgb.shape == expected.shape
    # JPEG blurs colour edges: compare the middle of each quadrant.
    height, width = expected.shape[:2]
    for y in (height // 4, 3 * height // 4):
        for x in (width // 4, 3 * width // 4):
            assert np.abs(rgb[y, x].astype(int) - expected[y, x]).max() < 6
    # OpenCV's own IMREAD_COLOR path applies orientation too: an independent oracle.
    opencv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1]
    np.testing.assert_array_equal(rgb, opencv)


@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_png_exif_orientation_with_alpha_keeps_both(tmp_path, orientation):
    stored = noise(6, 10, seed=orientation, channels=4)       # BGRA with random alpha
    data = png_with_chunk(encode(".png", stored), png_chunk(b"eXIf", exif_tiff(orientation)))
    rgb = images.read_image(write_bytes(tmp_path, "o.png", data))
    upright = image_read._to_rgb8(stored)                     # composite without orientation
    np.testing.assert_array_equal(rgb, EXPECTED_ORIENTATION[orientation](upright))


def test_webp_exif_orientation_is_applied(tmp_path):
    stored = quadrants(8, 12)
    webp = encode(".webp", stored, [cv2.IMWRITE_WEBP_QUALITY, 101])   # >100: lossless
    data = webp_with_exif(webp, b"Exif\x00\x00" + exif_tiff(6), 8, 12)
    rgb = images.read_image(write_bytes(tmp_path, "o.webp", data))
    np.testing.assert_array_equal(rgb, np.rot90(stored, -1))


def test_tiff_orientation_is_applied_once(tmp_path):
    # OpenCV's TIFF decoder turns TIFFs itself, even with IMREAD_UNCHANGED: no second turn.
    stored = quadrants(4, 6)
    rgb = images.read_image(write_bytes(tmp_path, "o.tif", tiff_rgb(stored, 6)))
    np.testing.assert_array_equal(rgb, np.rot90(stored, -1))


def test_invalid_orientation_values_are_ignored(tmp_path):
    stored = quadrants(8, 12)
    data = png_with_chunk(encode(".png", stored), png_chunk(b"eXIf", exif_tiff(9)))
    np.testing.assert_array_equal(images.read_image(write_bytes(tmp_path, "o.png", data)), stored)


# --------------------------------------------------------------------------------------------
# Read errors: ImageError, one line, naming the file


def assert_read_error(path, *words, **kwargs):
    with pytest.raises(ImageError) as caught:
        images.read_image(path, **kwargs)
    message = str(caught.value)
    assert str(path) in message and "\n" not in message
    for word in words:
        assert word in message
    return message


def test_missing_directory_and_empty_files(tmp_path):
    assert_read_error(tmp_path / "nope.png", "no such file")
    (tmp_path / "folder.png").mkdir()
    assert_read_error(tmp_path / "folder.png", "directory")
    assert_read_error(write_bytes(tmp_path, "empty.jpg", b""), "empty")


def test_non_image_and_corrupt_bytes(tmp_path):
    assert_read_error(write_bytes(tmp_path, "notes.png", b"just some text, not pixels"), "not an image")
    assert_read_error(write_bytes(tmp_path, "bad.jpg", b"\xff\xd8" + b"\x00" * 64), "corrupt JPEG")


def test_truncated_jpeg_is_refused_even_where_opencv_decodes_it(tmp_path):
    data = encode(".jpg", smooth(64, 64))
    for cut in (len(data) // 2, len(data) - 2):
        assert_read_error(write_bytes(tmp_path, f"cut{cut}.jpg", data[:cut]), "truncated JPEG")
    assert_read_error(write_bytes(tmp_path, "head.jpg", data[:40]), "truncated JPEG")


def test_jpeg_thumbnail_eoi_does_not_hide_truncation(tmp_path):
    # An EXIF block that carries a thumbnail holds an FFD8...FFD9 of its own, before the scan.
    data = jpeg_with_app1(encode(".jpg", smooth(32, 32)), b"Exif\x00\x00" + exif_tiff(1) + b"\xff\xd8thumb\xff\xd9")
    assert images.read_image(write_bytes(tmp_path, "whole.jpg", data)).shape == (32, 32, 3)
    assert_read_error(write_bytes(tmp_path, "cut.jpg", data[:-40]), "truncated JPEG")


def test_bytes_after_the_jpeg_end_marker_are_allowed(tmp_path):
    data = encode(".jpg", smooth(16, 24)) + b"camera trailer \x00\x01\x02"
    assert images.read_image(write_bytes(tmp_path, "trailer.jpg", data)).shape == (16, 24, 3)


def test_truncated_png_and_webp(tmp_path):
    png = encode(".png", noise(32, 32))
    assert_read_error(write_bytes(tmp_path, "half.png", png[:len(png) // 2]), "truncated PNG")
    assert_read_error(write_bytes(tmp_path, "noend.png", png[:-12]), "truncated PNG", "IEND")
    webp = encode(".webp", noise(32, 32))
    assert_read_error(write_bytes(tmp_path, "half.webp", webp[:len(webp) // 2]), "truncated WebP")


def test_huge_dimensions_are_refused_before_decoding(tmp_path, monkeypatch):
    def no_decoding(*args):
        raise AssertionError("decoded an image whose header is over the limit")
    png = bytearray(encode(".png", noise(4, 4)))
    png[16:24] = struct.pack(">II", 20000, 20000)
    png[29:33] = struct.pack(">I", zlib.crc32(bytes(png[12:29])) & 0xFFFFFFFF)
    jpeg = bytearray(encode(".jpg", noise(8, 8)))
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 60000, 60000)
    monkeypatch.setattr(image_read.cv2, "imdecode", no_decoding)
    assert_read_error(write_bytes(tmp_path, "bomb.png", bytes(png)), "400.0 megapixels", "limit")
    assert_read_error(write_bytes(tmp_path, "bomb.jpg", bytes(jpeg)), "3600.0 megapixels")


def test_max_pixels_is_configurable_and_checked_after_decoding_too(tmp_path):
    png = write_bytes(tmp_path, "small.png", encode(".png", noise(10, 10)))
    assert_read_error(png, "megapixels", max_pixels=99)
    assert images.read_image(png, max_pixels=100).shape == (10, 10, 3)
    ppm = write_bytes(tmp_path, "small.ppm", encode(".ppm", noise(10, 10)))   # no header parser
    assert_read_error(ppm, "megapixels", max_pixels=99)


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".bmp", ".tiff"])
def test_header_dimensions_match_the_decoded_image(ext):
    data = encode(ext, noise(13, 29))
    assert headers.read_header(data).size == (13, 29)


# --------------------------------------------------------------------------------------------
# Writing


def test_write_creates_folders_replaces_atomically_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "a" / "b" / "out.png"
    images.write_image(target, noise(5, 6, seed=1))
    images.write_image(target, noise(5, 6, seed=2))
    np.testing.assert_array_equal(images.read_image(target), noise(5, 6, seed=2))
    assert [p.name for p in target.parent.iterdir()] == ["out.png"]


def test_write_refuses_unknown_suffixes_and_bad_arrays(tmp_path):
    with pytest.raises(ImageError, match=r"out\.xyz.*unknown suffix"):
        images.write_image(tmp_path / "out.xyz", noise(4, 4))
    with pytest.raises(ImageError, match="uint8"):
        images.write_image(tmp_path / "f.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageError, match="HxWx3"):
        images.write_image(tmp_path / "f.png", np.zeros((4, 4, 4), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_accepts_grayscale(tmp_path):
    gray = noise(5, 7, channels=1)[:, :, 0]
    rgb = images.read_image(images.write_image(tmp_path / "g.png", gray))
    np.testing.assert_array_equal(rgb[:, :, 1], gray)


# --------------------------------------------------------------------------------------------
# Resize policies


@pytest.mark.parametrize("spec, mode, height, width, text", [
    ("keep", "keep", 0, 0, "keep"), (" KEEP ", "keep", 0, 0, "keep"), ("512", "short", 512, 512, "512"),
    ("384x512", "exact", 384, 512, "384x512"), ("384X512", "exact", 384, 512, "384x512"),
    ("square:256", "square", 256, 256, "square:256")])
def test_parse_resize(spec, mode, height, width, text):
    policy = images.parse_resize(spec)
    assert (policy.mode, policy.height, policy.width, str(policy)) == (mode, height, width, text)
    assert images.parse_resize(str(policy)) == policy


@pytest.mark.parametrize("spec", ["", "big", "0", "-5", "3.5", "12x", "x12", "1x2x3", "0x5", "square:",
                                  "square:abc", "99999999", "square:-1"])
def test_bad_resize_specs_explain_the_choices(spec):
    with pytest.raises(ImageError) as caught:
        images.parse_resize(spec)
    assert isinstance(caught.value, ValueError)
    assert repr(spec) in str(caught.value) and "square:N" in str(caught.value)


@pytest.mark.parametrize("spec, size, expected", [
    ("keep", (37, 45), (37, 45)), ("16", (37, 45), (16, 19)), ("16", (45, 37), (19, 16)),
    ("16", (20, 20), (16, 16)), ("100", (37, 45), (100, 121)), ("20x30", (37, 45), (20, 30)),
    ("square:32", (37, 45), (32, 32)), ("square:32", (45, 37), (32, 32))])
def test_resize_policy_shapes(spec, size, expected):
    policy = images.parse_resize(spec)
    out = policy.apply(smooth(*size))
    assert out.shape == expected + (3,) and out.dtype == np.uint8
    assert policy.output_size(*size) == expected


def test_resize_objects_validate_themselves():
    with pytest.raises(ImageError, match="mode"):
        images.Resize("stretch", 4, 4)
    with pytest.raises(ImageError, match="sizes"):
        images.Resize("exact", 0, 4)
    assert images.parse_resize(None) == images.Resize() == images.parse_resize(images.Resize())


def test_keep_returns_the_same_array():
    rgb = noise(9, 9)
    assert images.parse_resize("keep").apply(rgb) is rgb


def test_square_crop_is_centred_like_torchvision():
    # Shorter side already 32: no resize, centre crop only. Offset int(round(9 / 2)) = 4.
    rgb = noise(32, 41)
    np.testing.assert_array_equal(images.parse_resize("square:32").apply(rgb), rgb[:, 4:36])
    np.testing.assert_array_equal(images.parse_resize("square:32").apply(rgb.transpose(1, 0, 2)),
                                  rgb.transpose(1, 0, 2)[4:36])


def test_upscaling_saturates_instead_of_wrapping():
    checker = np.zeros((8, 8, 3), np.uint8)
    checker[::2, ::2] = 255
    checker[1::2, 1::2] = 255
    out = images.parse_resize("64").apply(checker)
    assert out.min() == 0 and out.max() == 255   # cubic overshoot clipped, not wrapped to 0/255


def test_resize_applies_to_batches():
    batch = np.stack([smooth(37, 45)] * 3)
    assert images.parse_resize("16").apply(batch).shape == (3, 16, 19, 3)


# --------------------------------------------------------------------------------------------
# prepare_image / restore_image


def test_pad_to_multiple_and_restore_exactly():
    rgb = noise(37, 45)
    prepared, restore = images.prepare_image(rgb, "keep")
    assert prepared.shape == (40, 48, 3) and restore.pad == (1, 2, 1, 2)
    np.testing.assert_array_equal(prepared[1:38, 1:46], rgb)
    np.testing.assert_array_equal(prepared[0, 1:46], rgb[1])         # reflect, edge not repeated
    np.testing.assert_array_equal(prepared[38:40, 1:46], rgb[[35, 34]])
    np.testing.assert_array_equal(prepared[1:38, 46:48], rgb[:, [43, 42]])
    restored = images.restore_image(prepared, restore)
    assert restored.flags.c_contiguous
    np.testing.assert_array_equal(restored, rgb)


def test_pad_with_other_multiples():
    rgb = noise(33, 17)
    prepared, restore = images.prepare_image(rgb, "keep", multiple=16)
    assert prepared.shape == (48, 32, 3) and restore.pad == (7, 8, 7, 8)
    np.testing.assert_array_equal(images.restore_image(prepared, restore), rgb)


def test_resize_fit_goes_to_the_nearest_multiple_and_back():
    rgb = smooth(37, 45)
    prepared, restore = images.prepare_image(rgb, "keep", fit="resize")
    assert prepared.shape == (40, 48, 3) and restore.pad == (0, 0, 0, 0)
    back = images.restore_image(prepared, restore)
    assert back.shape == rgb.shape and np.abs(back.astype(int) - rgb).mean() < 2
    assert images.prepare_image(smooth(44, 50), fit="resize")[0].shape == (48, 48, 3)
    assert images.prepare_image(smooth(16, 19), fit="resize")[0].shape == (16, 16, 3)


def test_policy_then_fit_restores_to_the_policy_size():
    prepared, restore = images.prepare_image(smooth(100, 130), "square:96")
    assert prepared.shape == (96, 96, 3) and restore.size == (96, 96) and restore.source_size == (100, 130)
    prepared, restore = images.prepare_image(smooth(100, 130), "20", fit="pad")
    assert restore.size == (20, 26) and prepared.shape == (24, 32, 3)
    assert images.restore_image(prepared, restore).shape == (20, 26, 3)


def test_nothing_to_do_returns_the_input_itself():
    rgb = noise(16, 24)
    prepared, restore = images.prepare_image(rgb)
    assert prepared is rgb and restore.prepared_size == (16, 24)


def test_one_plan_serves_a_batch_and_many_frames():
    plan = images.plan_image(37, 45, "keep", fit="pad")
    batch = np.stack([noise(37, 45, seed=s) for s in range(3)])
    prepared = images.prepare_with(batch, plan)
    assert prepared.shape == (3, 40, 48, 3)
    np.testing.assert_array_equal(images.restore_image(prepared, plan), batch)
    for seed in range(2):
        frame = noise(37, 45, seed=seed)
        np.testing.assert_array_equal(images.prepare_with(frame, plan), prepared[seed])
    with pytest.raises(ImageError, match="plan was made for 37x45"):
        images.prepare_with(noise(38, 45), plan)
    batch_prepared, batch_plan = images.prepare_image(batch, "16", fit="resize")
    assert batch_prepared.shape == (3, 16, 16, 3)
    assert images.restore_image(batch_prepared, batch_plan).shape == (3, 16, 19, 3)


def test_too_small_images_and_bad_arguments():
    with pytest.raises(ImageError, match="12x40.*at least 16"):
        images.prepare_image(noise(12, 40))
    assert images.prepare_image(noise(12, 40), min_size=8)[0].shape == (16, 40, 3)
    with pytest.raises(ImageError, match="after resize 8"):
        images.prepare_image(noise(40, 40), "8")
    with pytest.raises(ImageError, match="fit"):
        images.prepare_image(noise(16, 16), fit="crop")
    with pytest.raises(ImageError, match="multiple"):
        images.prepare_image(noise(16, 16), multiple=0)
    _, restore = images.prepare_image(noise(37, 45))
    with pytest.raises(ImageError, match="37x45|40x48"):
        images.restore_image(noise(37, 45), restore)


# --------------------------------------------------------------------------------------------
# normalize / denormalize


def test_normalize_layout_and_values():
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 1] = (255, 0, 128)
    x = images.normalize(rgb)
    assert x.shape == (1, 3, 2, 3) and x.dtype == np.float32 and x.flags.c_contiguous
    expected = (np.array([255, 0, 128]) / 255.0 - np.array(images.MEAN)) / np.array(images.STD)
    np.testing.assert_allclose(x[0, :, 0, 1], expected, rtol=0, atol=1e-5)
    batch = np.stack([noise(4, 5, seed=s) for s in range(2)])
    xb = images.normalize(batch)
    assert xb.shape == (2, 3, 4, 5)
    np.testing.assert_array_equal(xb[1], images.normalize(batch[1])[0])


def test_normalize_denormalize_round_trip_is_exact_for_every_value():
    values = np.arange(256, dtype=np.uint8)
    rgb = np.stack([values, values[::-1], np.roll(values, 77)], axis=1)[np.newaxis]   # 1x256x3
    back = images.denormalize(images.normalize(rgb))
    assert back.shape == (1, 1, 256, 3) and back.dtype == np.uint8 and back.flags.c_contiguous
    np.testing.assert_array_equal(back[0], rgb)
    batch = np.stack([noise(7, 9, seed=s) for s in range(3)])
    np.testing.assert_array_equal(images.denormalize(images.normalize(batch)), batch)
    np.testing.assert_array_equal(images.denormalize(images.normalize(batch).astype(np.float16)), batch)


def test_denormalize_clips_handles_nan_and_chw():
    x = np.zeros((3, 1, 4), np.float32)
    x[:, 0] = np.array([-100.0, 100.0, np.nan, np.inf])
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # no "invalid value in cast" from NaN
        out = images.denormalize(x)
    assert out.shape == (1, 4, 3)
    np.testing.assert_array_equal(out[0], [[0] * 3, [255] * 3, [0] * 3, [255] * 3])


def test_normalize_and_denormalize_reject_wrong_inputs():
    with pytest.raises(ImageError, match="uint8"):
        images.normalize(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageError, match="HxWx3"):
        images.normalize(np.zeros((4, 4), np.uint8))
    with pytest.raises(ImageError, match="3 channels"):
        images.denormalize(np.zeros((1, 4, 4, 3), np.float32))
    with pytest.raises(ImageError, match="float"):
        images.denormalize(np.zeros((1, 3, 4, 4), np.uint8))


# --------------------------------------------------------------------------------------------
# Helpers for the commands


def test_make_grid_shapes_and_labels():
    tiles = [noise(32, 48), noise(64, 64), noise(20, 10, channels=1)[:, :, 0]]
    grid = images.make_grid(tiles, height=64, gap=4)
    assert grid.shape == (64, 96 + 64 + 32 + 2 * 4, 3)
    labelled = images.make_grid(tiles, labels=["content", "style", "stylized"], height=64, gap=4)
    strip = labelled.shape[0] - 64
    assert strip > 0 and labelled.shape[1] == grid.shape[1]
    assert labelled[:strip, :96].min() < 128                     # text was drawn in the strip
    np.testing.assert_array_equal(labelled[strip:], grid)
    with pytest.raises(ImageError, match="3 images but 2 labels"):
        images.make_grid(tiles, labels=["a", "b"])
    with pytest.raises(ImageError):
        images.make_grid([])


def test_contact_sheet_labels_rows_only_when_asked():
    styles, rows = [noise(32, 32)], [[noise(32, 32), noise(32, 32)], [noise(32, 32), noise(32, 32)]]
    plain = images.contact_sheet(styles, ["s"], rows, height=32)
    labelled = images.contact_sheet(styles, ["s"], rows, height=32, row_labels=["bundled", "mine"])
    strip = images.make_grid([noise(32, 32)], labels=["x"], height=32).shape[0] - 32  # make_grid's label strip
    assert strip > 0
    assert labelled.shape == (plain.shape[0] + 2 * strip, plain.shape[1], 3)
    header = strip + 32 + 8  # the labelled style row, then stack_rows' gap
    assert labelled[header:header + strip, :32].min() < 128     # the first row's label was drawn
    with pytest.raises(ImageError, match="2 rows but 1 row labels"):
        images.contact_sheet(styles, ["s"], rows, height=32, row_labels=["bundled"])


def test_is_image_file_and_list_images(tmp_path):
    for name in ["b.png", "A.JPG", "c.webp", "notes.txt", ".hidden.png", "._a.jpg", "sub/d.tif", ".git/e.png"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    assert images.is_image_file("x/Photo.JPEG") and not images.is_image_file("x/notes.txt")
    assert [p.name for p in images.list_images(tmp_path)] == ["A.JPG", "b.png", "c.webp"]
    assert [p.relative_to(tmp_path).as_posix() for p in images.list_images(str(tmp_path), recursive=True)] == \
        ["A.JPG", "b.png", "c.webp", "sub/d.tif"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageError, match="no images in .*empty"):
        images.list_images(tmp_path / "empty")
    with pytest.raises(ImageError, match="no such folder"):
        images.list_images(tmp_path / "missing")
    with pytest.raises(ImageError, match="not a folder"):
        images.list_images(tmp_path / "b.png")


def test_images_module_works_with_torch_unimportable(tmp_path):
    code = (
        "import sys\n"
        "sys.modules['torch'] = None\n"   # any `import torch` now raises ImportError
        "import numpy as np\n"
        "from infusionnet.runtime import images\n"
        f"path = images.write_image({str(tmp_path / 'x.png')!r}, np.full((20, 20, 3), 7, np.uint8))\n"
        "rgb, restore = images.prepare_image(images.read_image(path))\n"
        "assert (images.denormalize(images.normalize(rgb))[0] == rgb).all()\n"
        "print('ok', 'torch' in sys.modules and sys.modules['torch'] is not None)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok False"
