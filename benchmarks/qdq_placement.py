"""Accuracy of the two Q/DQ placements of the TensorRT INT8 graph, on ONNX Runtime (CPU).

    python -m infusionnet.benchmarks.qdq_placement [--checkpoint main.pth] [--graph split]
        [--size 256] [--style-size 256] [--json out.json]

Exports the FP32 graphs once, quantizes them with the same calibration into both placements
(``precision.QDQ_PLACEMENTS``: "onnxruntime", ONNX Runtime's QDQ default used before, with a
Q/DQ pair after every convolution's output too; "inputs", TensorRT's recommended placement on
the inputs of weighted layers only), and verifies each against the PyTorch FP32 model exactly as
``infusionnet export onnx`` does (random and sample images; PSNR of the uint8 images and range
PSNR). Without --checkpoint it uses the export's default, the untrained seed-0 network, whose
nearly flat output flatters uint8 PSNR: rerun with the trained default model when it exists.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

import onnx

from infusionnet.export import calibration as calib
from infusionnet.export.pipeline import (ExportConfig, apply_precision, bake_kernels, export_fp32, load_model,
                                         style_tensor, verification_feeds)
from infusionnet.export.precision import QDQ_PLACEMENTS
from infusionnet.export.trt_compat import check_model
from infusionnet.export.verify import TorchReference, verify
from infusionnet.runtime.manifest import GRAPH_KINDS
from infusionnet.runtime.model_choice import CHECKPOINT_HELP


def qdq_layout(model: onnx.ModelProto) -> Dict[str, int]:
    """How many Q nodes a graph has, and where: on convolution inputs or after convolution outputs."""
    producers = {out: node for node in model.graph.node for out in node.output}
    quantize = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    after_conv = sum(1 for n in quantize if getattr(producers.get(n.input[0]), "op_type", "") == "Conv")
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    dq_input = sum(1 for n in convs if getattr(producers.get(n.input[0]), "op_type", "") == "DequantizeLinear")
    return {"quantize_nodes": len(quantize), "q_after_conv_output": after_conv, "convs": len(convs),
            "convs_with_quantized_input": dq_input}


def measure(config: ExportConfig, placements=QDQ_PLACEMENTS, log=print) -> List[dict]:
    loaded = load_model(config)
    model = loaded.model
    baked = bake_kernels(model, style_tensor(config.style_image, config.style_size)[0]) \
        if config.graph == "baked" else None
    reference = TorchReference(model, baked)
    results = []
    with tempfile.TemporaryDirectory(prefix="infusionnet-qdq-") as scratch:
        fp32 = export_fp32(model, config, Path(scratch), baked)
        feeds = verification_feeds(config)
        for placement in placements:
            directory = Path(scratch) / placement
            directory.mkdir()
            paths, _ = apply_precision(fp32, config, directory, reference, qdq_placement=placement)
            result = verify({r: str(p) for r, p in paths.items()}, reference, feeds, "int8", config.tolerances)
            worst = result.worst()
            layouts = {role: qdq_layout(onnx.load(str(path))) for role, path in paths.items()}
            advice = {role: [f.message for f in check_model(onnx.load(str(path)), "10", role).findings
                             if f.rule_id == "qdq-placement"] for role, path in paths.items()}
            per_feed = [{"graphs": c.graphs, "inputs": f"{c.inputs} {c.size}", "psnr_db": c.psnr_db,
                         "range_psnr_db": c.range_psnr_db, "max_abs": c.max_abs} for c in result.rows if c.is_image]
            results.append({"placement": placement, "min_psnr_db": worst["min_psnr_db"],
                            "min_range_psnr_db": worst["min_range_psnr_db"], "max_abs": worst["max_abs"],
                            "layout": layouts, "qdq_placement_findings": advice, "checks": per_feed})
            log(f"{placement:12s} min PSNR {worst['min_psnr_db']:.2f} dB, min range PSNR "
                f"{worst['min_range_psnr_db']:.2f} dB, max abs {worst['max_abs']:.4f}; "
                + "; ".join(f"{role}: {v['quantize_nodes']} Q ({v['q_after_conv_output']} after a Conv output), "
                            f"{v['convs_with_quantized_input']}/{v['convs']} Conv inputs quantized"
                            for role, v in layouts.items()))
    return results


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infusionnet.benchmarks.qdq_placement",
                                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help=CHECKPOINT_HELP)
    parser.add_argument("--graph", choices=tuple(GRAPH_KINDS), default="split")
    parser.add_argument("--size", type=int, default=256, help="square content size (default: %(default)s)")
    parser.add_argument("--style-size", type=int, default=256)
    parser.add_argument("--style-image", help="style image for --graph baked (default: the first sample texture)")
    parser.add_argument("--calibration-batches", type=int, default=16)
    parser.add_argument("--placements", default=",".join(QDQ_PLACEMENTS),
                        help="comma list of placements to measure (default: %(default)s)")
    parser.add_argument("--json", metavar="FILE", help="also write the results here")
    args = parser.parse_args(argv)
    style_image = args.style_image
    if args.graph == "baked" and style_image is None:
        style_image = str(calib.image_pairs(None)[1][0])
    config = ExportConfig(output=Path("unused"), graph=args.graph, checkpoint=args.checkpoint,
                          content_size=(args.size, args.size), style_size=args.style_size, style_image=style_image,
                          precision="int8", int8_target="tensorrt", calibration_batches=args.calibration_batches)
    placements = [p for p in args.placements.split(",") if p]
    unknown = sorted(set(placements) - set(QDQ_PLACEMENTS))
    if unknown:
        parser.error(f"--placements: unknown {', '.join(unknown)} (choose from {', '.join(QDQ_PLACEMENTS)})")
    results = measure(config, placements)
    summary = {"checkpoint": args.checkpoint or "bundled default model", "graph": args.graph, "size": args.size,
               "style_size": args.style_size, "results": results}
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
