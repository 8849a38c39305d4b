"""ImageNet normalization: uint8 RGB images <-> the float32 NCHW tensors networks take."""
import numpy as np

from .errors import ImageError

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)

_MEAN = np.array(MEAN, np.float32)
_STD = np.array(STD, np.float32)
_SCALE = (1.0 / (255.0 * _STD)).astype(np.float32)   # v / 255 / std ...
_BIAS = (-_MEAN / _STD).astype(np.float32)            # ... - mean / std


def normalize(rgb: np.ndarray) -> np.ndarray:
    """uint8 HxWx3 or NxHxWx3 RGB -> float32 NCHW, (v / 255 - MEAN) / STD (HxWx3 gives N=1).

    The channel transpose happens while writing the output: one multiply into a fresh NCHW
    array and one in-place add, no other temporaries.
    """
    rgb = np.asarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim not in (3, 4) or rgb.shape[-1] != 3:
        raise ImageError(f"normalize expects uint8 HxWx3 or NxHxWx3 RGB, got {rgb.dtype} {rgb.shape}")
    batch = rgb[np.newaxis] if rgb.ndim == 3 else rgb
    n, h, w, _ = batch.shape
    out = np.empty((n, 3, h, w), np.float32)
    np.multiply(batch.transpose(0, 3, 1, 2), _SCALE[:, None, None], out=out)
    out += _BIAS[:, None, None]
    return out


def denormalize(x: np.ndarray) -> np.ndarray:
    """float NCHW (or CHW) -> contiguous uint8 NHWC (or HWC) RGB.

    x * STD + MEAN, clipped to [0, 1] (NaN -> 0), times 255, rounded half to even (np.rint), so
    denormalize(normalize(rgb)) == rgb exactly. Any float dtype (FP16 outputs) is accepted.
    """
    x = np.asarray(x)
    if x.dtype.kind != "f" or x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ImageError(f"denormalize expects float NCHW or CHW with 3 channels, got {x.dtype} {x.shape}")
    batch = x[np.newaxis] if x.ndim == 3 else x
    n, _, h, w = batch.shape
    out = np.empty((n, h, w, 3), np.float32)
    np.multiply(batch.transpose(0, 2, 3, 1), _STD, out=out)
    out += _MEAN
    np.fmax(out, 0.0, out=out)  # fmax/fmin (unlike clip) also send NaN to 0
    np.fmin(out, 1.0, out=out)
    out *= 255.0
    np.rint(out, out=out)
    result = out.astype(np.uint8)
    return result[0] if x.ndim == 3 else result


class NonFiniteOutputError(ImageError):
    """A network output holds NaN or Inf: it would be written as black or white, silently wrong."""


def denormalize_output(x: np.ndarray, what: str = "the network's output") -> np.ndarray:
    """``denormalize`` for an output that is about to be written or shown: NaN or Inf refused.

    ``denormalize`` maps NaN to black and Inf to white, which is right for comparing outputs
    (a metric then shows the damage) but would write a wrong image with exit status 0.
    """
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(finite.size - np.count_nonzero(finite))
        raise NonFiniteOutputError(f"{what} has {bad} NaN/Inf values of {finite.size}; nothing was written "
                                   "(a damaged graph or engine, or FP16 overflow: run `infusionnet check` on it)")
    return denormalize(x)
