"""`infusionnet check`: an exported form against the PyTorch FP32 model, on the same inputs.

The candidate (ONNX Runtime, OpenVINO or TensorRT on an export/engine directory, or PyTorch
itself at FP16) and the reference (the PyTorch FP32 model the export came from, found through
the manifest) are handed to the accuracy comparator (``runtime.compare``), which runs them on
the same inputs (random images and the built-in sample images, at the export's size, and for
dynamic-size graphs at several sizes: a TensorRT engine's profile min, opt and max) and judges
every stylized image against the floors of the precision that ran (``runtime.floors``,
configurable). Export verification runs the same comparator (``export/verify.py``).
"""
import argparse
import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence, Tuple

from infusionnet.export.calibration import image_cases
from infusionnet.runtime.compare import Comparator, check_sizes, print_report
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import OutputLocationError, atomic_path, check_output_location
from infusionnet.runtime.floors import FLOORS, floors_for, load_floors_file
from infusionnet.runtime.lazy import INSTALL_HINTS, lazy_import, load
from infusionnet.runtime.manifest import FRAME_ROLES
from infusionnet.runtime.model_choice import untrained_seed
from infusionnet.runtime.sizes import parse_content_sizes
from infusionnet.runtime.stylizer import make_backends, open_model_dir

from .backend_args import add_backend_argument
from .options import SIZES_HELP

# The reference is the PyTorch model, whatever runs the export: torch is needed when a check runs.
torch = lazy_import("torch")
torch_backend = lazy_import("infusionnet.models.torch_backend")
rich_console = lazy_import("rich.console")  # the report's: not for --help

# What the floors table's precisions are, in the help.
FLOOR_NOTES = {"fp16": "(PSNR: the lower of uint8 PSNR and range PSNR)",
               "bf16": "(OpenVINO computing an FP32 export in BF16)"}

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

{floors}

OpenVINO's floors follow the precision it actually ran (read back from the compiled model), not
the export's: its default on CPUs with BF16 computes FP32 graphs in BF16.

Exit status: 0 when every floor is met, 1 when one is missed, 2 for bad arguments.
""".format(floors="\n".join(f"  {precision:6} {floors.describe():34}{FLOOR_NOTES.get(precision, '')}".rstrip()
                            for precision, floors in FLOORS.items()))

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
    try:
        load(torch)  # loaded now anyway, for the reference
    except ImportError:
        raise InfusionNetError(f"`infusionnet check` always needs torch for the PyTorch FP32 reference (also with "
                               f"--backend {backend}), and it is not installed: {INSTALL_HINTS['torch']}; on a "
                               "torch-free board, run check on a machine with torch, or use `infusionnet video "
                               "--benchmark` to time the export alone") from None


def json_path(args) -> Path:
    """Where the results go, checked before the comparison runs (a read-only export is common)."""
    path = Path(args.json) if args.json else Path(args.model_dir) / f"check-{args.backend}.json"
    try:
        return check_output_location(path)
    except OutputLocationError as error:
        if args.json:
            raise
        raise OutputLocationError(f"{error}; pass --json FILE to write the results elsewhere") from None


def run(args) -> int:
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
    floors_file = load_floors_file(args.floors) if args.floors else None
    path = json_path(args)
    with rich_console.Console(stderr=True).status(f"checking {args.model_dir} ({args.backend}) against PyTorch ..."):
        report = run_check(args.model_dir, args.backend, args.checkpoint, sizes, args.samples, overrides, floors_file,
                           reference_device=args.device, **backend_options(args))
    print_report(report, rich_console.Console(highlight=False))
    write_report(report, path, args.model_dir, args.backend)
    missed = sum(not row.passed for row in report.rows)
    print(f"check {'passed' if report.passed else f'FAILED: {missed} rows missed a floor'}; results in {path}")
    return 0 if report.passed else 1


def run_check(model_dir, backend: str = "onnxruntime", checkpoint=None,
              sizes: Optional[Sequence[Tuple[int, int]]] = None, samples: int = 1,
              floor_overrides: Optional[Mapping[str, Any]] = None,
              floors_file: Optional[Mapping[str, Mapping[str, Any]]] = None, reference_device: str = "cpu",
              log=None, **options):
    """Compare ``backend`` on ``model_dir`` with the PyTorch FP32 model; options go to the backend.
    Returns the comparator's ``Report``.

    Floors: the precision's defaults, then ``floors_file[precision]``, then ``floor_overrides``.
    """
    load(torch_backend)  # the reference, and it registers --backend torch with the runtime
    kind, manifest, index = open_model_dir(model_dir)
    if backend == "torch":
        precision = "fp16" if options.get("fp16") else "fp32"
    else:
        precision = index.get("precision", manifest.precision) if kind == "tensorrt" else manifest.precision
    candidates = make_backends(model_dir, backend, checkpoint, **options)
    model = torch_backend.reference_model(manifest, checkpoint)
    references = {}
    for role, graph in manifest.graphs.items():
        extra = {"baked_style": torch_backend.baked_style(manifest)} if role == "baked" else {}
        references[role] = torch_backend.TorchBackend.from_graph(graph, model, device=reference_device, **extra)
    profile_hw = None
    frames_role = FRAME_ROLES[manifest.graph_kind]
    limits = candidates[frames_role].profile()
    if limits and manifest.dynamic_size:
        shapes = limits["content"]
        profile_hw = tuple((s[2], s[3]) for s in (shapes.min, shapes.opt, shapes.max))
    content_sizes = check_sizes(manifest.content_size, manifest.dynamic_size, profile_hw, sizes)
    # Its own seed (export verification uses 20240): check's random images stay what they were.
    cases = image_cases(manifest.batch, manifest.style_size, content_sizes, samples, seed=20250)
    with ExitStack() as stack:
        for item in list(candidates.values()) + list(references.values()):
            stack.enter_context(item)
        precision = ran_precision(candidates[frames_role], precision)
        overrides = dict((floors_file or {}).get(precision, {}))
        overrides.update(floor_overrides or {})
        comparator = Comparator(precision, floors_for(precision, overrides), ssim=True)
        report = comparator.run(candidates, references, cases, log)
    report.reference += " FP32"
    if untrained_seed(manifest.checkpoint_sha256) is not None:
        report.notes.append("untrained network (--checkpoint untrained): outputs are nearly flat, so uint8 "
                            "PSNR/SSIM say little; range PSNR and max abs carry the signal")
    return report


def ran_precision(candidate, exported: str) -> str:
    """The precision the candidate computed in: the export's, except where the backend chose a
    lower one itself (OpenVINO runs FP32 graphs in BF16 on CPUs that have it, by default)."""
    computed = getattr(candidate, "compute_precision", None)
    if exported == "fp32" and computed in FLOORS:
        return computed
    return exported


def write_report(report, path, model_dir, backend: str) -> None:
    """The report as JSON, after what was checked with what."""
    data = dict({"model_dir": str(model_dir), "backend": backend}, **report.to_dict())
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
