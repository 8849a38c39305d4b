"""Which convolutions cost INT8 its accuracy: quantize them one at a time, then keep the worst in
float until the content graph reaches a PSNR goal.

    python -m infusionnet.benchmarks.int8_sensitivity EXPORT_DIR --target cpu --size 512 -o sens.json

EXPORT_DIR is an FP32 split export (``export onnx --graph split --dynamic-size``). The content
graph's activation ranges are calibrated once (the built-in sample photos x textures, as the
export does); then

1. every quantizable node (static-weight convolutions; in the CPU layout also Pad, Add and
   LeakyRelu) is quantized alone, all others float: the PSNR of that graph
   against the FP32 graph (uint8 images of the sample pairs, the worst pair) is the layer's
   sensitivity;
2. the layers are kept in float in order of sensitivity, worst first, until the graph with
   everything else quantized reaches ``--goal`` dB.

The result names the layers to pass to ``export onnx --int8-keep-float``. ONNX Runtime runs every
graph on the CPU, so the figures hold for ONNX Runtime; TensorRT's INT8 kernels round the same
Q/DQ points, so the ranking carries over.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import onnx
import onnxruntime as ort

from infusionnet.export import calibration as calib
from infusionnet.export.precision import INT8_OPS_BY_TARGET, INT8_TARGETS, to_int8
from infusionnet.export.simplify import dynamic_weight_convs
from infusionnet.runtime.images import denormalize
from infusionnet.runtime.manifest import Manifest
from infusionnet.runtime.metrics import psnr

DEFAULT_GOAL_DB = 35.0


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
        names = [o.name for o in style.get_outputs()]

        def kernels_of(style_batch: np.ndarray) -> Dict[str, np.ndarray]:
            return dict(zip(names, style.run(None, {"style": style_batch})))

        content, styles, _ = calib.image_pairs(None)
        pairs = calib.PairFeed(content, styles, manifest.batch, (size, size), manifest.style_size,
                               limit=calibration_batches)
        self.reader = calib.RoleFeed(pairs, "content", kernels_of)
        self.feeds = list(calib.RoleFeed(pairs, "content", kernels_of))
        reference = self._session(self.content_path)
        self.expected = [self._image(reference, feed) for feed in self.feeds]
        self.cache = scratch / "ranges.json"
        self.model = onnx.load(str(self.content_path))

    def _session(self, path):
        options = self.ort.SessionOptions()
        options.log_severity_level = 3
        return self.ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @staticmethod
    def _image(session, feed) -> np.ndarray:
        return denormalize(session.run(["stylized"], feed)[0]).astype(np.float32)

    def psnr_with_float(self, keep_float: Sequence[str]) -> float:
        """Worst-pair PSNR (dB) of the graph quantized except ``keep_float``."""
        target = self.scratch / "probe.onnx"
        to_int8(self.content_path, target, self.reader, int8_target=self.target, keep_float=keep_float,
                calibration_cache=self.cache)
        session = self._session(target)
        return min(psnr(self._image(session, feed), expected, 255.0)
                   for feed, expected in zip(self.feeds, self.expected))


def analyse(export_dir: Path, target: str, size: int, goal: float, calibration_batches: int = 8,
            log=print) -> dict:
    with tempfile.TemporaryDirectory(prefix="infusionnet-sensitivity-") as scratch:
        probe = ContentGraphProbe(export_dir, target, size, calibration_batches, Path(scratch))
        convs = quantizable_nodes(probe.model, target)
        everything = probe.psnr_with_float([])
        log(f"all {len(convs)} quantizable nodes in INT8: {everything:.2f} dB")
        alone = {}
        for index, name in enumerate(convs, 1):
            alone[name] = probe.psnr_with_float([c for c in convs if c != name])
            log(f"[{index}/{len(convs)}] only {name} in INT8: {alone[name]:.2f} dB")
        ranking = sorted(convs, key=lambda name: alone[name])
        kept, steps, current = [], [], everything
        for name in ranking:
            if current >= goal:
                break
            kept.append(name)
            current = probe.psnr_with_float(kept)
            steps.append({"keep_float": name, "psnr_db": round(current, 2)})
            log(f"keep {name} in float: {current:.2f} dB")
    return {"export": str(export_dir), "target": target, "size": size, "goal_db": goal,
            "all_int8_psnr_db": round(everything, 2),
            "alone_psnr_db": {name: round(alone[name], 2) for name in ranking},
            "greedy": steps, "keep_float": kept, "final_psnr_db": round(current, 2),
            "reached_goal": current >= goal}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infusionnet.benchmarks.int8_sensitivity", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export_dir", type=Path, help="an FP32 split export with --dynamic-size")
    parser.add_argument("--target", choices=INT8_TARGETS, default="cpu", help="INT8 layout (default: %(default)s)")
    parser.add_argument("--size", type=int, default=512, help="square content size of the probe (default: %(default)s)")
    parser.add_argument("--goal", type=float, default=DEFAULT_GOAL_DB, help="PSNR goal in dB (default: %(default)s)")
    parser.add_argument("--calibration-batches", type=int, default=8)
    parser.add_argument("-o", "--output", type=Path, help="write the result as JSON")
    args = parser.parse_args(argv)
    result = analyse(args.export_dir, args.target, args.size, args.goal, args.calibration_batches)
    print(f"keep in float: {', '.join(result['keep_float']) or 'nothing'} -> {result['final_psnr_db']} dB "
          f"(all INT8: {result['all_int8_psnr_db']} dB)")
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["reached_goal"] else 1


if __name__ == "__main__":
    sys.exit(main())
