"""`infusionnet bench`: one table of backends x precisions x sizes, with files to keep."""
import argparse
import shlex
import sys
from pathlib import Path

from infusionnet.benchmarks import runner
from infusionnet.benchmarks.peak import best_peaks, measure_peaks
from infusionnet.runtime.fileio import check_output_location
from infusionnet.runtime.lazy import lazy_import
from infusionnet.runtime.sizes import parse_content_sizes

from .options import SIZES_HELP, add_model_arguments

# What only a run needs (the report with its tables and plots, the machine's description, the
# console): imported when it starts, not for --help.
machine = lazy_import("infusionnet.benchmarks.machine")
report = lazy_import("infusionnet.benchmarks.report")
rich_console = lazy_import("rich.console")
rich_markup = lazy_import("rich.markup")
rich_progress = lazy_import("rich.progress")

DESCRIPTION = """\
Benchmark latency, throughput, memory and accuracy across backends, precisions and resolutions.

Each size gets a reference row (the authors' test path: PyTorch eager FP32, AdaConv looped over
the batch, the style encoded every frame); every other row shows its speed-up over it, so results
compare across machines. Rows that cannot run here are listed as skipped with the reason.

--rounds N times the rows of each size interleaved (A B C, A B C, ...: N rounds of --iters runs or
--seconds per row) so that every ratio compares the same minutes of a machine whose other load
drifts; the speed-up is then the median of the per-round ratios, shown with their spread.
The machine's peak matrix throughput per precision is measured first (short GEMM runs: numpy
FP32, ONNX Runtime INT8, OpenVINO BF16 where the CPU has it) and each row shows its share of
the peak for the precision it ran in. OpenVINO rows say which precision actually ran
(fp32>bf16: an FP32 graph that OpenVINO's defaults computed in BF16).
Writes results.json (with the machine description), results.csv, two PNG plots and report.md.
"""

EPILOG = """\
modes:
  cached-style  the style is encoded once, frames run only the content graph (real-time use)
  full          style and content graphs run for every frame

examples:
  infusionnet bench -o runs/bench                                  # torch + onnxruntime, 256 and 512
  infusionnet bench --backends onnxruntime --precisions fp32,int8 --sizes 512 --threads 2 -o runs/b
  infusionnet bench --backends torch,tensorrt --precisions fp32,fp16 --device cuda --sizes 512,720p,1080p -o runs/gpu
  infusionnet bench --compare benchmarks/results/cpu/results.json -o runs/again
  infusionnet bench --backends torch,onnxruntime,openvino --precisions fp32,int8 --sizes 512,720p \
      --rounds 5 --seconds 3 -o runs/cpu                           # interleaved, with the spread
"""


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="benchmark backends x precisions x sizes", description=DESCRIPTION,
                                   epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", nargs="+", default="torch,onnxruntime,tensorrt,openvino", metavar="NAME",
                        help="torch, onnxruntime, tensorrt, openvino; comma or space separated (default: %(default)s)")
    parser.add_argument("--precisions", nargs="+", default="fp32,fp16,int8", metavar="NAME",
                        help="fp32, fp16, int8; comma or space separated (default: %(default)s)")
    parser.add_argument("--sizes", nargs="+", default="256,512", metavar="SIZE",
                        help=SIZES_HELP + " (default: %(default)s)")
    parser.add_argument("--mode", choices=runner.MODES, default="cached-style", help="see below")
    parser.add_argument("--batch", type=int, default=1, help="frames per run (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs per row (default: %(default)s)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--iters", type=int, help="timed runs per row")
    group.add_argument("--seconds", type=float, default=3.0,
                       help="timed seconds per row, or per row and round with --rounds (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="time the rows of each size interleaved in this many rounds, the CPU's peak measured "
                             "in each too (default: %(default)s: one row after another, the peak measured once)")
    parser.add_argument("--no-peak", action="store_true", help="skip measuring the CPU's peak (no share of peak)")
    parser.add_argument("--threads", type=int, help="CPU threads for torch and ONNX Runtime (default: library default)")
    parser.add_argument("--style-size", type=int, default=256, help="style image size (default: %(default)s)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="device of the torch rows")
    add_model_arguments(parser, seed=False)
    parser.add_argument("--no-reference", action="store_true", help="skip the reference rows (no speed-ups)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots (no matplotlib needed)")
    parser.add_argument("--compare", metavar="OLD_JSON", help="print the difference against an earlier results.json")
    parser.add_argument("--keep-exports", action="store_true", help="keep the ONNX exports in OUTPUT/exports")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="folder for results and plots")
    parser.set_defaults(func=run)


def run(args) -> int:
    check_output_location(args.output, directory=True)  # before minutes of measuring

    # A wide console even when piped: the table is the point of the command.
    console = rich_console.Console(stderr=False, width=None if sys.stdout.isatty() else 160)
    old = report.load_results(Path(args.compare)) if args.compare else None
    if args.batch < 1:
        raise runner.BenchError("--batch must be at least 1")
    if args.rounds < 1:
        raise runner.BenchError("--rounds must be at least 1")
    config = runner.BenchConfig(
        backends=runner.parse_list(args.backends, runner.BACKENDS, "backend"),
        precisions=runner.parse_list(args.precisions, runner.PRECISIONS, "precision"),
        sizes=parse_content_sizes(args.sizes, "--sizes", runner.BenchError), mode=args.mode, batch=args.batch,
        warmup=args.warmup, iterations=args.iters, seconds=None if args.iters else args.seconds, threads=args.threads,
        checkpoint=args.checkpoint, variant=args.variant, style_size=args.style_size, device=args.device,
        reference=not args.no_reference, rounds=args.rounds,
        workdir=str(Path(args.output) / "exports") if args.keep_exports else None)

    description = machine.describe_machine()
    # Interleaved rounds measure the peaks in every round, beside the rows (benchmarks.peak says
    # why); a sequential run measures them once, here.
    peak_log = [] if not args.no_peak and config.rounds > 1 else None
    if not args.no_peak and peak_log is None:
        with rich_console.Console(stderr=True).status("measuring this CPU's peak GEMM throughput per precision ..."):
            description["peaks"] = measure_peaks(args.threads)
    total = len(config.sizes) * (len(runner.plan_rows(config)) + 2 * int(config.reference))
    with rich_progress.Progress(rich_progress.TextColumn("[bold]bench"), rich_progress.BarColumn(),
                                rich_progress.MofNCompleteColumn(), rich_progress.TimeElapsedColumn(),
                                rich_progress.TextColumn("{task.description}"),
                                console=rich_console.Console(stderr=True),
                                transient=not sys.stderr.isatty()) as progress:
        task = progress.add_task("", total=total)

        def step(text):
            progress.update(task, description=text)
            progress.advance(task)

        rows = runner.run_benchmark(config, progress=step, peak_log=peak_log)
    if peak_log:
        description["peaks"] = best_peaks(peak_log)

    report.add_speedups(rows)
    report.add_peak_shares(rows, description.get("peaks") or {})
    output = Path(args.output)
    paths = report.write_results(output, description, config.settings(), rows)
    plots = [] if args.no_plots else report.write_plots(output, rows)
    command = "infusionnet bench " + " ".join(shlex.quote(a) for a in args.argv)
    report.write_markdown(output, description, config.settings(), rows, plots, command)
    console.print(report.results_table(rows))
    for row in rows:
        if row["status"] != "ok":
            console.print(f"[yellow]{row['status']}[/] {row['backend']} {row['precision']} {row['size']}: "
                          f"{rich_markup.escape(row['reason'])}")
    if old is not None:
        console.print(report.compare_table(old, rows))
    console.print(f"wrote {paths['json'].name}, {paths['csv'].name}, "
                  f"{''.join(p.name + ', ' for p in plots)}report.md to {output}/")
    return 0
