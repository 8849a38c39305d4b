"""What an exported form must reach against its FP32 reference: the one table of floors.

Export verification (``export onnx``), ``infusionnet check`` and the comparator that both run
(``runtime.compare``) read their limits here, per precision:

* ``max_abs``: the largest abs error allowed in normalized units (FP32: the graph must *be* the
  model, up to float reordering);
* ``min_psnr_db``: the lowest PSNR allowed, applied to the lower of uint8 PSNR and range PSNR
  (see ``runtime.metrics``: an untrained network's nearly flat output makes uint8 PSNR say
  little);
* ``min_ssim``: the lowest SSIM of the uint8 images (``check`` only; export verification does not
  measure SSIM).

Floors apply to the stylized image; kernels only inform, except that export verification holds
an FP32 style graph's kernels to ``max_abs`` too (``Comparator(judge_kernels=True)``).
"""
import json
from dataclasses import asdict, dataclass
from typing import Any, Dict, Mapping, Optional

from .errors import CheckError


@dataclass
class Floors:
    """What a precision must reach on every stylized image; None = not checked."""
    max_abs: Optional[float] = None
    min_psnr_db: Optional[float] = None
    min_ssim: Optional[float] = None

    def describe(self, image: bool = True) -> str:
        """"max abs <= 0.001, SSIM >= 0.99"; ``image=False``: only what applies to kernels (max abs)."""
        parts = [f"max abs <= {self.max_abs:g}" if self.max_abs is not None else "",
                 f"PSNR >= {self.min_psnr_db:g} dB" if self.min_psnr_db is not None and image else "",
                 f"SSIM >= {self.min_ssim:g}" if self.min_ssim is not None and image else ""]
        return ", ".join(p for p in parts if p) or "none"


# Derived from the bundled default model on real photographs (scripts/measure-accuracy.sh:
# the sample photos x textures and random images at 512x512 and 1280x720, worst image, against
# PyTorch FP32; raw results in benchmarks/results/intel-xeon-amx-2cores/accuracy/). Each floor
# sits below the worst image of the healthy paths of its precision by a margin for other photos
# and checkpoints, so that a broken export (a wrong cast, a bad range, a missed kernel) fails
# while a sound one passes:
# - FP32 by max abs: measured 8.9e-5 (3,600-step model), 2e-4 (4,900-step), 1.9e-4 (6,400-step)
#   and 1.2e-4 (7,700-step; float reordering only); the floor is 5x the largest.
# - FP16: worst 66.6 dB (6,400-step), 66.1 dB (7,700-step), SSIM 1.000 -> 45 dB, 0.99 (a wrong
#   cast lands far below 40 dB).
# - BF16 (OpenVINO's default for FP32 graphs on CPUs with AMX/AVX-512 BF16: 8 mantissa bits):
#   worst 50.4 dB (6,400-step), 49.0 dB (7,700-step), SSIM 0.997 -> 40 dB, 0.99.
# - INT8: the healthy INT8 form of the default model keeps its most sensitive layers in float
#   (benchmarks/int8/default-model-*-keep-float.txt) and, like every INT8 export, its style graph
#   in FP32; so kept, the 7,700-step model is worst at 42.1 dB (random images) and SSIM 0.985
#   (photos), the 6,400-step model at 41.2 dB and 0.983, the 4,900-step model's lists (style
#   graph in INT8) at 35.9 dB and 0.954, the 3,600-step model's at 33.6 dB and 0.931 -> 28 dB,
#   0.90. Fully quantized, on the 7,700-step model, the TensorRT layout (29.7 dB, SSIM 0.864 on
#   photos), the CPU layout (27.8 dB on random images, SSIM 0.817 on photos) and NNCF's INT8
#   (23.2 dB, 0.711) fall below: their noise is visible, and `check` says so.
FLOORS = {
    "fp32": Floors(max_abs=1e-3, min_ssim=0.99),
    "fp16": Floors(min_psnr_db=45.0, min_ssim=0.99),
    "int8": Floors(min_psnr_db=28.0, min_ssim=0.90),
    "bf16": Floors(min_psnr_db=40.0, min_ssim=0.99),
}


def floors_for(precision: str, overrides: Optional[Mapping[str, Any]] = None) -> Floors:
    """The floors of ``precision`` with ``overrides`` (a dict of Floors fields; None drops one) applied."""
    if precision not in FLOORS:
        raise CheckError(f"no floors for precision {precision!r} (known: {', '.join(FLOORS)})")
    values = asdict(FLOORS[precision])
    for key, value in (overrides or {}).items():
        if key not in values:
            raise CheckError(f"unknown floor {key!r}: use {', '.join(values)}")
        values[key] = None if value is None else float(value)
    return Floors(**values)


def load_floors_file(path) -> Dict[str, Dict[str, Any]]:
    """``{"fp16": {"min_psnr_db": 38}, ...}`` from a JSON file."""
    try:
        with open(str(path)) as handle:
            data = json.load(handle)
    except (OSError, ValueError) as error:
        raise CheckError(f"--floors {path}: cannot read JSON ({error})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise CheckError(f"--floors {path}: expected {{precision: {{floor: value}}}}, e.g. "
                         '{"fp16": {"min_psnr_db": 38, "min_ssim": 0.97}}')
    return data
