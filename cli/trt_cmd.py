"""`infusionnet export trt`: TensorRT engines from an ONNX export directory.

``add_parser(commands)`` adds ``trt`` to the ``export`` command's subparsers (cli/export_cmd.py
calls it); ``run(args)`` builds. Nothing here imports TensorRT until ``run``.
"""
import argparse
import json
from pathlib import Path

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import check_output_location
from infusionnet.runtime.lazy import lazy_import
from infusionnet.runtime.manifest import PRECISIONS, Manifest
from infusionnet.runtime.sizes import CONTENT_SIZE_HELP, parse_content_size
from infusionnet.runtime.trt_plan import PlanError

trt_build = lazy_import("infusionnet.export.trt_build")  # the builder, when `export trt` runs (not for --help)

DESCRIPTION = """\
Build one TensorRT engine per graph of an ONNX export directory (full, split or baked), with a
sidecar JSON beside each (TensorRT version, GPU, precision, tensors, profiles, ONNX sha256) and
engines.json. Run it on the machine that will use the engines: an engine only loads with the
same TensorRT release on the same GPU architecture, and the runtime refuses a mismatch with the
command to rebuild.

precision:
  fp32   plain FP32 (TF32 off)
  fp16   FP16 kernels; normalization and reductions pinned to FP32 (layer precision constraints)
  int8   --int8-mode explicit (default): the QDQ graphs of `export onnx --precision int8`
         --int8-mode implicit: calibrate an FP32 export here with the entropy calibrator
         (TensorRT 8.x; deprecated in 10) on --calibration DIR or the built-in samples

Dynamic-size exports get one optimization profile from --min/--opt/--max (HxW, multiples of 8;
opt defaults to the export size, min and max to opt). Static exports get their fixed shape.
"""

EPILOG = """\
examples:
  infusionnet export trt --onnx exports/split --precision fp16 -o engines/split-fp16
  infusionnet export trt --onnx exports/dyn --precision fp16 --min 256x256 --opt 480x640 \\
      --max 720x1280 --timing-cache trt.cache -o engines/dyn-fp16
  infusionnet export trt --onnx exports/baked-int8 --precision int8 -o engines/baked-int8
  infusionnet export trt --onnx exports/baked --precision int8 --int8-mode implicit \\
      --calibration photos/ --calibration-cache calib.cache -o engines/baked-int8-implicit
  infusionnet export trt --onnx exports/baked --precision fp16 --dla-core 0 -o engines/dla   # Orin
then: infusionnet check engines/split-fp16 --backend tensorrt
"""


def add_parser(commands) -> argparse.ArgumentParser:
    p = commands.add_parser("trt", help="build TensorRT engines from an ONNX export directory",
                            description=DESCRIPTION, epilog=EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--onnx", required=True, metavar="DIR", help="ONNX export directory (with manifest.json)")
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="engine directory to write")
    p.add_argument("--precision", choices=PRECISIONS, default="fp16",
                   help="engine precision (default: %(default)s)")
    p.add_argument("--int8-mode", choices=("explicit", "implicit"), default="explicit",
                   help="INT8 from QDQ graphs, or calibrated here (TensorRT 8.x) (default: %(default)s)")
    p.add_argument("--calibration", metavar="DIR", help="implicit INT8: calibration images (default: samples)")
    p.add_argument("--calibration-batches", type=int, default=32, metavar="N",
                   help="implicit INT8: at most N calibration batches (default: %(default)s)")
    p.add_argument("--calibration-cache", metavar="FILE",
                   help="implicit INT8: reuse (or write) this calibration cache for reproducible rebuilds")
    p.add_argument("--workspace", type=int, metavar="MB", help="builder workspace limit in MB")
    p.add_argument("--min", metavar="SIZE", help="smallest content size (dynamic exports): " + CONTENT_SIZE_HELP)
    p.add_argument("--opt", metavar="SIZE", help="size to optimize for (dynamic exports; default: export size)")
    p.add_argument("--max", metavar="SIZE", help="largest content size (dynamic exports)")
    p.add_argument("--timing-cache", metavar="FILE", help="read and update this timing cache (faster rebuilds)")
    p.add_argument("--dla-core", type=int, metavar="N", help="run on DLA core N with GPU fallback (Jetson Orin)")
    p.add_argument("--opt-level", type=int, metavar="N",
                   help="builder optimization level 0..5 (TensorRT 8.6+; default 3)")
    p.add_argument("--dry-run", action="store_true", help="print what would be built, build nothing")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.set_defaults(func=run)
    return p


def options_from_args(args):
    def hw(text, flag):
        return parse_content_size(text, flag, PlanError) if text else None

    return trt_build.BuildOptions(
        precision=args.precision, int8_mode=args.int8_mode, calibration=args.calibration,
        calibration_batches=args.calibration_batches, calibration_cache=args.calibration_cache,
        workspace_mb=args.workspace, min_hw=hw(args.min, "--min"), opt_hw=hw(args.opt, "--opt"),
        max_hw=hw(args.max, "--max"), timing_cache=args.timing_cache, dla_core=args.dla_core,
        opt_level=args.opt_level)


def run(args) -> int:
    options = options_from_args(args)
    if args.calibration and not Path(args.calibration).is_dir():
        raise InfusionNetError(f"--calibration {args.calibration}: no such folder")
    if args.dry_run:
        print(json.dumps(trt_build.describe_plan(trt_build.plan_builds(Manifest.load(args.onnx), options)), indent=2))
        return 0
    if Path(args.output).exists() and not args.overwrite:
        raise InfusionNetError(f"--output {args.output} already exists (pass --overwrite to replace it)")
    check_output_location(args.output, directory=True)
    output = trt_build.build_engines(args.onnx, args.output, options, overwrite=args.overwrite)
    print(f"wrote engines to {output}/; check them with: infusionnet check {output} --backend tensorrt")
    return 0
