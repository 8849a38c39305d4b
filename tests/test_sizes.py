"""The one size parser (runtime/sizes.py): every size option of every command reads it."""
import pytest

from infusionnet.runtime import images
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.sizes import (
    MIN_SIZE, NAMED_SIZES, SIZE_MULTIPLE, Size, SizeError, check_size, parse_content_size, parse_content_sizes,
    parse_frame_size, parse_size, parse_sizes, size_numbers, size_problem, split_list)


class CustomError(InfusionNetError):
    pass


def test_size_is_a_typed_height_width_pair():
    size = Size(360, 640)
    height, width = size
    assert (height, width) == (360, 640) and size == (360, 640) and size.height == 360 and size.width == 640
    assert str(size) == "360x640" and f"--frame-size {size}" == "--frame-size 360x640"
    assert Size.square(256) == (256, 256)
    assert Size(7, 9).even() == (6, 8) and Size(1, 1).even() == (2, 2) and Size(6, 8).even() == Size(6, 8)


@pytest.mark.parametrize("text, expected", [
    ("384x512", (384, 512)), (" 32X48 ", (32, 48)), ("32 x 48", (32, 48)), ("256", (256, 256)),
    ("720p", (720, 1280)), ("1080P", (1080, 1920)), ("480p", (480, 640)), (Size(16, 24), (16, 24)), ((8, 8), (8, 8)),
])
def test_good_sizes(text, expected):
    size = parse_size(text, named=True)
    assert size == expected and isinstance(size, Size)


@pytest.mark.parametrize("text", ["", "abc", "12x", "x12", "1x2x3", "0x10", "10x0", "0", "-5", "3.5", "+8", "1e3",
                                  "12,34", "square:8", "720"])
def test_bad_sizes_name_the_option_and_what_it_takes(text):
    single = text != "720"  # "720" is a good size where a single N is allowed
    with pytest.raises(CustomError) as caught:
        parse_size(text, "--opt", single=single, error=CustomError)
    message = str(caught.value)
    assert message.startswith(f"--opt {text!r}: expected HxW") and "384x512" in message
    assert ("N for NxN" in message) == single


def test_what_an_option_allows_is_said_by_its_caller():
    with pytest.raises(SizeError, match="'720p': expected HxW"):
        parse_size("720p")                        # names only where the caller allows them
    with pytest.raises(SizeError, match="or a name: 480p, 720p, 1080p"):
        parse_size("4k", named=True)
    with pytest.raises(SizeError, match="'640': expected HxW .*example 384x512\\)$"):
        parse_frame_size("640", "--frame-size")   # frames: HxW only
    assert parse_frame_size("7x7") == (7, 7)       # any positive frame size; evenness is the file's business
    assert set(NAMED_SIZES) == {"480p", "720p", "1080p"}


@pytest.mark.parametrize("text, message", [
    ("30x48", "--max: height 30 must be a multiple of 8 and at least 16 px"),
    ("8x48", "--max: height 8 must be a multiple of 8 and at least 16 px"),
    ("512x500", "--max: width 500 must be a multiple of 8 and at least 16 px"),
    ("100", "--max: height 100 must be a multiple of 8"),
])
def test_content_sizes_are_multiples_of_8(text, message):
    with pytest.raises(SizeError, match=message):
        parse_content_size(text, "--max")
    assert parse_content_size("16x24", "--max") == (16, 24) and parse_content_size("720p") == (720, 1280)
    assert (SIZE_MULTIPLE, MIN_SIZE) == (8, 16)


def test_rules_as_arguments_and_small_functions():
    assert size_problem((16, 24)) is None
    assert size_problem((30, 24)) == "height 30 must be a multiple of 8 and at least 16 px"
    assert size_problem((3, 4), multiple=1, minimum=4) == "height 3 must be at least 4 px"
    assert parse_size("12x20", multiple=4, minimum=12) == (12, 20)
    assert check_size((64, 96), "--opt") == Size(64, 96)
    with pytest.raises(CustomError, match="^--opt: width 90 must be"):
        check_size((64, 90), "--opt", error=CustomError)
    with pytest.raises(SizeError, match=r"\(1, 2, 3\): expected \(height, width\)"):
        parse_size((1, 2, 3))


def test_lists_take_commas_spaces_or_both():
    assert split_list("256, 720p,384x640") == ["256", "720p", "384x640"]
    assert split_list(["256,512", "720p"]) == split_list("256 512  720p") == ["256", "512", "720p"]
    assert split_list(None) == [] and split_list("") == []
    expected = [(256, 256), (512, 512), (720, 1280)]
    assert parse_content_sizes("256,512 720p") == parse_content_sizes(["256,512", "720p"]) == expected
    assert parse_sizes(["32x48", "64"]) == [(32, 48), (64, 64)]
    with pytest.raises(CustomError, match="--sizes: no sizes given"):
        parse_content_sizes(" , ", error=CustomError)
    with pytest.raises(SizeError, match="--sizes: height 33 must be a multiple of 8"):
        parse_content_sizes("256 33")


def test_resize_policies_read_sizes_with_the_same_grammar():
    assert size_numbers(" 5 X 7 ") == (5, 7) and size_numbers("512") == (512,) and size_numbers("5x") is None
    assert images.parse_resize("5 x 7") == images.Resize.exact(Size(5, 7)) == images.Resize("exact", 5, 7)
    assert images.parse_resize("512") == images.Resize.short(512)       # one N: the shorter side here
    assert images.parse_resize("square:96") == images.Resize.square(96)
    with pytest.raises(images.ImageError, match="invalid resize 'square:3x4'"):
        images.parse_resize("square:3x4")


def test_the_network_checks_content_sizes_with_the_same_rule():
    networks = pytest.importorskip("infusionnet.models.networks", reason="needs torch")
    assert (networks.CONTENT_SIZE_MULTIPLE, networks.MIN_CONTENT_SIZE) == (SIZE_MULTIPLE, MIN_SIZE)
    with pytest.raises(InfusionNetError, match="^content height 30 must be a multiple of 8 and at least 16 px$"):
        networks.validate_content_size(30, 48)
