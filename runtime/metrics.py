"""Error metrics shared by export verification, `check` and `bench` (numpy only)."""
import math

import numpy as np

PSNR_CAP = 100.0  # reported for identical images: JSON has no infinity


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    """Peak signal-to-noise ratio in dB for signals spanning ``peak``, capped at PSNR_CAP."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0 or peak <= 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(peak * peak / mse))
