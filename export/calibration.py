"""Feed dicts for INT8 calibration and for verification, per graph role.

Images come in as (content, style) pairs from any source: a folder (``--calibration DIR``), the
built-in samples, or random tensors in tests. ``PairFeed`` batches the pairs with the runtime's
``CalibrationFeed`` (the one iterator type shared with the TensorRT calibrator) and ``RoleFeed``
turns each ``{"content", "style"}`` dict into what one graph takes:

    full     content, style
    style    style
    content  content + the style's kernel tensors (computed by ``kernels_of``)
    baked    content

Every feed both iterates and answers ``get_next()``/``rewind()`` (ONNX Runtime's
CalibrationDataReader protocol), so ``quantize_static`` and the verifier read the same objects.

``image_cases`` gives the accuracy comparator (``runtime.compare``) its inputs: random images and
the sample pairs, per content size (export verification and ``infusionnet check``).
"""
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import numpy as np

from infusionnet.runtime import images
from infusionnet.runtime.calibration import CalibrationError, CalibrationFeed, CalibrationReader
from infusionnet.runtime.compare import Case
from infusionnet.runtime.manifest import CONTENT, STYLE
from infusionnet.runtime.samples import sample_names, sample_path

CALIBRATION_METHODS = ("minmax", "entropy", "percentile")
# Percentile (99.999%) ranges, measured on the previous default model (1,324 steps) at 256x256
# against PyTorch FP32 on the sample photos: TensorRT layout 38.6 dB (minmax 36.7), CPU layout
# 33.6 dB (minmax 31.9, entropy 26.2). A few extreme activations stretch minmax ranges and cost
# every other value its resolution; the percentile calibrator costs ~1.5x minmax's time.
DEFAULT_CALIBRATION_METHOD = "percentile"

Feed = Dict[str, np.ndarray]
KernelFn = Callable[[np.ndarray], Dict[str, np.ndarray]]


def image_pairs(directory: Optional[str] = None) -> Tuple[List, List, str]:
    """(content sources, style sources, description) of equal length.

    A folder's images serve as both content and style; the style list is rotated by one so
    no image is paired with itself. Without a folder, the sample photographs are the content
    and the sample textures the style.
    """
    if directory is not None:
        try:
            found = images.list_images(directory)
        except images.ImageError as error:
            raise CalibrationError(f"--calibration {directory}: {error}") from error
        content = list(found)
        style = content[1:] + content[:1]
        return content, style, f"{len(found)} images from {directory}"
    content = [sample_path(name) for name in sample_names("content")]
    style = [sample_path(name) for name in sample_names("style")]
    count = max(len(content), len(style))
    content = [content[i % len(content)] for i in range(count)]
    style = [style[i % len(style)] for i in range(count)]
    return content, style, f"built-in samples ({len(set(content))} photos x {len(set(style))} textures)"


class PairFeed:
    """Batches of ``{"content": (B,3,H,W), "style": (B,3,S,S)}`` from paired image sources."""

    def __init__(self, content: Sequence, style: Sequence, batch: int, content_size: Tuple[int, int],
                 style_size: int, limit: Optional[int] = None):
        if len(content) != len(style):
            raise ValueError("content and style sources must pair up (equal lengths)")
        self.content = CalibrationFeed(content, CONTENT, batch, content_size, limit=limit,
                                       loader=_square_loader(content_size))
        self.style = CalibrationFeed(style, STYLE, batch, (style_size, style_size), limit=limit,
                                     loader=_square_loader((style_size, style_size)))

    def __len__(self) -> int:
        return len(self.content)

    def __iter__(self) -> Iterator[Feed]:
        for content, style in zip(self.content, self.style):
            yield {CONTENT: content[CONTENT], STYLE: style[STYLE]}


def _square_loader(size: Tuple[int, int]):
    """Shorter side to the target, centre crop: no stretching, unlike an exact HxW resize."""
    height, width = size

    def load(source) -> np.ndarray:
        rgb = source if isinstance(source, np.ndarray) else images.read_image(source)
        scale = max(height / rgb.shape[0], width / rgb.shape[1])
        resized = images.resize_array(rgb, max(height, round(rgb.shape[0] * scale)),
                                      max(width, round(rgb.shape[1] * scale)))
        top, left = (resized.shape[0] - height) // 2, (resized.shape[1] - width) // 2
        return images.normalize(np.ascontiguousarray(resized[top:top + height, left:left + width]))

    return load


def random_pairs(batch: int, content_size: Tuple[int, int], style_size: int, count: int = 2,
                 seed: int = 0) -> List[Feed]:
    """``count`` batches of random images (uniform pixels, normalized like real ones)."""
    rng = np.random.default_rng(seed)
    height, width = content_size
    return [{CONTENT: images.normalize(rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)),
             STYLE: images.normalize(rng.integers(0, 256, (batch, style_size, style_size, 3), dtype=np.uint8))}
            for _ in range(count)]


def image_cases(batch: int, style_size: int, sizes: Sequence[Tuple[int, int]], samples: Union[int, Sequence[int]],
                seed: int) -> List[Case]:
    """The comparator's inputs, per content size: one batch of random images (seeded ``seed`` +
    the size's index), then ``samples`` batches of the sample photos x textures (one count for
    every size, or one per size)."""
    counts = [samples] * len(sizes) if isinstance(samples, int) else list(samples)
    content, style, _ = image_pairs(None)
    cases = []
    for index, (size, count) in enumerate(zip(sizes, counts)):
        hw = (int(size[0]), int(size[1]))
        cases.append(Case("random", hw, random_pairs(batch, hw, style_size, 1, seed=seed + index)[0]))
        if count:
            for number, pair in enumerate(PairFeed(content, style, batch, hw, style_size, limit=count)):
                picked = [(number * batch + i) % len(content) for i in range(batch)]
                names = ", ".join(f"{content[i].stem} / {style[i].stem}" for i in picked)
                cases.append(Case("samples", hw, pair, names))
    return cases


def sample_content_feeds(style_graph, batch: int, content_size: Tuple[int, int], style_size: int,
                         limit: Optional[int] = None) -> "RoleFeed":
    """Content-graph feeds of the built-in sample pairs, with the kernels that ``style_graph`` (an
    ONNX Runtime session of a split export's style graph) predicts for each style batch: what the
    INT8 study tools run quantized content graphs on."""
    names = [output.name for output in style_graph.get_outputs()]

    def kernels_of(style_batch: np.ndarray) -> Feed:
        return dict(zip(names, style_graph.run(None, {STYLE: style_batch})))

    content, style, _ = image_pairs(None)
    return RoleFeed(PairFeed(content, style, batch, content_size, style_size, limit=limit), "content", kernels_of)


class RoleFeed(CalibrationReader):
    """Feed dicts for one graph role from a re-iterable source of content/style pairs."""

    def __init__(self, pairs: Iterable[Feed], role: str, kernels_of: Optional[KernelFn] = None):
        if role == "content" and kernels_of is None:
            raise ValueError("the content graph's feeds need kernels_of(style) -> kernel tensors")
        self.pairs = pairs
        self.role = role
        self.kernels_of = kernels_of

    def __len__(self) -> int:
        return len(self.pairs)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Feed]:
        for pair in self.pairs:
            yield self.adapt(pair)

    def adapt(self, pair: Feed) -> Feed:
        if self.role == "full":
            return {CONTENT: pair[CONTENT], STYLE: pair[STYLE]}
        if self.role == "style":
            return {STYLE: pair[STYLE]}
        if self.role == "content":
            feed = {CONTENT: pair[CONTENT]}
            feed.update(self.kernels_of(pair[STYLE]))
            return feed
        if self.role == "baked":
            return {CONTENT: pair[CONTENT]}
        raise ValueError(f"unknown graph role {self.role!r}")
