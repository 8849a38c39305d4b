"""The on-frame overlay: throughput, capture-to-stylized latency, the style's name."""
from typing import Optional

import cv2
import numpy as np


class Overlay:
    """Draws throughput, capture-to-stylized latency and the style name on a frame."""

    def __init__(self):
        self._last: Optional[float] = None
        self._fps: Optional[float] = None

    def draw(self, image: np.ndarray, now: float, latency_ms: float, style: str) -> np.ndarray:
        if self._last is not None and now > self._last:
            instant = 1.0 / (now - self._last)
            # An exponential average keeps the number readable instead of flickering.
            self._fps = instant if self._fps is None else 0.9 * self._fps + 0.1 * instant
        self._last = now
        fps = f"{self._fps:.1f}" if self._fps is not None else "--"
        text = f"{fps} FPS  {latency_ms:.0f} ms" + (f"  {style}" if style else "")
        scale = max(0.4, min(image.shape[0], image.shape[1]) / 720.0)
        thickness = max(1, int(round(scale * 2)))
        (w, h), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thickness)
        pad = int(6 * scale) + 2
        cv2.rectangle(image, (0, 0), (w + 2 * pad, h + base + 2 * pad), (0, 0, 0), thickness=-1)
        cv2.putText(image, text, (pad, pad + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                    cv2.LINE_AA)
        return image
