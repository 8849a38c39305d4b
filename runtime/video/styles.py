"""What the pipeline needs from a model, the styles it cycles through, and the run-time controls."""
import inspect
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence

import numpy as np

from .errors import VideoError

try:  # typing.Protocol is 3.8+, which is the floor anyway; kept tolerant for type checkers only
    from typing import Protocol
except ImportError:  # pragma: no cover
    Protocol = object  # type: ignore


class FrameStylizer(Protocol):
    """What the pipeline needs from a model: any object with these two methods.

    ``stylize`` takes a BGR uint8 frame (as OpenCV reads it) and returns a NEW BGR uint8 frame
    (the pipeline queues it while the next frame is stylized; a reused output buffer is detected
    and copied). Wrap a Stylizer that speaks RGB with :func:`bgr_stylizer`.
    """

    def set_style(self, rgb: np.ndarray) -> None: ...

    def stylize(self, frame: np.ndarray) -> np.ndarray: ...


@dataclass
class Style:
    """A style the pipeline can switch to: a name for the overlay and a loader giving RGB uint8."""
    name: str
    load: Callable[[], np.ndarray]


class Controls:
    """Requests from the display (keys) or another thread to the inference loop."""

    def __init__(self):
        self.quit = threading.Event()
        self._steps: deque = deque()

    def next_style(self) -> None:
        self._steps.append(1)

    def previous_style(self) -> None:
        self._steps.append(-1)

    def take_style_step(self) -> int:
        step = 0
        while self._steps:
            step += self._steps.popleft()
        return step


class StyleCycler:
    """Sets one of several styles on the stylizer; each switch encodes that style once."""

    def __init__(self, styles: Sequence[Style], stylizer):
        if not styles:
            raise VideoError("no style given")
        self.styles = list(styles)
        self.stylizer = stylizer
        self.index = -1
        self._images: Dict[int, np.ndarray] = {}
        self.switch_ms: List[float] = []

    @property
    def name(self) -> str:
        return self.styles[self.index].name if self.index >= 0 else ""

    def select(self, index: int) -> None:
        index %= len(self.styles)
        if index == self.index:
            return
        if index not in self._images:
            self._images[index] = self.styles[index].load()
        start = time.perf_counter()
        self.stylizer.set_style(self._images[index])
        self.switch_ms.append((time.perf_counter() - start) * 1000.0)
        self.index = index

    def step(self, delta: int) -> None:
        if delta:
            self.select(self.index + delta)


def bgr_stylizer(stylizer):
    """Adapt a Stylizer whose ``stylize`` speaks RGB (optionally with a ``bgr=`` flag) to BGR frames."""
    try:
        takes_bgr = "bgr" in inspect.signature(stylizer.stylize).parameters
    except (TypeError, ValueError):
        takes_bgr = False
    return _BGRAdapter(stylizer, takes_bgr)


class _BGRAdapter:
    def __init__(self, stylizer, takes_bgr: bool):
        self.inner, self.takes_bgr = stylizer, takes_bgr

    def set_style(self, rgb: np.ndarray) -> None:
        self.inner.set_style(rgb)

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close:
            close()

    def stylize(self, frame: np.ndarray) -> np.ndarray:
        if self.takes_bgr:
            return self.inner.stylize(frame, bgr=True)
        rgb = self.inner.stylize(np.ascontiguousarray(frame[:, :, ::-1]))
        return np.ascontiguousarray(rgb[:, :, ::-1])
