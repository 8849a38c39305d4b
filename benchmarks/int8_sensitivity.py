"""Which convolutions cost INT8 its accuracy: quantize them one at a time, then keep the worst in
float until the content graph reaches a PSNR goal (and an SSIM goal, if given).

    python -m infusionnet.benchmarks.int8_sensitivity EXPORT_DIR --target cpu --size 512 -o sens.json

EXPORT_DIR is an FP32 split export (``export onnx --graph split --dynamic-size``). The content
graph's activation ranges are calibrated once (the built-in sample photos x textures, as the
export does); then

1. every quantizable node (static-weight convolutions; in the CPU layout also Pad, Add and
   LeakyRelu) is quantized alone, all others float: the PSNR of that graph
   against the FP32 graph (uint8 images of the sample pairs, the worst pair) is the layer's
   sensitivity;
2. the layers are kept in float in order of sensitivity, worst first, until the graph with
   everything else quantized reaches ``--goal`` dB and, with ``--ssim-goal``, that SSIM (both
   the worst pair's). PSNR weighs every pixel's error alike; SSIM reads local structure and
   contrast, which is where a viewer sees INT8's banding: at 35 dB this model's INT8 forms stood
   at SSIM 0.93-0.95, short of the 0.97 a viewer accepts.

The result names the layers to pass to ``export onnx --int8-keep-float``. ONNX Runtime runs every
graph on the CPU, so the figures hold for ONNX Runtime; TensorRT's INT8 kernels round the same
Q/DQ points, so the ranking carries over.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np
import onnx
import onnxruntime as ort

from infusionnet.export import calibration as calib
from infusionnet.export.precision import INT8_OPS_BY_TARGET, INT8_TARGETS, to_int8
from infusionnet.export.simplify import dynamic_weight_convs
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import atomic_path, check_output_location
from infusionnet.runtime.images import denormalize
from infusionnet.runtime.manifest import Manifest
from infusionnet.runtime.metrics import psnr, ssim
from infusionnet.runtime.ort_backend import UNFUSED_QDQ, fuses_qdq

DEFAULT_GOAL_DB = 35.0


class Score(NamedTuple):
    """A quantized graph against the FP32 graph: the worst pair's PSNR (dB) and SSIM."""
    psnr_db: float
    ssim: float

    def __str__(self) -> str:
        return f"{self.psnr_db:.2f} dB, SSIM {self.ssim:.4f}"


class Goal(NamedTuple):
    psnr_db: float
    ssim: Optional[float] = None

    def met(self, score: Score) -> bool:
        return score.psnr_db >= self.psnr_db and (self.ssim is None or score.ssim >= self.ssim)


def keep_until(ranking: Sequence[str], start: Score, goal: Goal, score_with_float: Callable[[List[str]], Score],
               log=print) -> Tuple[List[str], List[dict], Score]:
    """Keep layers of ``ranking`` (worst first) in float, one more at a time, until ``goal`` is
    met or nothing is left: (the kept layers, each step's score, the last score)."""
    kept, steps, current = [], [], start
    for name in ranking:
        if goal.met(current):
            break
        kept.append(name)
        current = score_with_float(kept)
        steps.append({"keep_float": name, "psnr_db": round(current.psnr_db, 2), "ssim": round(current.ssim, 4)})
        log(f"keep {name} in float: {current}")
    return kept, steps, current


def quantizable_nodes(model: onnx.ModelProto, target: str) -> List[str]:
    """Nodes the INT8 export quantizes for ``target``: static-weight convolutions, and for the CPU
    layout also Pad, Add, LeakyRelu (their activations get Q/DQ too) and the average pools (which
    that layout turns into convolutions of the same name)."""
    dynamic = {node.name for node in dynamic_weight_convs(model)}
    kinds = INT8_OPS_BY_TARGET[target] + (("AveragePool",) if target == "cpu" else ())  # pools become convs
    return [node.name for node in model.graph.node if node.op_type in kinds and node.name not in dynamic]


class ContentGraphProbe:
    """Runs quantized variants of one content graph against its FP32 outputs on fixed feeds."""

    def __init__(self, export_dir: Path, target: str, size: int, calibration_batches: int, scratch: Path):
        manifest = Manifest.load(export_dir)
        if manifest.graph_kind != "split" or manifest.precision != "fp32":
            raise SystemExit(f"error: {export_dir} must be an FP32 split export (it is {manifest.precision} "
                             f"{manifest.graph_kind})")
        self.ort, self.target, self.scratch = ort, target, scratch
        self.content_path = manifest.graph("content").path
        style = self._session(manifest.graph("style").path)
        self.reader = calib.sample_content_feeds(style, manifest.batch, (size, size), manifest.style_size,
                                                 limit=calibration_batches)
        self.feeds = list(self.reader)
        reference = self._session(self.content_path)
        self.expected = [self._image(reference, feed) for feed in self.feeds]
        self.cache = scratch / "ranges.json"
        self.model = onnx.load(str(self.content_path))

    def _session(self, path):
        options = self.ort.SessionOptions()
        options.log_severity_level = 3
        if not fuses_qdq(self.target):  # as the runtime runs this layout
            options.add_session_config_entry(*UNFUSED_QDQ)
        return self.ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @staticmethod
    def _image(session, feed) -> np.ndarray:
        return denormalize(session.run(["stylized"], feed)[0])  # uint8 NHWC: what a user sees

    def score_with_float(self, keep_float: Sequence[str]) -> Score:
        """Worst-pair PSNR and SSIM of the graph quantized except ``keep_float``."""
        target = self.scratch / "probe.onnx"
        to_int8(self.content_path, target, self.reader, int8_target=self.target, keep_float=keep_float,
                calibration_cache=self.cache)
        session = self._session(target)
        images = [(self._image(session, feed), expected) for feed, expected in zip(self.feeds, self.expected)]
        return Score(min(psnr(got, want, 255.0) for got, want in images),
                     min(ssim(got, want) for got, want in images))


def analyse(export_dir: Path, target: str, size: int, goal: Goal, calibration_batches: int = 8,
            log=print) -> dict:
    with tempfile.TemporaryDirectory(prefix="infusionnet-sensitivity-") as scratch:
        probe = ContentGraphProbe(export_dir, target, size, calibration_batches, Path(scratch))
        convs = quantizable_nodes(probe.model, target)
        everything = probe.score_with_float([])
        log(f"all {len(convs)} quantizable nodes in INT8: {everything}")
        alone = {}
        for index, name in enumerate(convs, 1):
            alone[name] = probe.score_with_float([c for c in convs if c != name])
            log(f"[{index}/{len(convs)}] only {name} in INT8: {alone[name]}")
        ranking = sorted(convs, key=lambda name: alone[name].psnr_db)
        kept, steps, current = keep_until(ranking, everything, goal, probe.score_with_float, log)
    return {"export": str(export_dir), "target": target, "size": size, "goal_db": goal.psnr_db,
            "goal_ssim": goal.ssim, "all_int8_psnr_db": round(everything.psnr_db, 2),
            "all_int8_ssim": round(everything.ssim, 4),
            "alone_psnr_db": {name: round(alone[name].psnr_db, 2) for name in ranking},
            "greedy": steps, "keep_float": kept, "final_psnr_db": round(current.psnr_db, 2),
            "final_ssim": round(current.ssim, 4), "reached_goal": goal.met(current)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infusionnet.benchmarks.int8_sensitivity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dir", type=Path, help="an FP32 split export with --dynamic-size")
    parser.add_argument("--target", choices=INT8_TARGETS, default="cpu", help="INT8 layout (default: %(default)s)")
    parser.add_argument("--size", type=int, default=512, help="square content size of the probe (default: %(default)s)")
    parser.add_argument("--goal", type=float, default=DEFAULT_GOAL_DB, help="PSNR goal in dB (default: %(default)s)")
    parser.add_argument("--ssim-goal", type=float, help="SSIM goal as well, e.g. 0.97 (default: PSNR only)")
    parser.add_argument("--calibration-batches", type=int, default=8)
    parser.add_argument("-o", "--output", type=Path, help="write the result as JSON")
    parser.add_argument("--keep-float-list", type=Path, metavar="TXT",
                        help="write the layers to keep in float, one per line under a comment that says how they "
                             "were found (the format of benchmarks/int8/*-keep-float.txt)")
    args = parser.parse_args(argv)
    try:
        for path in (args.output, args.keep_float_list):  # before minutes of quantizing
            if path:
                check_output_location(path)
        result = analyse(args.export_dir, args.target, args.size, Goal(args.goal, args.ssim_goal),
                         args.calibration_batches)
    except InfusionNetError as error:  # an unwritable output, a missing or damaged export
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(f"keep in float: {', '.join(result['keep_float']) or 'nothing'} -> {result['final_psnr_db']} dB, "
          f"SSIM {result['final_ssim']} (all INT8: {result['all_int8_psnr_db']} dB, SSIM {result['all_int8_ssim']})")
    if args.output:
        with atomic_path(args.output) as tmp:
            tmp.write_text(json.dumps(result, indent=2) + "\n")
    if args.keep_float_list:
        with atomic_path(args.keep_float_list) as tmp:
            tmp.write_text(keep_float_list(result, args.output))
    return 0 if result["reached_goal"] else 1


def keep_float_list(result: dict, raw: Optional[Path] = None) -> str:
    """The kept layers as a list file for ``export onnx --int8-keep-float $(grep -v '^#' FILE)``."""
    goal = f"{result['goal_db']:g} dB PSNR" + (f" and SSIM {result['goal_ssim']:g}" if result.get("goal_ssim") else "")
    reached = "reaches" if result["reached_goal"] else "does NOT reach"
    header = [f"# INT8 {result['target']} layout: {len(result['keep_float'])} layers kept in float so that the content graph",
              f"# {reached} {goal} against FP32 on the sample pairs ({result['final_psnr_db']} dB, SSIM "
              f"{result['final_ssim']}; all INT8: {result['all_int8_psnr_db']} dB, SSIM {result['all_int8_ssim']}).",
              f"# Found by python -m infusionnet.benchmarks.int8_sensitivity --target {result['target']} "
              f"--size {result['size']}" + (f" (raw result: {raw.name})" if raw else "") + ".",
              "# One ONNX node name per line, for `export onnx --int8-keep-float`. Derived for one model's weights:",
              "# rerun the analysis for another checkpoint."]
    return "\n".join(header + list(result["keep_float"])) + "\n"


if __name__ == "__main__":
    sys.exit(main())
