"""`infusionnet check`: accuracy of an export or engine directory against the PyTorch model."""
import argparse
from pathlib import Path

from infusionnet.runtime.errors import InfusionNetError

from .backend_args import add_backend_argument
from .options import SIZES_HELP

DESCRIPTION = """\
Run an exported form and the PyTorch FP32 model it came from on the same inputs, and compare.

MODEL_DIR is an ONNX export (manifest.json; --backend onnxruntime or openvino, or torch to check
PyTorch FP16) or a TensorRT engine directory (engines.json; --backend tensorrt). The reference model is
found through the manifest: untrained exports are rebuilt from their seed, the bundled default
model is found by itself, other checkpoints are named by --checkpoint (verified by sha256).

Inputs: random images and the built-in sample photos x textures at the export's size; dynamic
graphs also at a second size (TensorRT: the profile's opt, min and max), or at --sizes.
For each: max abs and mean abs error, PSNR and SSIM of the uint8 images and range PSNR (error
against the reference's own range); split exports also report the kernels. Every stylized image
must meet the precision's floors:

  fp32   max abs <= 1e-3, SSIM >= 0.99
  fp16   PSNR >= 40 dB, SSIM >= 0.97      (PSNR: the lower of uint8 PSNR and range PSNR)
  int8   PSNR >= 25 dB, SSIM >= 0.80
  bf16   PSNR >= 30 dB, SSIM >= 0.95      (OpenVINO computing an FP32 export in BF16)

OpenVINO's floors follow the precision it actually ran (read back from the compiled model), not
the export's: its default on CPUs with BF16 computes FP32 graphs in BF16.

Exit status: 0 when every floor is met, 1 when one is missed, 2 for bad arguments.
"""

EPILOG = """\
examples:
  infusionnet check exports/split                                  # ONNX Runtime, best provider
  infusionnet check engines/split-fp16 --backend tensorrt          # after `infusionnet export trt`
  infusionnet check exports/split --backend torch --fp16 --device cuda
  infusionnet check exports/dyn --sizes 256x256 480x640 --samples 3 --json results/check.json
  infusionnet check engines/int8 --backend tensorrt --min-psnr 30 --min-ssim 0.9
  infusionnet check exports/split --backend openvino --ov-precision fp32
  infusionnet check exports/split --floors floors.json    # {"fp16": {"min_psnr_db": 38}}
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "check", help="check an export or engine directory against the PyTorch model",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", metavar="MODEL_DIR", help="an ONNX export or TensorRT engine directory")
    add_backend_argument(parser, default="onnxruntime", help_text="what runs MODEL_DIR")
    parser.add_argument("--checkpoint", metavar="CKPT", help="the checkpoint the export came from (trained exports)")
    parser.add_argument("--sizes", nargs="+", metavar="SIZE", help=SIZES_HELP + "; to check (dynamic graphs)")
    parser.add_argument("--samples", type=int, default=1, metavar="N",
                        help="batches of sample photos x textures per size (default: %(default)s)")
    parser.add_argument("--floors", metavar="FILE", help="JSON of floors per precision, overriding the defaults")
    parser.add_argument("--max-abs", type=float, metavar="E", help="floor: largest max abs error allowed")
    parser.add_argument("--min-psnr", type=float, metavar="DB", help="floor: smallest PSNR allowed")
    parser.add_argument("--min-ssim", type=float, metavar="S", help="floor: smallest SSIM allowed")
    parser.add_argument("--json", metavar="FILE",
                        help="where to write the results (default: MODEL_DIR/check-BACKEND.json)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="torch device of the reference (and of --backend torch) (default: %(default)s)")
    parser.add_argument("--fp16", action="store_true", help="--backend torch: run the candidate in FP16")
    parser.add_argument("--provider", choices=("auto", "tensorrt", "cuda", "cpu"), default="auto",
                        help="--backend onnxruntime: execution provider (default: best available)")
    parser.add_argument("--threads", type=int, metavar="N", help="--backend onnxruntime / openvino: inference threads")
    parser.set_defaults(func=run)


def backend_options(args) -> dict:
    if args.backend == "onnxruntime":
        return {"provider": args.provider, "intra_op_threads": args.threads}
    if args.backend == "torch":
        return {"device": args.device, "fp16": args.fp16}
    if args.backend == "openvino":
        return {"precision": args.ov_precision, "threads": args.threads}
    return {}


def _require_torch(backend: str) -> None:
    """The reference is always the PyTorch model, whatever --backend runs the export."""
    from infusionnet.cli.main import OPTIONAL_PACKAGES

    try:
        import torch  # noqa: F401 - loaded now anyway, for the reference
    except ImportError:
        raise InfusionNetError(f"`infusionnet check` always needs torch for the PyTorch FP32 reference (also with "
                               f"--backend {backend}), and it is not installed: {OPTIONAL_PACKAGES['torch']}; on a "
                               "torch-free board, run check on a machine with torch, or use `infusionnet video "
                               "--benchmark` to time the export alone") from None


def json_path(args) -> Path:
    """Where the results go, checked before the comparison runs (a read-only export is common)."""
    from infusionnet.runtime.fileio import OutputLocationError, check_output_location

    path = Path(args.json) if args.json else Path(args.model_dir) / f"check-{args.backend}.json"
    try:
        return check_output_location(path)
    except OutputLocationError as error:
        if args.json:
            raise
        raise OutputLocationError(f"{error}; pass --json FILE to write the results elsewhere") from None


def run(args) -> int:
    from infusionnet.runtime.sizes import parse_content_sizes

    if args.samples < 0:
        raise InfusionNetError(f"--samples must be 0 or more, not {args.samples}")
    if args.fp16 and args.backend != "torch":
        raise InfusionNetError("--fp16 applies to --backend torch; ONNX and TensorRT precision comes from the export")
    if not Path(args.model_dir).is_dir():
        raise InfusionNetError(f"{args.model_dir} is not a directory (give an ONNX export or TensorRT engine directory)")
    _require_torch(args.backend)
    sizes = parse_content_sizes(args.sizes, "--sizes") if args.sizes else None
    overrides = {key: value for key, value in (("max_abs", args.max_abs), ("min_psnr_db", args.min_psnr),
                                               ("min_ssim", args.min_ssim)) if value is not None}

    from rich.console import Console

    from infusionnet.benchmarks.accuracy import load_floors_file, print_report, run_check, write_report

    floors_file = load_floors_file(args.floors) if args.floors else None
    path = json_path(args)
    with Console(stderr=True).status(f"checking {args.model_dir} ({args.backend}) against PyTorch ..."):
        report = run_check(args.model_dir, args.backend, args.checkpoint, sizes, args.samples, overrides, floors_file,
                           reference_device=args.device, **backend_options(args))
    print_report(report, Console(highlight=False))
    write_report(report, path)
    missed = sum(not row.passed for row in report.rows)
    print(f"check {'passed' if report.passed else f'FAILED: {missed} rows missed a floor'}; results in {path}")
    return 0 if report.passed else 1
