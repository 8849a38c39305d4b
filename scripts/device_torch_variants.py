"""PyTorch CUDA variants the bench command does not offer, timed against the authors' test path
on the same GPU: FP32/FP16, channels-last, and CUDA graphs (torch.cuda.CUDAGraph replaying the
content path with the style kernels cached). Used by scripts/device-check.sh.

    python scripts/device_torch_variants.py --sizes 512x512 720x1280 --json out.json
"""
import argparse
import json
import time

import torch

from infusionnet.models import build_model
from infusionnet.runtime.sizes import parse_content_sizes


def timed(run, seconds: float, warmup: int = 3):
    for _ in range(warmup):
        run()
    torch.cuda.synchronize()
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        start = time.perf_counter()
        run()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    times.sort()
    return {"median_ms": times[len(times) // 2], "p90_ms": times[int(len(times) * 0.9)], "iterations": len(times)}


def variants(size, seconds):
    height, width = size
    generator = torch.Generator().manual_seed(0)
    content = torch.randn(1, 3, height, width, generator=generator).clamp(-2.1, 2.6).cuda()
    style = torch.randn(1, 3, 256, 256, generator=generator).clamp(-2.1, 2.6).cuda()
    rows = []
    reference = build_model("infusionnet", seed=0).cuda().eval().use_reference_adaconv()
    with torch.inference_mode():
        expected = reference(content, style).float()
        rows.append(dict(row="reference (authors' test path, FP32, style every frame)",
                         **timed(lambda: reference(content, style), seconds)))
        for half in (False, True):
            for channels_last in (False, True):
                model = build_model("infusionnet", seed=0).cuda().eval()
                dtype = torch.float16 if half else torch.float32
                model = model.to(dtype)
                x = content.to(dtype)
                if channels_last:
                    model = model.to(memory_format=torch.channels_last)
                    x = x.contiguous(memory_format=torch.channels_last)
                kernels = model.style_kernels(style.to(dtype))
                features = lambda: model.decode(model.encode_content(x), kernels)[0]  # noqa: E731
                name = f"torch {'fp16' if half else 'fp32'}{' channels-last' if channels_last else ''} (cached style)"
                out = features().float()
                error = (out - expected).abs().max().item()
                rows.append(dict(row=name, max_abs_vs_reference=error, **timed(features, seconds)))
                # The same with the content path captured once as a CUDA graph and replayed.
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):
                        features()
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    static_out = features()
                graph.replay()
                error = (static_out.float() - expected).abs().max().item()
                rows.append(dict(row=name + " + CUDA graph", max_abs_vs_reference=error, **timed(graph.replay, seconds)))
    base = rows[0]["median_ms"]
    for row in rows:
        row["speedup_vs_reference"] = base / row["median_ms"]
        row["size"] = f"{height}x{width}"
    return rows


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["512x512", "720x1280"])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--json", required=True)
    args = parser.parse_args()
    results = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
               "rows": []}
    for size in parse_content_sizes(args.sizes):
        for row in variants(size, args.seconds):
            results["rows"].append(row)
            print(f"{row['size']:>9}  {row['row']:<58} {row['median_ms']:8.2f} ms  {row['speedup_vs_reference']:6.2f}x")
    with open(args.json, "w") as handle:
        json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
