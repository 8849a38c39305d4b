"""Training data: (content, style) pairs from two image folders, as a deterministic stream.

The authors' loader resizes every image to 512 and random-crops 256 (content from MS-COCO,
style from WikiArt). Here the training stream is a pure function of a *draw number* k:

* content image: the (k mod Nc)-th entry of a seeded permutation of the content files, the
  permutation changing every pass (k div Nc); the style image likewise with its own permutation;
* crop offsets: from a generator seeded with (seed, k).

So a batch depends only on its step number, whatever the number of workers or processes:
resuming at step s reads exactly the batches an uninterrupted run would have read, without
replaying the loader, and a run on W processes sees the same samples as one process that
accumulates W micro-batches (``DrawSampler``).

Unreadable files are skipped, never fatal: the next file of the permutation takes their place,
and each sample reports the paths it skipped so the trainer can count them.

``augment=True`` (for small data sets, such as the default model's recipe) adds, per draw and
still as a pure function of it: a random scale (the shorter side between the crop and
``load_size``, so crops see whole objects and close-up brush strokes), a horizontal flip, and for
style images a hue rotation (a 17-image style set becomes a continuum of palettes).
``augment_tone=True`` also gives half of the style crops a random tone (``jitter_tone``: gamma,
saturation), so dark, pale and muted palettes appear in training: with hue rotation alone the
default model took a mostly black style (Hubble's deep field) to a bright result.
"""
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from infusionnet.runtime.environment import cpu_affinity
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.images import ImageError, is_image_file, normalize, read_image, resize_array
from infusionnet.runtime.images import list_images as list_image_files
from infusionnet.runtime.samples import SAMPLE_PREFIX, SampleError, sample_path

RESIZE_MODES = ("short", "square")
_CONTENT, _STYLE = 0, 1
HUE_ROTATION_PROBABILITY = 0.5   # half of the style draws keep their painter's palette
TONE_JITTER_PROBABILITY = 0.5    # with augment_tone: half of the style draws keep their tone
TONE_GAMMA_RANGE = (0.4, 2.5)    # drawn log-uniformly: 2.5 turns a mid grey (0.5) to 0.18, 0.4 to 0.76
TONE_SATURATION_RANGE = (0.25, 1.6)
# Decoded images are kept in memory (downscaled to the load size) when a data set is this small:
# the default recipe's 40 files re-decoded at every draw cost more than a training step's data.
CACHE_MAX_FILES = 512


class DataError(InfusionNetError, ValueError):
    """A data folder cannot be used; the message names it and the problem."""


def list_images(folder, kind: str = "image") -> List[Path]:
    """Image files under ``folder`` and its subfolders (sorted; hidden files skipped)."""
    try:
        return list_image_files(folder, recursive=True)
    except ImageError as error:
        raise DataError(f"{kind} folder: {error}") from None


def collect_images(sources: Union[str, Sequence[str]], kind: str = "image") -> List[Path]:
    """Image files from folders (searched recursively), single image files and built-in samples
    (``sample:NAME``), in the order given, without duplicates."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    found: List[Path] = []
    for source in sources:
        source = str(source)
        if source.startswith(SAMPLE_PREFIX):
            try:
                found.append(sample_path(source))
            except SampleError as error:
                raise DataError(f"{kind} images: {error}") from None
        elif Path(source).is_file():
            if not is_image_file(Path(source)):
                raise DataError(f"{kind} images: {source} is not an image file")
            found.append(Path(source))
        else:
            found += list_images(source, kind)
    if not found:
        raise DataError(f"no {kind} images given")
    return list(dict.fromkeys(found))


def rotate_hue(rgb: np.ndarray, degrees: float) -> np.ndarray:
    """uint8 RGB with every hue turned by ``degrees`` (saturation and value kept)."""
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV)  # OpenCV's 8-bit hue is degrees / 2, in [0, 180)
    hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + int(round(degrees / 2))) % 180).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def jitter_tone(rgb: np.ndarray, gamma: float, saturation: float) -> np.ndarray:
    """uint8 RGB with a gamma curve (> 1 darkens) and its saturation scaled about each pixel's
    grey (0: grey, 1: unchanged)."""
    x = (rgb.astype(np.float32) / 255.0) ** gamma
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = grey[..., None] + saturation * (x - grey[..., None])
    return np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8)


def resize_short_side(rgb: np.ndarray, short: int) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = short / min(height, width)
    return resize_array(rgb, max(short, round(height * scale)), max(short, round(width * scale)))


def resize_for_crop(rgb: np.ndarray, load_size: int, mode: str = "short") -> np.ndarray:
    """Resize before cropping: ``short`` scales the shorter side to ``load_size`` keeping the
    aspect ratio; ``square`` stretches to load_size x load_size as the authors' loader does."""
    height, width = rgb.shape[:2]
    if mode == "square":
        return resize_array(rgb, load_size, load_size)
    if mode != "short":
        raise ValueError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, not {mode!r}")
    scale = load_size / min(height, width)
    return resize_array(rgb, max(load_size, round(height * scale)), max(load_size, round(width * scale)))


def random_crop(rgb: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    height, width = rgb.shape[:2]
    top = int(rng.integers(0, height - size + 1))
    left = int(rng.integers(0, width - size + 1))
    return rgb[top:top + size, left:left + size]


class PairStream(Dataset):
    """Draw number k -> {"content": (3, crop, crop) float32, "style": ..., "skipped": [paths]}.

    Images are read with ``infusionnet.runtime.images.read_image`` and normalized with its
    ``normalize`` (ImageNet statistics), the same path as inference.
    """

    def __init__(self, content_files: Sequence[Path], style_files: Sequence[Path], crop: int = 256,
                 load_size: int = 512, resize_mode: str = "short", seed: int = 0, augment: bool = False,
                 augment_tone: bool = False):
        if not content_files or not style_files:
            raise DataError("both the content and the style folder need at least one image")
        if load_size < crop:
            raise DataError(f"resize size {load_size} is smaller than the crop {crop}")
        if resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, not {resize_mode!r}")
        self.files = (list(map(Path, content_files)), list(map(Path, style_files)))
        self.crop, self.load_size, self.resize_mode, self.seed = crop, load_size, resize_mode, seed
        self.augment, self.augment_tone = augment, augment_tone
        self._permutations: Dict[Tuple[int, int], np.ndarray] = {}
        self._bad = set()  # per worker: files already known to be unreadable
        self._cache: Optional[Dict[Path, np.ndarray]] = (
            {} if augment and sum(map(len, self.files)) <= CACHE_MAX_FILES else None)

    @classmethod
    def from_folders(cls, content_dir, style_dir, **kwargs) -> "PairStream":
        """Content and style sources: a folder, or a list of folders, image files and samples."""
        return cls(collect_images(content_dir, "content"), collect_images(style_dir, "style"), **kwargs)

    def __len__(self) -> int:
        """One pass over the content images."""
        return len(self.files[_CONTENT])

    def __getitem__(self, draw: int) -> dict:
        skipped: List[str] = []
        content = self._image(_CONTENT, int(draw), skipped)
        style = self._image(_STYLE, int(draw), skipped)
        return {"content": content, "style": style, "skipped": skipped}

    def permutation(self, kind: int, epoch: int) -> np.ndarray:
        key = (kind, epoch)
        if key not in self._permutations:
            self._permutations.clear()  # one pass per kind is in use at a time; keep memory flat
            rng = np.random.default_rng([self.seed, kind, epoch])
            self._permutations[key] = rng.permutation(len(self.files[kind]))
        return self._permutations[key]

    def _image(self, kind: int, draw: int, skipped: List[str]) -> torch.Tensor:
        files = self.files[kind]
        epoch, position = divmod(draw, len(files))
        order = self.permutation(kind, epoch)
        for attempt in range(len(files)):
            path = files[order[(position + attempt) % len(files)]]
            if path in self._bad:
                skipped.append(str(path))
                continue
            try:
                rgb = self._decoded(path)
            except (InfusionNetError, OSError, ValueError):
                self._bad.add(path)
                skipped.append(str(path))
                continue
            rng = np.random.default_rng([self.seed, 2 + kind, draw])
            if self.augment:
                rgb = self._augmented(rgb, kind, rng)
            else:
                rgb = resize_for_crop(rgb, self.load_size, self.resize_mode)
                rgb = np.ascontiguousarray(random_crop(rgb, self.crop, rng))
            array = normalize(rgb)
            return torch.from_numpy(np.ascontiguousarray(array.reshape(3, self.crop, self.crop)))
        kind_name = "content" if kind == _CONTENT else "style"
        raise DataError(f"none of the {len(files)} {kind_name} images can be read "
                        f"(first: {files[0]})")


    def _decoded(self, path: Path) -> np.ndarray:
        if self._cache is None:
            return read_image(path)
        if path not in self._cache:
            rgb = read_image(path)
            if min(rgb.shape[:2]) > self.load_size:  # never needed larger than the load size
                rgb = resize_short_side(rgb, self.load_size)
            self._cache[path] = rgb
        return self._cache[path]

    def _augmented(self, rgb: np.ndarray, kind: int, rng: np.random.Generator) -> np.ndarray:
        short = int(rng.integers(self.crop, max(self.crop, min(self.load_size, *rgb.shape[:2])) + 1))
        rgb = random_crop(resize_short_side(rgb, short), self.crop, rng)
        if rng.random() < 0.5:
            rgb = rgb[:, ::-1]
        rgb = np.ascontiguousarray(rgb)
        if kind == _STYLE and rng.random() < HUE_ROTATION_PROBABILITY:
            rgb = rotate_hue(rgb, float(rng.uniform(30, 330)))
        # Drawn after everything above, so runs without it read the same crops as before it existed.
        if kind == _STYLE and self.augment_tone and rng.random() < TONE_JITTER_PROBABILITY:
            gamma = float(np.exp(rng.uniform(*np.log(TONE_GAMMA_RANGE))))
            rgb = jitter_tone(rgb, gamma, float(rng.uniform(*TONE_SATURATION_RANGE)))
        return rgb


class DrawSampler(Sampler):
    """Batches of draw numbers for one process, step by step from ``start_step``.

    Step s covers draws [s*G, (s+1)*G) with G = batch * world_size * accumulate, cut into
    chunks of ``batch``; micro-batch m of rank r takes chunk m*world_size + r. One process
    accumulating W micro-batches therefore sees what W processes see in one step.
    """

    def __init__(self, batch_size: int, iterations: int, start_step: int = 0, rank: int = 0,
                 world_size: int = 1, accumulate: int = 1):
        self.batch_size, self.iterations, self.start_step = batch_size, iterations, start_step
        self.rank, self.world_size, self.accumulate = rank, world_size, accumulate

    def __iter__(self) -> Iterator[List[int]]:
        per_step = self.batch_size * self.world_size * self.accumulate
        for step in range(self.start_step, self.iterations):
            for micro in range(self.accumulate):
                first = step * per_step + (micro * self.world_size + self.rank) * self.batch_size
                yield list(range(first, first + self.batch_size))

    def __len__(self) -> int:
        return max(0, self.iterations - self.start_step) * self.accumulate


def collate_pairs(samples: List[dict]) -> dict:
    return {"content": torch.stack([s["content"] for s in samples]),
            "style": torch.stack([s["style"] for s in samples]),
            "skipped": [path for s in samples for path in s["skipped"]]}


def usable_cpu_cores() -> int:
    """The cores this process may run on; the machine's count where its affinity is unknown."""
    return cpu_affinity() or os.cpu_count() or 1


def _worker_init(_worker_id: int) -> None:
    # Workers decode with OpenCV; its own thread pool per worker would oversubscribe the cores.
    cv2.setNumThreads(1)


def make_loader(dataset: PairStream, sampler: DrawSampler, workers: int = 4,
                pin_memory: bool = False, prefetch: Optional[int] = None) -> DataLoader:
    """A DataLoader over ``sampler``'s batches; ``workers`` = 0 reads in the main process.

    At most one loading process per usable CPU core: more only compete with the training step
    for the cores (and torch warns). The batches do not depend on the number of workers.
    """
    workers = min(max(0, int(workers)), usable_cpu_cores())
    options = {}
    if workers:
        # spawn, not fork: a forked worker inherits OpenCV's thread pool (and CUDA, NCCL or Gloo
        # threads) in whatever state the parent's threads left it, and can hang on its first
        # cv2 call. Spawned workers start clean; scripts calling this need the usual
        # ``if __name__ == "__main__":`` guard.
        options = {"worker_init_fn": _worker_init, "prefetch_factor": prefetch or 4,
                   "multiprocessing_context": "spawn", "persistent_workers": False}
    return DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=collate_pairs,
                      pin_memory=pin_memory, **options)
