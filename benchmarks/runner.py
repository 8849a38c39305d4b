"""`infusionnet bench`: latency, memory and accuracy across backends x precisions x resolutions.

Every run has a reference row per size: the network as the authors' test path runs it (PyTorch
eager FP32, AdaConv's per-sample loop, the style encoded for every frame). Every other row's
speed-up is measured against that row of the same run, so results compare across machines.

Rows time one frame through their stages: pre-processing (uint8 frame -> normalized tensor),
style (the style graph; skipped per frame in cached-style mode, where kernels are computed once
and held by the content graph), content (content encoder + decoder) and post-processing
(denormalize to uint8). Inputs are real sample images, and every row's output is compared with
the PyTorch FP32 output for the same inputs.
"""
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.metrics import psnr
from infusionnet.runtime.model_choice import describe

from . import memory
from .timing import StageTimer, latency_stats, measure

BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = ("fp32", "fp16", "int8")
MODES = ("cached-style", "full")
NAMED_SIZES = {"720p": (720, 1280), "1080p": (1080, 1920), "480p": (480, 640)}
CONTENT_SAMPLE, STYLE_SAMPLE = "astronaut", "hubble_deep_field"


class BenchError(InfusionNetError):
    """Options the benchmark cannot run with."""


@dataclass
class BenchConfig:
    backends: Sequence[str] = ("torch", "onnxruntime", "tensorrt")
    precisions: Sequence[str] = ("fp32", "fp16", "int8")
    sizes: Sequence[Tuple[int, int]] = ((256, 256), (512, 512))
    mode: str = "cached-style"
    batch: int = 1
    warmup: int = 3
    iterations: Optional[int] = None
    seconds: Optional[float] = 3.0
    threads: Optional[int] = None
    checkpoint: Optional[str] = None
    variant: Optional[str] = None
    style_size: int = 256
    device: str = "cpu"
    reference: bool = True
    workdir: Optional[str] = None  # where ONNX exports go (default: a temporary folder)

    def settings(self) -> dict:
        return {"mode": self.mode, "batch": self.batch, "warmup": self.warmup, "iterations": self.iterations,
                "seconds": self.seconds, "threads": self.threads, "style_size": self.style_size,
                "device": self.device, "checkpoint": describe(self.checkpoint),
                "content_sample": CONTENT_SAMPLE, "style_sample": STYLE_SAMPLE, "torch_flush_denormal": True}


def parse_sizes(text: str) -> List[Tuple[int, int]]:
    """"256,512,720p,384x640" -> [(256, 256), (512, 512), (720, 1280), (384, 640)]."""
    sizes = []
    for item in (part.strip().lower() for part in text.split(",") if part.strip()):
        if item in NAMED_SIZES:
            sizes.append(NAMED_SIZES[item])
            continue
        try:
            dims = tuple(int(v) for v in item.split("x"))
        except ValueError:
            raise BenchError(f"bad size {item!r}: use N, HxW or one of {', '.join(NAMED_SIZES)}") from None
        if len(dims) == 1:
            dims = dims * 2
        if len(dims) != 2 or min(dims) < 16 or any(d % 8 for d in dims):
            raise BenchError(f"bad size {item!r}: height and width must be multiples of 8 and at least 16")
        sizes.append(dims)
    if not sizes:
        raise BenchError("no sizes given")
    return sizes


def parse_list(text: str, allowed: Sequence[str], what: str) -> List[str]:
    items = [part.strip() for part in text.split(",") if part.strip()]
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise BenchError(f"unknown {what} {', '.join(unknown) or '(none)'}: choose from {', '.join(allowed)}")
    return items


def size_label(size: Tuple[int, int]) -> str:
    return f"{size[0]}x{size[1]}"


# -- inputs and the PyTorch reference -----------------------------------------------------------

class Inputs:
    """Real sample images at one content size, and the PyTorch FP32 output for them."""

    def __init__(self, model, size: Tuple[int, int], style_size: int, batch: int):
        import torch
        from infusionnet.runtime import images, samples

        content = images.parse_resize(f"{size[0]}x{size[1]}").apply(samples.load_sample(CONTENT_SAMPLE))
        style = images.parse_resize(f"square:{style_size}").apply(samples.load_sample(STYLE_SAMPLE))
        self.frames = np.repeat(content[None], batch, axis=0)           # uint8 NHWC, what a camera gives
        self.style = np.ascontiguousarray(images.normalize(np.repeat(style[None], batch, axis=0)))
        with torch.inference_mode():
            out = model(torch.from_numpy(images.normalize(self.frames)), torch.from_numpy(self.style))
        self.expected = out.numpy()                                     # normalized float, the FP32 truth
        self.expected_uint8 = images.denormalize(self.expected)

    def accuracy(self, output: np.ndarray) -> dict:
        from infusionnet.runtime import images
        output = np.asarray(output, dtype=np.float32)
        return {"psnr_db": psnr(images.denormalize(output), self.expected_uint8, 255.0),
                "max_abs": float(np.abs(output - self.expected).max())}


# -- rows ---------------------------------------------------------------------------------------

def _row(backend: str, precision: str, graph: str, mode: str, size, batch: int) -> dict:
    return {"backend": backend, "precision": precision, "graph": graph, "mode": mode, "size": size_label(size),
            "batch": batch, "status": "ok"}


def skipped(backend, precision, graph, mode, size, batch, reason: str, status: str = "skipped") -> dict:
    row = _row(backend, precision, graph, mode, size, batch)
    row.update(status=status, reason=reason)
    return row


def time_pipeline(config: BenchConfig, inputs: Inputs, stages: Dict[str, Callable], synchronize=lambda: None
                  ) -> Tuple[dict, Dict[str, float], np.ndarray]:
    """Time preprocess -> [style] -> content -> postprocess; returns latency stats, per-stage means
    (from a separate pass, so the stage clocks do not inflate the headline latency) and the output."""
    from infusionnet.runtime import images

    def frame():
        tensor = images.normalize(inputs.frames)
        if "style" in stages:
            stages["style"]()
        out = stages["content"](tensor)
        images.denormalize(out)
        return out

    samples = measure(frame, warmup=config.warmup, iterations=config.iterations, seconds=config.seconds,
                      synchronize=synchronize)
    timer = StageTimer(synchronize)
    for _ in range(max(3, min(10, len(samples)))):
        tensor = timer.time("preprocess", lambda: images.normalize(inputs.frames))
        if "style" in stages:
            timer.time("style", stages["style"])
        out = timer.time("content", lambda: stages["content"](tensor))
        timer.time("postprocess", lambda: images.denormalize(out))
    means = timer.means_ms()
    means.setdefault("style", 0.0)
    return latency_stats(samples), means, np.asarray(out)


def reference_row(model, config: BenchConfig, inputs: Inputs, size) -> dict:
    """The authors' test path: eager FP32, AdaConv looped over the batch, style every frame."""
    import torch
    model.use_reference_adaconv(True)
    style = torch.from_numpy(inputs.style)
    kernels = {}

    def style_stage():
        kernels["k"] = model.style_kernels(style)

    def content_stage(tensor):
        return model.decode(model.encode_content(torch.from_numpy(tensor)), kernels["k"])[0].numpy()

    try:
        with torch.inference_mode():
            return _measured_row("reference", "fp32", "full", "full", size, config, inputs,
                                 {"style": style_stage, "content": content_stage})
    finally:
        model.use_reference_adaconv(False)


def _measured_row(backend, precision, graph, mode, size, config, inputs, stages, synchronize=lambda: None,
                  gpu_memory: Optional[Callable[[], float]] = None) -> dict:
    row = _row(backend, precision, graph, mode, size, config.batch)
    memory.reset_peak_rss()
    latency, stage_means, output = time_pipeline(config, inputs, stages, synchronize)
    row.update(latency=latency, stages_ms=stage_means, accuracy=inputs.accuracy(output),
               peak_rss_mb=memory.peak_rss_mb(), gpu_mem_mb=gpu_memory() if gpu_memory else None)
    return row


def backend_rows(backend_name: str, precision: str, export_dir: Path, config: BenchConfig, inputs: Inputs,
                 size, model_options: dict, graph: str) -> dict:
    """One row through a runtime backend over the split graphs of ``export_dir``; ``graph`` labels it."""
    from infusionnet.runtime.stylizer import make_backends

    backends = make_backends(export_dir, backend_name, checkpoint=config.checkpoint, **model_options)
    style_backend, content_backend = backends["style"], backends["content"]
    with style_backend, content_backend:
        kernels = style_backend.run({"style": inputs.style})
        stages = {"content": lambda tensor: content_backend.run({"content": tensor})["stylized"]}
        if config.mode == "cached-style":
            content_backend.hold(kernels)
        else:
            def style_stage():
                content_backend.hold(style_backend.run_on_device({"style": inputs.style}))
            stages["style"] = style_stage
        return _measured_row(backend_name, precision, graph, config.mode, size, config, inputs, stages,
                             synchronize=getattr(content_backend, "synchronize", lambda: None))


def torch_row(model, precision: str, config: BenchConfig, inputs: Inputs, size) -> dict:
    """PyTorch with batched AdaConv (this project's form), at fp32 (CPU/CUDA) or fp16 (CUDA)."""
    import torch
    device = torch.device(config.device)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    net = model.to(device=device, dtype=dtype)
    style = torch.from_numpy(inputs.style).to(device, dtype)
    with torch.inference_mode():
        cached = net.style_kernels(style)
    kernels = {"k": cached}

    def style_stage():
        kernels["k"] = net.style_kernels(style)

    def content_stage(tensor):
        x = torch.from_numpy(tensor).to(device, dtype)
        return net.decode(net.encode_content(x), kernels["k"])[0].float().cpu().numpy()

    stages = {"content": content_stage}
    if config.mode == "full":
        stages["style"] = style_stage
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    gpu = (lambda: torch.cuda.max_memory_allocated() / 2 ** 20) if device.type == "cuda" else None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    try:
        with torch.inference_mode():
            return _measured_row("torch", precision, "eager", config.mode, size, config, inputs, stages, sync, gpu)
    finally:
        model.to(device="cpu", dtype=torch.float32)


def export_split(config: BenchConfig, precision: str, size, workdir: Path, int8_target: Optional[str] = None
                 ) -> Path:
    """An ONNX split export at ``precision`` for this size (static shapes: what a deployment uses)."""
    from rich.console import Console

    from infusionnet.export.pipeline import ExportConfig, run_export
    layout = f"-{int8_target}" if int8_target else ""
    target = workdir / f"onnx-{precision}{layout}-{size_label(size)}-b{config.batch}"
    if not (target / "manifest.json").is_file():
        run_export(ExportConfig(output=target, graph="split", checkpoint=config.checkpoint, variant=config.variant,
                                batch=config.batch, content_size=tuple(size), style_size=config.style_size,
                                precision=precision, int8_target=int8_target), console=Console(quiet=True))
    return target


def tensorrt_unavailable() -> Optional[str]:
    try:
        import tensorrt  # noqa: F401  (only: is it installed?)
    except ImportError:
        return "TensorRT is not installed (needs an NVIDIA GPU machine: pip install .[tensorrt] or JetPack)"
    try:
        import pycuda.driver as cuda
        cuda.init()
        if cuda.Device.count() == 0:
            return "no NVIDIA GPU visible"
    except Exception as error:  # pycuda missing, or no driver
        return f"pycuda/CUDA driver unavailable ({type(error).__name__}: {error})"
    return None


def plan_rows(config: BenchConfig) -> List[Tuple[str, str, Optional[str]]]:
    """(backend, precision, INT8 target) in the order they run. INT8 graphs are TensorRT's explicit
    Q/DQ form; ONNX Runtime on the CPU also gets a row with the graph laid out for its CPU kernels
    (``export --int8-target cpu``), since that is what a CPU deployment would use."""
    plan = []
    for backend in config.backends:
        for precision in config.precisions:
            if precision != "int8" or backend == "torch":
                plan.append((backend, precision, None))
                continue
            plan.append((backend, precision, "tensorrt"))
            if backend == "onnxruntime" and config.device == "cpu":
                plan.append((backend, precision, "cpu"))
    return plan


def run_benchmark(config: BenchConfig, progress: Optional[Callable[[str], None]] = None) -> List[dict]:
    import torch

    from infusionnet.models import validate_style_size
    from infusionnet.models.default_model import resolve_network

    progress = progress or (lambda text: None)
    if config.threads:
        torch.set_num_threads(config.threads)
    # Untrained weights leave denormal floats in the style path, which slow CPU convolutions many
    # times over; flushing them for every torch row (the reference too) keeps speed-ups honest.
    torch.set_flush_denormal(True)
    model = resolve_network(config.checkpoint, config.variant)[0]
    validate_style_size(model.variant, config.style_size)
    if config.device == "cuda" and not torch.cuda.is_available():
        raise BenchError("--device cuda asked for, but PyTorch sees no CUDA GPU")
    trt_reason = tensorrt_unavailable() if "tensorrt" in config.backends else None
    ort_options = {"intra_op_threads": config.threads} if config.threads else {}

    rows = []
    with tempfile.TemporaryDirectory(prefix="infusionnet-bench-") as scratch:
        workdir = Path(config.workdir) if config.workdir else Path(scratch)
        for size in config.sizes:
            progress(f"{size_label(size)}: PyTorch FP32 reference output")
            inputs = Inputs(model, size, config.style_size, config.batch)
            if config.reference:
                progress(f"{size_label(size)}: reference (authors' test path)")
                rows.append(reference_row(model, config, inputs, size))
            for backend, precision, int8_target in plan_rows(config):
                layout = " (CPU layout)" if int8_target == "cpu" else ""
                progress(f"{size_label(size)}: {backend} {precision}{layout}")
                rows.append(_one_row(backend, precision, model, config, inputs, size, workdir, trt_reason,
                                     ort_options, int8_target))
    return rows


def graph_label(mode: str, int8_target: Optional[str] = None) -> str:
    """The graph column: which graphs run per frame, and "/cpu-int8" for the CPU INT8 layout."""
    graph = "content" if mode == "cached-style" else "style+content"
    return graph + ("/cpu-int8" if int8_target == "cpu" else "")


def _one_row(backend, precision, model, config, inputs, size, workdir, trt_reason, ort_options,
             int8_target=None) -> dict:
    graph = graph_label(config.mode, int8_target)
    if backend == "torch":
        if precision == "int8":
            return skipped(backend, precision, "eager", config.mode, size, config.batch,
                           "PyTorch eager has no INT8 path here (use onnxruntime or tensorrt)")
        if precision == "fp16" and config.device != "cuda":
            return skipped(backend, precision, "eager", config.mode, size, config.batch,
                           "FP16 PyTorch needs CUDA (--device cuda); CPU FP16 convolutions are not a deployment path")
        return torch_row(model, precision, config, inputs, size)
    if backend == "tensorrt" and trt_reason:
        return skipped(backend, precision, graph, config.mode, size, config.batch, trt_reason)
    try:
        onnx_dir = export_split(config, precision, size, workdir, int8_target)
        if backend == "onnxruntime":
            return backend_rows("onnxruntime", precision, onnx_dir, config, inputs, size, ort_options, graph)
        from infusionnet.export.trt_build import BuildOptions, build_engines
        engine_dir = workdir / f"trt-{onnx_dir.name}"
        if not engine_dir.exists():
            build_engines(onnx_dir, engine_dir, BuildOptions(precision=precision), log=lambda *a, **k: None)
        return backend_rows("tensorrt", precision, engine_dir, config, inputs, size, {}, graph)
    except InfusionNetError as error:
        return skipped(backend, precision, graph, config.mode, size, config.batch, str(error), status="failed")
