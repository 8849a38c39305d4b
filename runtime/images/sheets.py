"""Presentation: images side by side at one height, rows stacked, style-by-content contact sheets."""
from typing import Optional, Sequence

import cv2
import numpy as np

from .errors import ImageError
from .resize import resize_array


def make_grid(images: Sequence[np.ndarray], labels: Optional[Sequence[str]] = None, height: int = 256,
              gap: int = 8) -> np.ndarray:
    """Place RGB images side by side at one height (e.g. content | style | result).

    Each is scaled to ``height`` keeping its aspect ratio, with ``gap`` white pixels between;
    ``labels`` (one per image) are written in a white strip above.
    """
    if not images:
        raise ImageError("make_grid needs at least one image")
    if labels is not None and len(labels) != len(images):
        raise ImageError(f"make_grid got {len(images)} images but {len(labels)} labels")
    tiles = []
    for image in images:
        image = np.asarray(image)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2RGB)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ImageError(f"make_grid expects uint8 RGB images, got {image.dtype} {image.shape}")
        width = max(1, int(round(image.shape[1] * height / image.shape[0])))
        tiles.append(resize_array(image, height, width))
    strip = max(18, height // 12) if labels else 0
    total_w = sum(t.shape[1] for t in tiles) + gap * (len(tiles) - 1)
    grid = np.full((strip + height, total_w, 3), 255, np.uint8)
    x = 0
    for index, tile in enumerate(tiles):
        grid[strip:, x:x + tile.shape[1]] = tile
        if labels:
            grid[:strip, x:x + tile.shape[1]] = _label(str(labels[index]), tile.shape[1], strip)
        x += tile.shape[1] + gap
    return grid


def stack_rows(rows: Sequence[np.ndarray], gap: int = 8) -> np.ndarray:
    """Stack RGB rows of possibly different widths on a white background, left-aligned."""
    width = max(row.shape[1] for row in rows)
    height = sum(row.shape[0] for row in rows) + gap * (len(rows) - 1)
    canvas = np.full((height, width, 3), 255, np.uint8)
    y = 0
    for row in rows:
        canvas[y:y + row.shape[0], :row.shape[1]] = row
        y += row.shape[0] + gap
    return canvas


def contact_sheet(styles: Sequence[np.ndarray], style_labels: Sequence[str],
                  rows: Sequence[Sequence[np.ndarray]], height: int = 192,
                  row_labels: Optional[Sequence[str]] = None) -> np.ndarray:
    """A header row of the style images, then one row per content image: the content, then its
    stylizations in the styles' order. Tiles are centre-cropped squares, so columns line up.
    ``row_labels`` (one per row) are written over each row's first tile."""
    if row_labels is not None and len(row_labels) != len(rows):
        raise ImageError(f"contact_sheet got {len(rows)} rows but {len(row_labels)} row labels")
    def square(image):
        image = np.asarray(image)
        side = min(image.shape[:2])
        top, left = (image.shape[0] - side) // 2, (image.shape[1] - side) // 2
        return image[top:top + side, left:left + side]

    blank = np.full((height, height, 3), 255, np.uint8)
    lines = [make_grid([blank] + [square(s) for s in styles], labels=[""] + list(style_labels), height=height)]
    for index, row in enumerate(rows):
        labels = None if row_labels is None else [row_labels[index]] + [""] * (len(row) - 1)
        lines.append(make_grid([square(tile) for tile in row], labels=labels, height=height))
    return stack_rows(lines)


def _label(text: str, width: int, height: int) -> np.ndarray:
    """Black text centred on a white strip of its own (so nothing spills onto the images)."""
    strip = np.full((height, width, 3), 255, np.uint8)
    font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
    scale = height / 32.0
    (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
    if text_w > width - 4:  # shrink long labels to fit their tile
        scale *= max(0.1, (width - 4) / float(text_w))
        (text_w, text_h), baseline = cv2.getTextSize(text, font, scale, thickness)
    origin = (max(0, (width - text_w) // 2), (height + text_h - baseline) // 2)
    cv2.putText(strip, text, origin, font, scale, (0, 0, 0), thickness, cv2.LINE_AA)
    return strip
