"""Procedural textures: many brush works for a training set that has few paintings.

A feed-forward style network learns the textures its style images show. Trained on six paintings
and a few photographs, the default model gave every held-out style the same small-blob texture
(docs/default-model/held-out-grid.jpg): it had never been asked to tell apart sparse from even
detail, fine from coarse, strokes from cells. These images ask it. Each is one of five families,
with its scale, density and palette drawn at random:

    dots      discs of random radius on a plain ground, from a few sparse points to a dense
              stipple (star fields, pointillism, spray)
    strokes   short straight strokes along a smooth flow field or one direction (brush work,
              hatching, grass)
    cells     Voronoi cells with mottled fills and dark or light borders (tiles, tissue, crackle)
    waves     bands of a warped sine wave through a colour ramp (wood grain, ripples, stripes)
    blotches  smooth multi-scale noise cut into a few flat colour regions (watercolour, camouflage)

Every image is a pure function of (family, seed, size), so a texture folder is rebuilt bit for
bit (``scripts/make-texture-styles.py``). Tried and not shipped: 30 of them among the default
model's styles cost retina its colours (scripts/train-default-model.sh's comment).
"""
from typing import Callable, Dict, List, Tuple

import cv2
import numpy as np

from infusionnet.runtime.lazy import lazy_import

spatial = lazy_import("scipy.spatial")  # scipy: from scikit-image (the samples extra), cells only

TEXTURE_SIZE = 384  # the CPU recipe's --load-size: its crops see the textures at their drawn scale


def _palette(rng: np.random.Generator, count: int) -> np.ndarray:
    """``count`` colours (float32 RGB in [0, 1]) around one hue or two opposite ones, any
    saturation and lightness."""
    base_hue = rng.uniform(0, 360)
    hues = (base_hue + rng.choice([0, 180], size=count) + rng.normal(0, 25, size=count)) % 360
    saturation = rng.uniform(0.05, 1.0, size=count)
    value = rng.uniform(0.05, 1.0, size=count)
    hsv = np.stack([hues, saturation, value], axis=-1).astype(np.float32)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0]  # float input: H in degrees, S and V in [0, 1]


def _smooth_noise(rng: np.random.Generator, size: int, cell: float, octaves: int = 3) -> np.ndarray:
    """Value noise in [0, 1]: random grids of ``cell``, cell/2 ... pixels, upsampled and summed."""
    total = np.zeros((size, size), np.float32)
    weight_sum = 0.0
    for octave in range(octaves):
        step = max(2.0, cell / 2 ** octave)
        grid = max(2, int(np.ceil(size / step)) + 1)
        layer = cv2.resize(rng.random((grid, grid), dtype=np.float32), (size, size),
                           interpolation=cv2.INTER_CUBIC)
        total += layer * 0.5 ** octave
        weight_sum += 0.5 ** octave
    total /= weight_sum
    low, high = total.min(), total.max()
    return (total - low) / max(high - low, 1e-6)


def _ground(rng: np.random.Generator, size: int, colour: np.ndarray) -> np.ndarray:
    """A plain ground of ``colour`` with a faint large-scale mottle."""
    mottle = _smooth_noise(rng, size, size / 3, octaves=2)[..., None] - 0.5
    return np.clip(colour[None, None] + mottle * rng.uniform(0.0, 0.15), 0, 1)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)


def _draw_colour(colour: np.ndarray) -> Tuple[int, int, int]:
    red, green, blue = (int(round(c * 255)) for c in np.clip(colour, 0, 1))
    return red, green, blue


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    """A scale drawn evenly over its orders of magnitude (as many fine textures as coarse)."""
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def dots(rng: np.random.Generator, size: int) -> np.ndarray:
    colours = _palette(rng, 4)
    canvas = _to_uint8(_ground(rng, size, colours[0] * rng.uniform(0.1, 1.0)))
    density = _log_uniform(rng, 2e-4, 2e-2)  # dots per pixel
    max_radius = _log_uniform(rng, 1.5, 12)
    count = int(density * size * size)
    # Radii follow a power law: many small dots, a few large ones, as in stars or spatter.
    radii = np.minimum(max_radius, rng.pareto(2.5, size=count) + 1.0)
    for x, y, radius in zip(rng.uniform(0, size, count), rng.uniform(0, size, count), radii):
        colour = colours[1 + rng.integers(3)] * rng.uniform(0.7, 1.3)
        cv2.circle(canvas, (int(x), int(y)), max(1, int(round(radius))), _draw_colour(colour), -1,
                   cv2.LINE_AA)
    return canvas


def strokes(rng: np.random.Generator, size: int) -> np.ndarray:
    colours = _palette(rng, 5)
    canvas = _to_uint8(_ground(rng, size, colours[0]))
    length = _log_uniform(rng, 4, 40)
    width = int(rng.integers(1, 7))
    count = int(rng.uniform(0.5, 3.0) * size * size / (length * width))
    # Angle from a smooth field (curved brush work) or one direction with jitter (hatching).
    if rng.random() < 0.6:
        field = _smooth_noise(rng, size, rng.uniform(48, 192), octaves=1) * 2 * np.pi
    else:
        field = np.full((size, size), rng.uniform(0, np.pi), np.float32)
    jitter = rng.uniform(0.0, 0.4)
    for x, y in zip(rng.integers(0, size, count), rng.integers(0, size, count)):
        angle = field[y, x] + rng.normal(0, jitter)
        dx, dy = np.cos(angle) * length / 2, np.sin(angle) * length / 2
        colour = colours[1 + rng.integers(4)] * rng.uniform(0.8, 1.2)
        cv2.line(canvas, (int(x - dx), int(y - dy)), (int(x + dx), int(y + dy)), _draw_colour(colour),
                 width, cv2.LINE_AA)
    return canvas


def cells(rng: np.random.Generator, size: int) -> np.ndarray:
    colours = _palette(rng, 5)
    count = int(_log_uniform(rng, 12, 600))
    seeds = rng.uniform(0, size, size=(count, 2))
    ys, xs = np.mgrid[0:size, 0:size]
    distances, owners = spatial.cKDTree(seeds).query(np.stack([xs.ravel(), ys.ravel()], axis=1), k=2)
    cell_colour = colours[1 + rng.integers(4, size=count)] * rng.uniform(0.8, 1.2, size=(count, 1))
    image = cell_colour[owners[:, 0]].reshape(size, size, 3)
    mottle = _smooth_noise(rng, size, rng.uniform(4, 24), octaves=2)[..., None] - 0.5
    image = image + mottle * rng.uniform(0.0, 0.3)
    border = (distances[:, 1] - distances[:, 0]).reshape(size, size)
    border_width = rng.uniform(0.5, 4.0)
    edge = np.clip(1.0 - border / border_width, 0, 1)[..., None]
    image = image * (1 - edge) + colours[0][None, None] * edge
    return _to_uint8(image)


def waves(rng: np.random.Generator, size: int) -> np.ndarray:
    colours = _palette(rng, 3)
    period = _log_uniform(rng, 4, 64)
    angle = rng.uniform(0, np.pi)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32)
    warp = (_smooth_noise(rng, size, rng.uniform(32, 256)) - 0.5) * rng.uniform(0, 6) * period
    phase = (xs * np.cos(angle) + ys * np.sin(angle) + warp) / period
    ramp = 0.5 + 0.5 * np.sin(2 * np.pi * phase)
    ramp = ramp ** _log_uniform(rng, 0.3, 3.0)  # thin or broad bands
    # Through the ramp's three colours: 0 -> first, 0.5 -> second, 1 -> third.
    low = np.clip(ramp * 2, 0, 1)[..., None]
    high = np.clip(ramp * 2 - 1, 0, 1)[..., None]
    image = colours[0] * (1 - low) + colours[1] * low
    image = image * (1 - high) + colours[2] * high
    return _to_uint8(image)


def blotches(rng: np.random.Generator, size: int) -> np.ndarray:
    levels = int(rng.integers(2, 6))
    colours = _palette(rng, levels)
    noise = _smooth_noise(rng, size, rng.uniform(16, 160), octaves=int(rng.integers(1, 5)))
    edges = np.quantile(noise, np.linspace(0, 1, levels + 1)[1:-1])
    image = colours[np.digitize(noise, edges)]
    softness = float(rng.uniform(0, 3))
    if softness > 0.5:
        image = cv2.GaussianBlur(image.astype(np.float32), (0, 0), softness)
    return _to_uint8(image)


FAMILIES: Dict[str, Callable[[np.random.Generator, int], np.ndarray]] = {
    "dots": dots, "strokes": strokes, "cells": cells, "waves": waves, "blotches": blotches,
}


def texture(family: str, seed: int, size: int = TEXTURE_SIZE) -> np.ndarray:
    """One (size, size, 3) uint8 RGB texture of ``family``, a pure function of its arguments."""
    if family not in FAMILIES:
        raise ValueError(f"texture family must be one of {', '.join(FAMILIES)}, not {family!r}")
    rng = np.random.default_rng([seed, list(FAMILIES).index(family)])
    return FAMILIES[family](rng, size)


def texture_specs(count: int, seed: int = 0) -> List[Tuple[str, str, int]]:
    """A set of ``count`` textures, the families in turn: [(name, family, texture seed)], names
    like ``dots_003``. The first k of a larger set are the set of k."""
    families = list(FAMILIES)
    return [(f"{families[index % len(families)]}_{index:03d}", families[index % len(families)],
             seed * 100_003 + index) for index in range(count)]
