"""Error metrics shared by export verification, `check` and `bench` (numpy; SSIM: scikit-image).

Per output, against the reference's output for the same inputs:

* max abs and mean abs error of the raw outputs (normalized space, or the kernels);
* PSNR of the uint8 images (denormalized, clipped, rounded: what a user sees);
* range PSNR: the same error against the reference's own peak-to-peak range;
* SSIM of the uint8 images (scikit-image's structural_similarity), where asked for.

Why two PSNRs: a trained network's output spans most of [0, 255], and then the two agree within
a few dB. An untrained network outputs an almost flat grey image spanning ~8 grey levels, so the
uint8 images of FP32, FP16 and INT8 are often identical (PSNR capped at 100 dB) and a uint8
floor would pass anything. Range PSNR rescales the error to the signal that is actually there,
so the same floors (``runtime.floors``) stay meaningful for both.
"""
import math
from typing import Dict, Mapping, Optional

import numpy as np

from .errors import CheckError
from .images import denormalize
from .lazy import lazy_import

skimage_metrics = lazy_import("skimage.metrics")  # SSIM only: scikit-image is the samples extra

PSNR_CAP = 100.0  # reported for identical images: JSON has no infinity


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    """Peak signal-to-noise ratio in dB for signals spanning ``peak``, capped at PSNR_CAP."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    if mse == 0.0 or peak <= 0.0:
        return PSNR_CAP
    return min(PSNR_CAP, 10.0 * math.log10(peak * peak / mse))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of uint8 NHWC batches (scikit-image, per image over the colour channels)."""
    scores = [skimage_metrics.structural_similarity(x, y, channel_axis=-1, data_range=255) for x, y in zip(a, b)]
    return float(np.mean(scores))


def image_metrics(output: np.ndarray, reference: np.ndarray, with_ssim: bool = True) -> Dict[str, Optional[float]]:
    """Errors of a normalized NCHW output against the reference, raw and as uint8 images
    (``ssim`` is None unless ``with_ssim``: it needs scikit-image and time at large sizes)."""
    if output.shape != reference.shape:
        raise CheckError(f"output shape {output.shape} differs from the reference {reference.shape}")
    diff = np.abs(output.astype(np.float64) - reference.astype(np.float64))
    got, want = denormalize(output), denormalize(reference)
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()), "psnr_db": psnr(got, want, 255.0),
            "range_psnr_db": psnr(output, reference, float(reference.max() - reference.min())),
            "ssim": ssim(got, want) if with_ssim else None}


def kernel_metrics(output: Mapping[str, np.ndarray], reference: Mapping[str, np.ndarray]) -> Dict[str, float]:
    """Max and mean abs error over all kernel tensors (same names required)."""
    if set(output) != set(reference):
        raise CheckError(f"kernel names differ: {sorted(set(output) ^ set(reference))}")
    diffs = [np.abs(output[n].astype(np.float64) - reference[n].astype(np.float64)).ravel() for n in reference]
    joined = np.concatenate(diffs)
    return {"max_abs": float(joined.max()), "mean_abs": float(joined.mean())}
