#!/usr/bin/env python3
"""Time several exports against each other on one machine, interleaved, end to end.

    .venv/bin/python scripts/time-exports.py NAME=EXPORT_DIR [NAME=EXPORT_DIR ...] [--size 512]
        [--rounds 5] [--runs 4] [--threads 2] [--backend onnxruntime]

Each export runs through the runtime Stylizer (pre- and post-processing included) on one sample
photo with a cached style; the exports take turns, ``--runs`` frames each per round, so every
ratio compares the same minutes of the machine. Prints a Markdown table of medians and ranges.
For what `infusionnet bench` cannot vary, e.g. INT8 exports with different --int8-keep-float.
"""
import argparse

from infusionnet.benchmarks.timing import interleaved, ratio_table
from infusionnet.runtime import samples
from infusionnet.runtime.images import resize_array
from infusionnet.runtime.stylizer import Stylizer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("exports", nargs="+", metavar="NAME=EXPORT_DIR")
    parser.add_argument("--size", type=int, default=512, help="square frame size (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=4, help="frames per export and round")
    parser.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads")
    parser.add_argument("--backend", default="onnxruntime", choices=("onnxruntime", "openvino"))
    args = parser.parse_args()
    pairs = [spec.split("=", 1) for spec in args.exports]
    if any(len(pair) != 2 for pair in pairs):
        parser.error("exports are NAME=EXPORT_DIR")
    frame = resize_array(samples.load_sample("astronaut"), args.size, args.size)
    style = samples.load_sample("hubble_deep_field")
    options = {"intra_op_threads": args.threads} if args.backend == "onnxruntime" else {"threads": args.threads}
    stylizers = {}
    for name, directory in pairs:
        stylizer = Stylizer(directory, backend=args.backend, **options).open()
        if stylizer.graph_kind != "baked":  # a baked export has its style built in
            stylizer.set_style(style)
        stylizers[name] = stylizer
    steps = {name: (lambda stylizer=stylizer: stylizer.stylize(frame)) for name, stylizer in stylizers.items()}
    times = interleaved(steps, rounds=args.rounds, runs=args.runs)
    print("\n".join(ratio_table(f"export ({args.size}x{args.size}, {args.backend}, {args.threads} threads)", times)))
    for stylizer in stylizers.values():
        stylizer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
