"""`infusionnet export`: `onnx` writes verified ONNX graphs; `check-trt` checks them for TensorRT."""
import argparse
from pathlib import Path

from infusionnet.export.calibration import CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.floors import FLOORS
from infusionnet.runtime.lazy import lazy_import, load
from infusionnet.runtime.manifest import GRAPH_KINDS, PRECISIONS
from infusionnet.runtime.sizes import CONTENT_SIZE_HELP, parse_size

from . import trt_cmd
from .options import add_model_arguments

# The export needs torch and onnx, the TensorRT rules checker onnx: imported when they run.
pipeline = lazy_import("infusionnet.export.pipeline")
verify = lazy_import("infusionnet.export.verify")
trt_compat = lazy_import("infusionnet.export.trt_compat")

DESCRIPTION = """\
Export the network to ONNX and check exported graphs for TensorRT.

  onnx       full, split (style + content) or style-baked graphs in FP32, FP16 or INT8 (QDQ),
             verified against PyTorch, with manifest.json
  check-trt  list what a TensorRT version's ONNX parser would reject or restrict in a graph
  trt        build TensorRT engines from an export directory (on the target machine)
"""

ONNX_DESCRIPTION = """\
Export InfusionNet / AesFA to ONNX graphs in an output directory with manifest.json.

graph kinds (--graph):
  full    one graph: content (B,3,H,W) + style (B,3,S,S) -> stylized
  split   style graph: style -> 18 kernel tensors; content graph: content + those kernels ->
          stylized. The real-time form: encode a style once, run only the content graph per frame.
  baked   the kernels of one --style-image folded in as constants: content -> stylized. Every
          AdaConv is a plain grouped Conv with constant weights (any TensorRT version, INT8).

The batch is fixed in the graphs (per-sample kernels are grouped convolutions over the batch);
--dynamic-size leaves the content height and width symbolic (multiples of 8), the style size
stays fixed. Every export is verified in ONNX Runtime against PyTorch on random and sample
images; if a graph is off (FP32: max abs > 1e-3; FP16/INT8: PSNR below the floor) the command
fails and writes nothing. The PSNR limit applies to the lower of the uint8-image PSNR and the
PSNR against the output's own range: an untrained network's output is nearly flat grey, so its
uint8 images often match exactly and only the range PSNR measures anything. Graphs are also
checked against the TensorRT 8.2/8.5/8.6/10 parser rules (see check-trt).

INT8 targets (--int8-target): "tensorrt" writes TensorRT's explicit quantization (symmetric INT8,
Q/DQ around convolutions), which ONNX Runtime also runs (with its Q/DQ unfused); "cpu" lays the
graph out for ONNX Runtime's CPU kernels (uint8 activations, 7-bit weights, reflect pads on
quantized data), about 1.5x faster there at the same accuracy, but TensorRT cannot build it;
"openvino" quantizes with NNCF for OpenVINO's CPU plugin (run it with --backend openvino; the
style graph and the encoder's stem stay FP32). 7-bit weights keep CPUs without VNNI exact (README:
INT8 on CPUs without VNNI).
"""

ONNX_EPILOG = """\
examples:
  infusionnet export onnx -o exports/demo                      # default model, split graphs
  infusionnet export onnx --checkpoint main.pth --graph split --content-size 512x512 -o exports/split
  infusionnet export onnx --checkpoint main.pth --graph baked --style-image sample:hubble_deep_field \\
      --precision int8 --calibration photos/ -o exports/baked-int8
  infusionnet export onnx --checkpoint main.pth --content-size 512x512 --precision int8 \\
      --int8-target cpu -o exports/cpu-int8            # fastest on a CPU with ONNX Runtime
  infusionnet export onnx --checkpoint main.pth --content-size 512x512 --precision int8 \
      --int8-target openvino -o exports/ov-int8        # NNCF INT8 for --backend openvino
  infusionnet export onnx --checkpoint main.pth --graph full --batch 2 --dynamic-size \\
      --precision fp16 -o exports/full-fp16
  infusionnet export onnx --checkpoint main.pth --graph baked --style-image art.jpg --opset 13 \\
      -o exports/nano                               # TensorRT 8.2 (Jetson Nano): baked, opset 13
"""

CHECK_DESCRIPTION = """\
Check ONNX graphs against the ONNX parser rules of one TensorRT version, without TensorRT:
unsupported operators, dynamic-weight convolutions before 8.5, reflect padding, normalization
parameters that are not constants, INT8 Q/DQ restrictions and more, each with its source.
Exits 1 when the version would reject a graph, 0 otherwise.
"""

CHECK_EPILOG = """\
examples:
  infusionnet export check-trt exports/split --trt 8.2      # will it run on a Jetson Nano?
  infusionnet export check-trt exports/baked/baked.onnx --trt 10
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("export", help="export to ONNX and TensorRT; check graphs for TensorRT",
                                   description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="export_command", metavar="FORMAT")
    parser.set_defaults(func=lambda args: _no_subcommand(parser))
    _register_onnx(commands)
    _register_check(commands)
    trt_cmd.add_parser(commands)  # `export trt` (TensorRT engines) is defined there


def _no_subcommand(parser) -> int:
    parser.print_help()
    return 2


def _register_onnx(commands) -> None:
    p = commands.add_parser("onnx", help="export verified ONNX graphs (full, split, baked; fp32/fp16/int8)",
                            description=ONNX_DESCRIPTION, epilog=ONNX_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--output", required=True, metavar="DIR", help="output directory (graphs + manifest.json)")
    add_model_arguments(p)
    p.add_argument("--graph", choices=tuple(GRAPH_KINDS), default="split",
                   help="which graphs to write (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, metavar="B", help="batch size, fixed in the graphs (default: 1)")
    p.add_argument("--content-size", default="256x256", metavar="SIZE",
                   help=f"content size: {CONTENT_SIZE_HELP} (with --dynamic-size: the size used for tracing "
                        "and verification) (default: %(default)s)")
    p.add_argument("--style-size", type=int, default=256, metavar="S",
                   help="square style size: infusionnet multiples of 32 (>= 96), aesfa multiples of 8 "
                        "(>= 24) (default: %(default)s)")
    p.add_argument("--style-image", metavar="IMG", help="style image for --graph baked: a path or sample:NAME")
    p.add_argument("--dynamic-size", action="store_true", help="symbolic content height and width")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="fp16: FP16 compute with FP32 I/O and normalization; int8: QDQ (default: %(default)s)")
    p.add_argument("--int8-target", choices=("tensorrt", "cpu", "openvino"), default=None,
                   help="what the INT8 graph is laid out for: tensorrt (explicit Q/DQ, also runs on ONNX "
                        "Runtime), cpu (ONNX Runtime CPU only, ~1.5x faster there) or openvino (NNCF, for "
                        "--backend openvino) (default: tensorrt)")
    p.add_argument("--calibration", metavar="DIR", help="INT8 calibration images (default: the built-in samples)")
    p.add_argument("--calibration-method", choices=CALIBRATION_METHODS, default=DEFAULT_CALIBRATION_METHOD,
                   help="INT8 calibration method (default: %(default)s)")
    p.add_argument("--calibration-batches", type=int, default=16, metavar="N",
                   help="use at most N batches of calibration images (default: %(default)s)")
    p.add_argument("--int8-keep-float", nargs="+", metavar="NODE",
                   help="static-weight layers (ONNX node names) to leave in float in an INT8 export: the ones "
                        "INT8 hurts most, as `python -m infusionnet.benchmarks.int8_sensitivity` finds them")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, 13..20 (TensorRT 8.2 needs 13) (default: %(default)s)")
    p.add_argument("--max-abs", type=float, default=FLOORS["fp32"].max_abs, metavar="E",
                   help="FP32 graphs fail verification above this max abs error (default: %(default)g)")
    p.add_argument("--fp16-min-psnr", type=float, default=FLOORS["fp16"].min_psnr_db, metavar="DB",
                   help="FP16 graphs fail verification below this PSNR (default: %(default)g)")
    p.add_argument("--int8-min-psnr", type=float, default=FLOORS["int8"].min_psnr_db, metavar="DB",
                   help="INT8 graphs fail verification below this PSNR (default: %(default)g)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output directory")
    p.set_defaults(func=run_onnx)


def _register_check(commands) -> None:
    p = commands.add_parser("check-trt", help="check ONNX graphs against a TensorRT version's parser rules",
                            description=CHECK_DESCRIPTION, epilog=CHECK_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("path", metavar="DIR_OR_ONNX", help="an export directory or an .onnx file")
    p.add_argument("--trt", required=True, metavar="VERSION", help="TensorRT version: 8.2, 8.5, 8.6, 10, 10.x")
    p.set_defaults(func=run_check)


def config_from_args(args):
    """The pipeline's ExportConfig from parsed arguments (validation happens in the pipeline)."""
    # The multiples of 8 are checked with the rest of the config, by the pipeline (the same rule
    # for configs built in code).
    content_size = parse_size(args.content_size, "--content-size", named=True)
    return pipeline.ExportConfig(
        output=Path(args.output), graph=args.graph, checkpoint=args.checkpoint, variant=args.variant,
        seed=args.seed, batch=args.batch, content_size=content_size,
        style_size=args.style_size, style_image=args.style_image, dynamic_size=args.dynamic_size,
        precision=args.precision, calibration=args.calibration, calibration_method=args.calibration_method,
        int8_target=args.int8_target,
        calibration_batches=args.calibration_batches, int8_keep_float=tuple(args.int8_keep_float or ()), opset=args.opset, overwrite=args.overwrite,
        tolerances=verify.Tolerances(args.max_abs, args.fp16_min_psnr, args.int8_min_psnr))


def run_onnx(args) -> int:
    pipeline.run_export(config_from_args(args))
    return 0


def run_check(args) -> int:
    try:
        main_check = load(trt_compat).main_check
    except ImportError as error:
        raise InfusionNetError(f"check-trt is not available: the TensorRT rules checker could not be "
                               f"loaded ({error})")
    return main_check(args)
