#!/usr/bin/env python3
"""Can NNCF's INT8 beat OpenVINO's float paths on the default model at a usable accuracy?

    .venv/bin/python scripts/nncf-int8-study.py EXPORT_DIR OUT_DIR [--variants ...]
    ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI .venv/bin/python scripts/nncf-int8-study.py EXPORT_DIR OUT_DIR --time-only

EXPORT_DIR is a static split FP32 export (`infusionnet export onnx --graph split --content-size
512x512`). Each variant quantizes its content graph with NNCF (the same ignored scope as
`--int8-target openvino`: AdaConv's dynamic convolutions and the stem), calibrated on the sample
pairs at --calibration-size, and is measured against ONNX Runtime FP32 on the sample pairs at the
export size (worst and mean PSNR, worst SSIM of the uint8 images):

    performance     NNCF's default preset (symmetric activations): what the export writes today
    mixed           QuantizationPreset.MIXED (asymmetric activations: LeakyReLU outputs are lopsided)
    mixed-acc-mean  nncf.quantize_with_accuracy_control: layers go back to float until the mean
                    calibration PSNR is at least --aim dB
    mixed-acc-worst the same on the worst calibration pair (slow: it reverts almost everything)

Then every variant's IR and the FP32 graph (OpenVINO's defaults, and forced FP32) are timed in
interleaved rounds. ``--time-only`` times the IR files a previous run left in OUT_DIR: with
ONEDNN_MAX_CPU_ISA capping the ISA it shows what a CPU without AMX would see (OpenVINO's oneDNN
honours the cap; the defaults row then emulates BF16 and is not meaningful; the INT8 rows run
their float layers in FP32, as on a CPU without BF16).
"""
import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov

import logging

import nncf
from infusionnet.benchmarks.machine import describe_machine
from infusionnet.export import calibration as calib
from infusionnet.export.openvino_int8 import float_nodes
from infusionnet.runtime.images.normalization import denormalize
from infusionnet.runtime.metrics import psnr, ssim

nncf.set_log_level(logging.ERROR)  # its INFO lines name every layer it skips

VARIANTS = ("performance", "mixed", "mixed-acc-mean", "mixed-acc-worst")
PSNR_CEILING = 60.0  # the validation metric saturates here: FP32 against itself would be infinite


def feeds(export: Path, size: int, style_size: int):
    style_session = ort.InferenceSession(str(export / "style.onnx"))
    names = [output.name for output in style_session.get_outputs()]
    kernels = lambda style: dict(zip(names, style_session.run(None, {"style": style})))  # noqa: E731
    content, style, _ = calib.image_pairs(None)
    return list(calib.RoleFeed(calib.PairFeed(content, style, 1, (size, size), style_size), "content", kernels))


def pair_psnr(output, reference) -> float:
    return psnr(denormalize(output), denormalize(reference), 255.0)


def quantize(variant: str, model, calibration, references, aim: float):
    ignored_names = float_nodes(onnx.load(str(model.source), load_external_data=False))
    # OpenVINO keeps ONNX node names; a Conv with a bias becomes "NAME/WithoutBiases" + an Add.
    scope = nncf.IgnoredScope(names=[n for name in ignored_names for n in (name, f"{name}/WithoutBiases")],
                              validate=False)
    options = {"subset_size": len(calibration), "ignored_scope": scope}
    if variant != "performance":
        options["preset"] = nncf.QuantizationPreset.MIXED
    if not variant.startswith("mixed-acc"):
        return nncf.quantize(model.ov, nncf.Dataset(calibration), **options)
    reduce = np.min if variant.endswith("worst") else np.mean

    def validate(compiled, data):
        scores = [min(PSNR_CEILING, pair_psnr(compiled(feed)[0], reference)) for feed, reference in zip(data, references)]
        return float(reduce(scores)), scores

    return nncf.quantize_with_accuracy_control(model.ov, nncf.Dataset(calibration), nncf.Dataset(calibration), validate,
                                               max_drop=PSNR_CEILING - aim, drop_type=nncf.DropType.ABSOLUTE, **options)


class Source:
    def __init__(self, path: Path, calibration_shapes):
        self.source = path
        self.ov = ov.convert_model(str(path))
        self.shapes = {port.get_any_name(): port.get_partial_shape() for port in self.ov.inputs}
        self.ov.reshape({name: ov.PartialShape(list(array.shape)) for name, array in calibration_shapes.items()})


def time_rows(rows, feed, rounds: int, runs: int, threads: int):
    core = ov.Core()
    compiled = {}
    for name, (path, precision) in rows.items():
        config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1}
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        compiled[name] = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
    times = {name: [] for name in rows}
    for index in range(rounds):
        for name, request in compiled.items():
            for _ in range(2 if index == 0 else 0):
                request.infer(feed)
            for _ in range(runs):
                start = time.perf_counter()
                request.infer(feed)
                times[name].append((time.perf_counter() - start) * 1e3)
    return {name: {"median_ms": statistics.median(values), "min_ms": min(values), "max_ms": max(values)}
            for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("export", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--variants", default="performance,mixed,mixed-acc-mean")
    parser.add_argument("--calibration-size", type=int, default=256)
    parser.add_argument("--aim", type=float, default=35.0, help="PSNR aim of the accuracy-control variants")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--time-only", action="store_true")
    args = parser.parse_args()
    manifest = json.loads((args.export / "manifest.json").read_text())
    size, style_size = manifest["content_size"][0], manifest["style_size"]
    args.out.mkdir(parents=True, exist_ok=True)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    evaluation = feeds(args.export, size, style_size)
    results = {"machine": describe_machine(), "isa_cap": os.environ.get("ONEDNN_MAX_CPU_ISA"),
               "export": manifest.get("checkpoint"), "size": size, "calibration_size": args.calibration_size,
               "aim_db": args.aim, "variants": {}}
    if not args.time_only:
        calibration = feeds(args.export, args.calibration_size, style_size)
        fp32 = ort.InferenceSession(str(args.export / "content.onnx"))
        references = [fp32.run(None, feed)[0] for feed in evaluation]
        small = ov.Core().compile_model(Source(args.export / "content.onnx", calibration[0]).ov, "CPU",
                                        {"INFERENCE_PRECISION_HINT": "f32"})
        small_references = [small(feed)[0] for feed in calibration]
        for variant in variants:
            model = Source(args.export / "content.onnx", calibration[0])
            start = time.time()
            quantized = quantize(variant, model, calibration, small_references, args.aim)
            seconds = time.time() - start
            quantized.reshape(model.shapes)
            ov.save_model(quantized, str(args.out / f"{variant}.xml"), compress_to_fp16=False)
            compiled = ov.Core().compile_model(quantized, "CPU", {"INFERENCE_NUM_THREADS": args.threads})
            outputs = [compiled(feed)[0] for feed in evaluation]
            psnrs = [pair_psnr(o, r) for o, r in zip(outputs, references)]
            ssims = [ssim(denormalize(o), denormalize(r)) for o, r in zip(outputs, references)]
            results["variants"][variant] = {
                "fake_quantize": sum(op.get_type_name() == "FakeQuantize" for op in quantized.get_ops()),
                "quantize_seconds": round(seconds, 1), "worst_psnr_db": min(psnrs), "mean_psnr_db": float(np.mean(psnrs)),
                "worst_ssim": min(ssims), "psnr_db": psnrs, "ssim": ssims}
            print(f"{variant}: worst {min(psnrs):.1f} dB, mean {np.mean(psnrs):.1f} dB, worst SSIM {min(ssims):.4f}, "
                  f"{results['variants'][variant]['fake_quantize']} FakeQuantize, {seconds:.0f} s", flush=True)
    rows = {"openvino defaults": (args.export / "content.onnx", None),
            "openvino fp32": (args.export / "content.onnx", "f32")}
    # Under an ISA cap OpenVINO still picks BF16 for float layers from the CPU's flags and then
    # emulates it; a CPU without BF16 would run them in FP32, so the INT8 rows do that here.
    float_layers = "f32" if results["isa_cap"] else None
    rows.update({f"nncf {variant}": (args.out / f"{variant}.xml", float_layers) for variant in variants})
    timing = time_rows(rows, evaluation[0], args.rounds, args.runs, args.threads)
    first = timing["openvino defaults"]["median_ms"]
    lines = [f"| row ({size}x{size}, {args.threads} threads, ISA cap {results['isa_cap'] or 'none'}) | median ms "
             f"| min-max ms | vs defaults |", "|---|---|---|---|"]
    for name, row in timing.items():
        lines.append(f"| {name} | {row['median_ms']:.1f} | {row['min_ms']:.1f}-{row['max_ms']:.1f} "
                     f"| {row['median_ms'] / first:.2f}x |")
    print("\n".join(lines))
    suffix = "-isa-capped" if results["isa_cap"] else ""
    results["timing"] = timing
    (args.out / f"nncf-study{'-timing' if args.time_only else ''}{suffix}.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
