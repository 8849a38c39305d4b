#!/usr/bin/env python3
"""Do ONNX Runtime's fused INT8 kernels compute what an INT8 export's Q/DQ nodes say, on this CPU?

    .venv/bin/python scripts/compare-qdq-fusion.py FP32_EXPORT INT8_EXPORT [INT8_EXPORT ...] [--size 512]

Each export is a static split export at --size (`infusionnet export onnx --graph split
--content-size 512x512 [--precision int8 ...]`). The INT8 exports' content graphs run on the
sample pairs (built-in photos x textures, kernels from FP32_EXPORT's style graph) three ways:
with ONNX Runtime's Q/DQ fusion into integer kernels (what runs by default), unfused
(`session.disable_quant_qdq`: each Q/DQ node as written), and with no graph optimization at all.
Each is compared with FP32_EXPORT's content graph (worst PSNR and SSIM of the uint8 images) and
timed, interleaved. On x86 CPUs without VNNI, 8-bit weights saturate the fused kernels' int16
pair sums (README: INT8 on CPUs without VNNI): the fused column then falls below the others.
"""
import argparse
import sys
from pathlib import Path

import onnxruntime as ort

from infusionnet.benchmarks.machine import describe_machine
from infusionnet.benchmarks.timing import interleaved, ratio_table
from infusionnet.export import calibration as calib
from infusionnet.runtime.images import denormalize
from infusionnet.runtime.manifest import Manifest
from infusionnet.runtime.metrics import psnr, ssim
from infusionnet.runtime.ort_backend import UNFUSED_QDQ

# label -> (graph optimization level, session config entries)
WAYS = {
    "fused": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, ()),
    "unfused": (ort.GraphOptimizationLevel.ORT_ENABLE_ALL, (UNFUSED_QDQ,)),
    "unoptimized": (ort.GraphOptimizationLevel.ORT_DISABLE_ALL, ()),
}


def session(path: Path, level=ort.GraphOptimizationLevel.ORT_ENABLE_ALL, config=(), threads: int = 2):
    options = ort.SessionOptions()
    options.graph_optimization_level = level
    options.intra_op_num_threads = threads
    options.log_severity_level = 3
    for key, value in config:
        options.add_session_config_entry(key, value)
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("fp32", type=Path, help="FP32 split export (the reference)")
    parser.add_argument("int8", type=Path, nargs="+", help="INT8 split exports to compare")
    parser.add_argument("--size", type=int, default=512, help="content size of the exports (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=4, help="timing rounds (default: %(default)s)")
    args = parser.parse_args()
    for directory in [args.fp32] + args.int8:
        manifest = Manifest.load(directory)
        if manifest.graph_kind != "split" or tuple(manifest.content_size) != (args.size, args.size):
            print(f"error: {directory} is not a split export at {args.size}x{args.size}", file=sys.stderr)
            return 2
    style_size = Manifest.load(args.fp32).style_size
    style = session(Manifest.load(args.fp32).graph("style").path)
    feeds = list(calib.sample_content_feeds(style, 1, (args.size, args.size), style_size))
    description = calib.image_pairs(None)[2]
    reference = session(Manifest.load(args.fp32).graph("content").path)

    def images(graph):
        return [denormalize(graph.run(["stylized"], feed)[0]) for feed in feeds]

    expected = images(reference)
    machine = describe_machine()
    print(f"{machine['cpu']} ({', '.join(machine['cpu_features']) or 'no listed features'}), "
          f"onnxruntime {ort.__version__}; {len(feeds)} pairs of {description} at {args.size}x{args.size}\n")
    print("| export | way | worst PSNR dB | worst SSIM |\n|---|---|---|---|")
    steps = {}
    for directory in args.int8:
        path = Manifest.load(directory).graph("content").path
        for way, (level, config) in WAYS.items():
            graph = session(path, level, config)
            got = images(graph)
            print(f"| {directory.name} | {way} | {min(psnr(a, b, 255.0) for a, b in zip(got, expected)):.1f} | "
                  f"{min(ssim(a, b) for a, b in zip(got, expected)):.4f} |", flush=True)
            steps[f"{directory.name} {way}"] = lambda graph=graph: graph.run(["stylized"], feeds[0])
    print()
    print("\n".join(ratio_table(f"content graph, {args.size}x{args.size}, 2 threads",
                                interleaved(steps, rounds=args.rounds, runs=3))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
