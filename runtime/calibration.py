"""Calibration data as feed dicts: one iterator type for every INT8 calibrator.

``CalibrationFeed`` yields ``{input name: float32 NCHW batch}``, one dict per batch. It iterates
(what Polygraphy's TensorRT calibrator consumes as its data loader) and also answers
``get_next()``/``rewind()`` (ONNX Runtime's CalibrationDataReader protocol, used by
``quantize_static``), so a folder of images, a video, or random tensors in tests plug into either.

Engines and graphs have a fixed batch (it is folded into AdaConv's groups), so every batch is
full: when the images do not divide evenly, the last batch wraps around to the first images.
"""
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from .errors import InfusionNetError

Feed = Dict[str, np.ndarray]
Source = Union[str, "np.ndarray", object]  # a path, an HxWx3 uint8 RGB array, or anything `loader` reads


class CalibrationError(InfusionNetError):
    """No usable calibration data."""


class CalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol over ``__iter__``: ``get_next()`` gives the
    next feed dict or None at the end, ``rewind()`` starts again. Written once, here; every feed
    type (here, export/calibration.py, export/precision.py) iterates and inherits it."""

    _reading = None  # type: Optional[Iterator[Feed]]

    def __iter__(self) -> Iterator[Feed]:
        raise NotImplementedError

    def get_next(self) -> Optional[Feed]:
        if self._reading is None:
            self._reading = iter(self)
        return next(self._reading, None)

    def rewind(self) -> None:
        self._reading = None


def batch_indices(count: int, batch: int, limit: Optional[int] = None) -> List[List[int]]:
    """Indices of the images in each full batch; the last batch wraps around to the start.

    ``limit`` caps the number of batches (calibration rarely needs more than a few hundred
    images). 5 images in batches of 2 -> [[0, 1], [2, 3], [4, 0]].
    """
    if batch < 1:
        raise CalibrationError(f"calibration batch must be at least 1, got {batch}")
    if count < 1:
        raise CalibrationError("no calibration images: give a folder with images (--calibration DIR)")
    batches = -(-count // batch)
    if limit is not None:
        batches = max(1, min(batches, int(limit)))
    return [[(b * batch + i) % count for i in range(batch)] for b in range(batches)]


class CalibrationFeed(CalibrationReader):
    """Feed dicts of ``batch`` preprocessed images under ``input_name``.

    ``loader`` turns one source into a normalized (1,3,H,W) or (3,H,W) float array of ``size``.
    Images are loaded lazily, batch by batch.
    """

    def __init__(self, sources: Sequence[Source], input_name: str, batch: int, size: Tuple[int, int],
                 loader: Callable[[Source], np.ndarray], limit: Optional[int] = None):
        self.sources = list(sources)
        self.input_name = input_name
        self.batch = int(batch)
        self.size = (int(size[0]), int(size[1]))
        self.loader = loader
        self._plan = batch_indices(len(self.sources), self.batch, limit)

    def __len__(self) -> int:
        return len(self._plan)

    def __iter__(self) -> Iterator[Feed]:
        for indices in self._plan:
            yield self._feed(indices)

    def _feed(self, indices: Sequence[int]) -> Feed:
        arrays = [np.asarray(self.loader(self.sources[i]), dtype=np.float32) for i in indices]
        images = np.concatenate([a if a.ndim == 4 else a[None] for a in arrays], axis=0)
        expected = (self.batch, 3) + self.size
        if images.shape != expected:
            raise CalibrationError(f"calibration loader gave a batch of shape {images.shape}, expected {expected}")
        return {self.input_name: np.ascontiguousarray(images)}
