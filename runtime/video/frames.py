"""Frames on their way through the pipeline, the end marker, and the bounded queue between stages.

Queue policy decides the behaviour: files are processed losslessly and in order (full queues
block the producer); live sources stay real-time (a full queue drops its OLDEST frame, so
inference always takes the newest one and queues never grow).
"""
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Frame:
    """One frame on its way through the pipeline, with the times each stage saw it."""
    index: int                 # position in the source: counts every frame read, dropped or not
    image: np.ndarray          # BGR uint8 (stylized once inference is done)
    t_read: float              # perf_counter() when read() returned
    read_ms: float
    t_infer_start: float = 0.0
    infer_ms: float = 0.0
    style: str = ""


@dataclass
class EndOfStream:
    """Sent down the queues once; ``reason`` is one of the STOP_* strings."""
    reason: str
    message: str = ""


STOP_END = "end of stream"
STOP_DROPPED = "source dropped"
STOP_ERROR = "source error"
STOP_STALLED = "source stalled"
STOP_INTERRUPTED = "interrupted"
STOP_QUIT = "quit"
STOP_LIMIT = "frame limit"
STOP_OUTPUT_ERROR = "output error"
STOP_STYLIZER_ERROR = "stylizer error"


class FrameQueue:
    """A bounded queue; when full, ``put`` blocks (lossless) or drops the oldest item (real-time).

    ``close`` is the consumer saying it will take nothing more: blocked and later ``put`` calls
    return False, so a producer never waits forever on a consumer that has gone.
    """

    def __init__(self, maxsize: int, drop_oldest: bool):
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self.drop_oldest = drop_oldest
        self.dropped = 0
        self.high_water = 0  # the most items ever held: proves the queue stayed bounded
        self._items: deque = deque()
        self._cond = threading.Condition()
        self._closed = False

    def put(self, item) -> bool:
        with self._cond:
            if self.drop_oldest:
                while len(self._items) >= self.maxsize and not self._closed:
                    self._items.popleft()
                    self.dropped += 1
            else:
                while len(self._items) >= self.maxsize and not self._closed:
                    self._cond.wait()
            if self._closed:
                return False
            self._items.append(item)
            self.high_water = max(self.high_water, len(self._items))
            self._cond.notify_all()
            return True

    def finish(self, end: EndOfStream) -> None:
        """Append the end marker even past capacity: the consumer must always see it."""
        with self._cond:
            self._items.append(end)
            self._cond.notify_all()

    def get(self, timeout: Optional[float] = None):
        """The oldest item; raises queue.Empty after ``timeout`` seconds without one."""
        with self._cond:
            deadline = None if timeout is None else time.monotonic() + timeout
            while not self._items:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    raise queue.Empty
                self._cond.wait(remaining)
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def close(self) -> int:
        """Refuse further items; returns how many frames were still queued (left unprocessed)."""
        with self._cond:
            self._closed = True
            left = sum(1 for item in self._items if isinstance(item, Frame))
            self._items.clear()
            self._cond.notify_all()
            return left

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)
