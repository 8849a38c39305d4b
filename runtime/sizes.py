"""Image sizes: one ``Size`` type and one parser for every size the command line takes.

``export onnx --content-size``, ``--sizes`` (bench, check), ``export trt --min/--opt/--max``,
``video --frame-size/--capture-size`` and the numbers inside ``stylize --resize`` policies all
read sizes here. One grammar: ``HxW`` (x or X, spaces around the numbers allowed), where a
caller allows it a single ``N`` for NxN, and where it allows names, ``480p``, ``720p``,
``1080p``. Each caller says what else a size must be (the network's multiples of 8 for content)
and which error it raises, and gets a typed ``Size`` back: height first, as in every size
option of this project. Lists take commas, spaces or both.

Torch-free and Python 3.8 compatible: the Jetson runtime imports it.
"""
import re
from typing import Iterable, List, NamedTuple, Optional, Sequence, Tuple, Type, Union

from .errors import InfusionNetError

# The network's striding: a content image's height and width must be multiples of
# SIZE_MULTIPLE and at least MIN_SIZE (models.networks checks content sizes with these, the
# TensorRT profiles and the backends' dynamic inputs too).
SIZE_MULTIPLE = 8
MIN_SIZE = 16
# Video sizes by name (480p is 640 wide, as the benchmarks have always measured it).
NAMED_SIZES = {"480p": (480, 640), "720p": (720, 1280), "1080p": (1080, 1920)}

_NUMBERS = re.compile(r"(\d+)(?:\s*x\s*(\d+))?")
_LIST_SEPARATORS = re.compile(r"[,\s]+")


class SizeError(InfusionNetError, ValueError):
    """A size that is not one, or not one the option takes; the message names the option."""


class Size(NamedTuple):
    """(height, width) in pixels. A tuple, so ``height, width = size`` and ``size == (h, w)``
    hold; ``str(size)`` is ``"HxW"``, as the command line spells it."""
    height: int
    width: int

    def __str__(self) -> str:
        return f"{self.height}x{self.width}"

    @classmethod
    def square(cls, side: int) -> "Size":
        return cls(side, side)

    def even(self) -> "Size":
        """Rounded down to even numbers (at least 2): the sizes video encoders can store."""
        return Size(max(2, self.height - self.height % 2), max(2, self.width - self.width % 2))


def size_numbers(text: str) -> Optional[Tuple[int, ...]]:
    """(N,) for "N", (H, W) for "HxW", None for anything else: the grammar every size shares
    (resize policies give a single N their own meaning, so it is returned as it was written)."""
    match = _NUMBERS.fullmatch(str(text).strip().lower())
    if not match:
        return None
    return tuple(int(group) for group in match.groups() if group is not None)


def split_list(values: Union[str, Iterable[str], None]) -> List[str]:
    """"a,b c" or ["a,b", "c"] -> ["a", "b", "c"]: every option that takes several values
    (sizes, backends, precisions) takes them separated by commas, spaces or both."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    return [item for value in values for item in _LIST_SEPARATORS.split(str(value)) if item]


def accepted_forms(single: bool = True, named: bool = False) -> str:
    """What a size option takes, in words (for messages and --help)."""
    forms = "HxW (height x width in pixels, for example 384x512)"
    if single:
        forms += ", N for NxN"
    if named:
        forms += ", or a name: " + ", ".join(NAMED_SIZES)
    return forms


def size_problem(size: Sequence[int], multiple: int = SIZE_MULTIPLE, minimum: int = MIN_SIZE) -> Optional[str]:
    """What keeps ``size`` from being a multiple of ``multiple``, at least ``minimum``, in words
    ("height 30 must be a multiple of 8 and at least 16 px"), or None when nothing does."""
    for name, value in zip(("height", "width"), size):
        if value < minimum or value % multiple:
            if multiple > 1:
                return f"{name} {value} must be a multiple of {multiple} and at least {minimum} px"
            return f"{name} {value} must be at least {minimum} px"
    return None


def check_size(size: Sequence[int], option: str = "size", multiple: int = SIZE_MULTIPLE, minimum: int = MIN_SIZE,
               error: Type[Exception] = SizeError) -> Size:
    """``size`` as a Size, or ``error`` naming ``option`` when ``size_problem`` finds something."""
    problem = size_problem(size, multiple, minimum)
    if problem:
        raise error(f"{option}: {problem}")
    return Size(int(size[0]), int(size[1]))


def parse_size(text: Union[str, Sequence[int]], option: str = "size", single: bool = True, named: bool = False,
               multiple: int = 1, minimum: int = 1, error: Type[Exception] = SizeError) -> Size:
    """The one size parser: "HxW" -> Size(H, W); with ``single``, "N" -> Size(N, N); with
    ``named``, "720p" and the other NAMED_SIZES. Then every side must be a multiple of
    ``multiple`` and at least ``minimum``. A Size (or an (H, W) pair) is checked the same way,
    so typed values pass through. ``error`` is raised with a message that names ``option``.
    """
    if isinstance(text, (tuple, list)):
        if len(text) != 2:
            raise error(f"{option} {tuple(text)!r}: expected (height, width)")
        return check_size(text, option, multiple, minimum, error)
    raw = str(text).strip().lower()
    numbers = NAMED_SIZES.get(raw) if named else None
    if numbers is None:
        numbers = size_numbers(raw)
        if numbers is not None and len(numbers) == 1 and single:
            numbers = numbers * 2
    if numbers is None or len(numbers) != 2 or min(numbers) < 1:
        raise error(f"{option} {text!r}: expected {accepted_forms(single, named)}")
    return check_size(numbers, option, multiple, minimum, error)


def parse_sizes(values: Union[str, Iterable[str], None], option: str = "--sizes", single: bool = True,
                named: bool = False, multiple: int = 1, minimum: int = 1,
                error: Type[Exception] = SizeError) -> List[Size]:
    """Several sizes, separated by commas, spaces or both (``split_list``); at least one."""
    items = split_list(values)
    if not items:
        raise error(f"{option}: no sizes given; expected {accepted_forms(single, named)}")
    return [parse_size(item, option, single, named, multiple, minimum, error) for item in items]


# -- the content sizes of the network (export, check, bench, TensorRT profiles) ------------------

CONTENT_SIZE_HELP = (accepted_forms(single=True, named=True)
                     + f"; multiples of {SIZE_MULTIPLE}, at least {MIN_SIZE}")


def parse_content_size(text: Union[str, Sequence[int]], option: str = "--content-size",
                       error: Type[Exception] = SizeError) -> Size:
    """A content size the network takes: N, HxW or a name, multiples of 8, at least 16."""
    return parse_size(text, option, single=True, named=True, multiple=SIZE_MULTIPLE, minimum=MIN_SIZE, error=error)


def parse_content_sizes(values: Union[str, Iterable[str], None], option: str = "--sizes",
                        error: Type[Exception] = SizeError) -> List[Size]:
    """Content sizes (``parse_content_size``), separated by commas, spaces or both."""
    return parse_sizes(values, option, single=True, named=True, multiple=SIZE_MULTIPLE, minimum=MIN_SIZE,
                       error=error)


def parse_frame_size(text: Union[str, Sequence[int]], option: str = "--frame-size",
                     error: Type[Exception] = SizeError) -> Size:
    """A video frame or camera size: HxW only (a single number would be ambiguous next to the
    resize policies, where N is the shorter side), any positive size."""
    return parse_size(text, option, single=False, error=error)
