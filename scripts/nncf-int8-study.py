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
import logging
import os
import statistics
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import openvino as ov

import nncf
from infusionnet.benchmarks.machine import describe_machine
from infusionnet.benchmarks.timing import interleaved, ratio_table
from infusionnet.export import calibration as calib
from infusionnet.export.openvino_int8 import ignored_scope
from infusionnet.runtime.images.normalization import denormalize
from infusionnet.runtime.metrics import psnr, ssim

nncf.set_log_level(logging.ERROR)  # its INFO lines name every layer it skips

VARIANTS = ("performance", "mixed", "mixed-acc-mean", "mixed-acc-worst")
PSNR_CEILING = 60.0  # the validation metric saturates here: FP32 against itself would be infinite


def feeds(export: Path, size: int, style_size: int):
    style_session = ort.InferenceSession(str(export / "style.onnx"))
    return list(calib.sample_content_feeds(style_session, 1, (size, size), style_size))


def pair_psnr(output, reference) -> float:
    return psnr(denormalize(output), denormalize(reference), 255.0)


def quantize(variant: str, model, scope, calibration, references, aim: float):
    options = {"subset_size": len(calibration), "ignored_scope": scope}
    if variant != "performance":
        options["preset"] = nncf.QuantizationPreset.MIXED
    if not variant.startswith("mixed-acc"):
        return nncf.quantize(model, nncf.Dataset(calibration), **options)
    reduce = np.min if variant.endswith("worst") else np.mean

    def validate(compiled, data):
        scores = [min(PSNR_CEILING, pair_psnr(compiled(feed)[0], reference)) for feed, reference in zip(data, references)]
        return float(reduce(scores)), scores

    return nncf.quantize_with_accuracy_control(model, nncf.Dataset(calibration), nncf.Dataset(calibration), validate,
                                               max_drop=PSNR_CEILING - aim, drop_type=nncf.DropType.ABSOLUTE, **options)


def calibration_model(path: Path, feed: dict):
    """The ONNX graph in OpenVINO, reshaped to the calibration feed's shapes (the network is fully
    convolutional), as the export does for NNCF."""
    model = ov.convert_model(str(path))
    model.reshape({name: ov.PartialShape(list(array.shape)) for name, array in feed.items()})
    return model


def time_rows(rows, feed, rounds: int, runs: int, threads: int):
    core = ov.Core()
    steps = {}
    for name, (path, precision) in rows.items():
        config = {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1}
        if precision:
            config["INFERENCE_PRECISION_HINT"] = precision
        request = core.compile_model(core.read_model(str(path)), "CPU", config).create_infer_request()
        steps[name] = lambda request=request: request.infer(feed)
    return interleaved(steps, rounds=rounds, runs=runs)


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
        source = args.export / "content.onnx"
        scope = ignored_scope(onnx.load(str(source), load_external_data=False))
        small = ov.Core().compile_model(calibration_model(source, calibration[0]), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
        small_references = [small(feed)[0] for feed in calibration]
        for variant in variants:
            model = calibration_model(source, calibration[0])
            start = time.time()
            quantized = quantize(variant, model, scope, calibration, small_references, args.aim)
            seconds = time.time() - start
            quantized.reshape({name: ov.PartialShape(list(array.shape)) for name, array in evaluation[0].items()})
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
    times = time_rows(rows, evaluation[0], args.rounds, args.runs, args.threads)
    print("\n".join(ratio_table(f"row ({size}x{size}, {args.threads} threads, ISA cap {results['isa_cap'] or 'none'})",
                                times)))
    timing = {name: {"median_ms": statistics.median(values), "min_ms": min(values), "max_ms": max(values)}
              for name, values in times.items()}
    suffix = "-isa-capped" if results["isa_cap"] else ""
    results["timing"] = timing
    (args.out / f"nncf-study{'-timing' if args.time_only else ''}{suffix}.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
