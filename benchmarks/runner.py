"""`infusionnet bench`: latency, memory and accuracy across backends x precisions x resolutions.

Every run has a reference row per size: the network as the authors' test path runs it (PyTorch
eager FP32, AdaConv's per-sample loop, the style encoded for every frame). Every other row's
speed-up is measured against that row of the same run, so results compare across machines.

Rows time one frame through their stages: pre-processing (uint8 frame -> normalized tensor),
style (the style graph; skipped per frame in cached-style mode, where kernels are computed once
and held by the content graph), content (content encoder + decoder) and post-processing
(denormalize to uint8). Inputs are real sample images, and every row's output is compared with
the PyTorch FP32 output for the same inputs.

By default rows are timed one after another. On a machine whose other load drifts, that makes
each ratio compare different minutes; ``rounds`` > 1 prepares every row of a size first and
times them interleaved (A B C, A B C, ...), and the report gives the spread of the per-round
ratios beside the median.
"""
import copy
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

import numpy as np

from infusionnet.runtime import images
from infusionnet.runtime.backend import BACKENDS
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.lazy import MissingDependency, lazy_import, load
from infusionnet.runtime.manifest import PRECISIONS
from infusionnet.runtime.metrics import image_metrics
from infusionnet.runtime.ort_backend import GPU_PROVIDERS
from infusionnet.runtime.model_choice import describe
from infusionnet.runtime.samples import load_sample
from infusionnet.runtime.sizes import Size, split_list
from infusionnet.runtime.stylizer import make_backends

from . import memory
from .peak import content_macs, measure_peaks
from .timing import StageTimer, latency_stats, measure

# A run needs torch (the reference rows), the networks, the export pipeline and the engine builder:
# imported when it starts, not for `infusionnet bench --help` (which reads MODES). The other
# backends' packages are probed before their rows run (rows that cannot run say why).
torch = lazy_import("torch")
models = lazy_import("infusionnet.models")
default_model = lazy_import("infusionnet.models.default_model")
models_device = lazy_import("infusionnet.models.device")
pipeline = lazy_import("infusionnet.export.pipeline")
verify = lazy_import("infusionnet.export.verify")
trt_build = lazy_import("infusionnet.export.trt_build")
rich_console = lazy_import("rich.console")
onnxruntime = lazy_import("onnxruntime")
tensorrt = lazy_import("tensorrt")
pycuda_driver = lazy_import("pycuda.driver")
openvino = lazy_import("openvino")
nncf = lazy_import("nncf")

MODES = ("cached-style", "full")
CONTENT_SAMPLE, STYLE_SAMPLE = "astronaut", "hubble_deep_field"


class BenchError(InfusionNetError):
    """Options the benchmark cannot run with."""


@dataclass
class BenchConfig:
    backends: Sequence[str] = ("torch", "onnxruntime", "tensorrt")
    precisions: Sequence[str] = PRECISIONS
    sizes: Sequence[Tuple[int, int]] = (Size(256, 256), Size(512, 512))
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
    rounds: int = 1  # > 1: rows timed interleaved in this many rounds (see measure_interleaved)

    def settings(self) -> dict:
        return {"mode": self.mode, "batch": self.batch, "warmup": self.warmup, "iterations": self.iterations,
                "seconds": self.seconds, "threads": self.threads, "style_size": self.style_size,
                "device": self.device, "rounds": self.rounds, "checkpoint": describe(self.checkpoint),
                "content_sample": CONTENT_SAMPLE, "style_sample": STYLE_SAMPLE, "torch_flush_denormal": True}


def parse_list(values, allowed: Sequence[str], what: str) -> List[str]:
    """Names separated by commas, spaces or both (one string, or several: argparse's nargs="+")."""
    items = split_list(values)
    unknown = [item for item in items if item not in allowed]
    if unknown or not items:
        raise BenchError(f"unknown {what} {', '.join(unknown) or '(none)'}: choose from {', '.join(allowed)}")
    return items


def size_label(size: Tuple[int, int]) -> str:
    return str(Size(*size))


# -- inputs and the PyTorch reference -----------------------------------------------------------

class Inputs:
    """Real sample images at one content size, and the PyTorch FP32 output for them."""

    def __init__(self, model, size: Tuple[int, int], style_size: int, batch: int):
        content = images.Resize.exact(size).apply(load_sample(CONTENT_SAMPLE))
        style = images.Resize.square(style_size).apply(load_sample(STYLE_SAMPLE))
        self.frames = np.repeat(content[None], batch, axis=0)           # uint8 NHWC, what a camera gives
        self.style = np.ascontiguousarray(images.normalize(np.repeat(style[None], batch, axis=0)))
        with torch.inference_mode():
            out = model(torch.from_numpy(images.normalize(self.frames)), torch.from_numpy(self.style))
        self.expected = out.numpy()                                     # normalized float, the FP32 truth

    def accuracy(self, output: np.ndarray) -> dict:
        """The accuracy columns: the comparator's uint8 PSNR and max abs against the FP32 truth."""
        metrics = image_metrics(np.asarray(output, dtype=np.float32), self.expected, with_ssim=False)
        return {"psnr_db": metrics["psnr_db"], "max_abs": metrics["max_abs"]}


# -- rows ---------------------------------------------------------------------------------------

def _row(backend: str, precision: str, graph: str, mode: str, size, batch: int) -> dict:
    return {"backend": backend, "precision": precision, "graph": graph, "mode": mode, "size": size_label(size),
            "batch": batch, "status": "ok"}


def skipped(backend, precision, graph, mode, size, batch, reason: str, status: str = "skipped") -> dict:
    row = _row(backend, precision, graph, mode, size, batch)
    row.update(status=status, reason=reason)
    return row


@dataclass
class Candidate:
    """A row ready to time: its fields, its stages and how to wait for its device.

    Preparing (exports, engines, open sessions, cached kernels) is kept apart from timing so
    that rows can be timed one after another (sequential) or in interleaved rounds.
    """
    row: dict
    stages: Dict[str, Callable]
    synchronize: Callable[[], None] = lambda: None
    gpu_memory: Optional[Callable[[], float]] = None
    details: dict = field(default_factory=dict)  # extra row fields known once open (compute precision)

    def frame(self, inputs: "Inputs") -> Callable[[], np.ndarray]:
        """One frame through every stage: preprocess -> [style] -> content -> postprocess."""
        stages = self.stages

        def run():
            tensor = images.normalize(inputs.frames)
            if "style" in stages:
                stages["style"]()
            out = stages["content"](tensor)
            images.denormalize(out)
            return out

        return run

    def stage_means(self, inputs: "Inputs", passes: int) -> Tuple[Dict[str, float], np.ndarray]:
        """Per-stage means from a separate pass (stage clocks would inflate the headline latency)
        and the last output."""
        timer = StageTimer(self.synchronize)
        out = None
        for _ in range(passes):
            tensor = timer.time("preprocess", lambda: images.normalize(inputs.frames))
            if "style" in self.stages:
                timer.time("style", self.stages["style"])
            out = timer.time("content", lambda: self.stages["content"](tensor))
            timer.time("postprocess", lambda: images.denormalize(out))
        means = timer.means_ms()
        means.setdefault("style", 0.0)
        return means, np.asarray(out)

    def finish(self, inputs: "Inputs", samples: List[float], peak_rss_mb: Optional[float]) -> dict:
        row = dict(self.row, **self.details)
        stage_means, output = self.stage_means(inputs, max(3, min(10, len(samples))))
        row.update(latency=latency_stats(samples), stages_ms=stage_means, accuracy=inputs.accuracy(output),
                   peak_rss_mb=peak_rss_mb, gpu_mem_mb=self.gpu_memory() if self.gpu_memory else None)
        return row


def measure_row(candidate: Candidate, config: BenchConfig, inputs: Inputs) -> dict:
    """Time one prepared row on its own (the sequential mode)."""
    memory.reset_peak_rss()
    samples = measure(candidate.frame(inputs), warmup=config.warmup, iterations=config.iterations,
                      seconds=config.seconds, synchronize=candidate.synchronize)
    return candidate.finish(inputs, samples, memory.peak_rss_mb())


def measure_interleaved(candidates: Sequence[Candidate], config: BenchConfig, inputs: Inputs,
                        peak_log: Optional[List[dict]] = None) -> List[dict]:
    """Time prepared rows in rounds, A B C, A B C, ...: each round gives every row ``--iters``
    runs or ``--seconds``, so the rows of one round share the same minutes of a machine whose
    other load drifts. Rows keep all their samples and each round's median ("round_medians_ms"),
    from which ``report.add_speedups`` takes per-round ratios. With ``peak_log`` the CPU's GEMM
    peaks are measured after every round too (appended to it, and per round in each row's
    "round_peaks_gmacs"), so each row's share of the peak compares the same minutes as well.
    Peak RSS is left out: every row is loaded at once, so the process peak is no row's own."""
    frames = [candidate.frame(inputs) for candidate in candidates]
    for candidate, frame in zip(candidates, frames):
        for _ in range(config.warmup):
            frame()
        candidate.synchronize()
    samples = [[] for _ in candidates]  # type: List[List[float]]
    medians = [[] for _ in candidates]  # type: List[List[float]]
    round_peaks = []  # type: List[dict]
    for _ in range(config.rounds):
        for index, (candidate, frame) in enumerate(zip(candidates, frames)):
            taken = measure(frame, warmup=0, iterations=config.iterations, seconds=config.seconds,
                            synchronize=candidate.synchronize, min_iterations=1)
            samples[index].extend(taken)
            medians[index].append(float(np.median(taken)))
        if peak_log is not None:
            round_peaks.append(measure_peaks(config.threads))
    if peak_log is not None:
        peak_log.extend(round_peaks)
    rows = []
    for candidate, taken, round_medians in zip(candidates, samples, medians):
        row = candidate.finish(inputs, taken, None)
        row["round_medians_ms"] = round_medians
        if round_peaks:
            row["round_peaks_gmacs"] = {name: [peaks[name]["gmacs"] for peaks in round_peaks] for name in round_peaks[0]}
        rows.append(row)
    return rows


def prepare_reference(model, config: BenchConfig, inputs: Inputs, size) -> Candidate:
    """The authors' test path: eager FP32, AdaConv looped over the batch, style every frame.
    It runs on its own copy of the model, so other rows can be prepared beside it."""
    net = copy.deepcopy(model).use_reference_adaconv(True)
    style = torch.from_numpy(inputs.style)
    kernels = {}

    @torch.inference_mode()
    def style_stage():
        kernels["k"] = net.style_kernels(style)

    @torch.inference_mode()
    def content_stage(tensor):
        return net.decode(net.encode_content(torch.from_numpy(tensor)), kernels["k"])[0].numpy()

    return Candidate(_row("reference", "fp32", "full", "full", size, config.batch),
                     {"style": style_stage, "content": content_stage})


def prepare_backend(backend_name: str, precision: str, export_dir: Path, config: BenchConfig, inputs: Inputs,
                    size, model_options: dict, graph: str, resources: ExitStack) -> Candidate:
    """A row through a runtime backend over the split graphs of ``export_dir``; ``graph`` labels it.
    The backends stay open until ``resources`` closes."""
    backends = make_backends(export_dir, backend_name, checkpoint=config.checkpoint, **model_options)
    style_backend = resources.enter_context(backends["style"])
    content_backend = resources.enter_context(backends["content"])
    kernels = style_backend.run({"style": inputs.style})
    stages = {"content": lambda tensor: content_backend.run({"content": tensor})["stylized"]}
    if config.mode == "cached-style":
        content_backend.hold(kernels)
    else:
        def style_stage():
            content_backend.hold(style_backend.run_on_device({"style": inputs.style}))
        stages["style"] = style_stage
    details = {}
    computed = getattr(content_backend, "compute_precision", None)
    if computed:  # OpenVINO: what the convolutions really ran in (BF16 by default on AMX CPUs)
        details["compute_precision"] = computed
    return Candidate(_row(backend_name, precision, graph, config.mode, size, config.batch), stages,
                     synchronize=getattr(content_backend, "synchronize", lambda: None), details=details)


def prepare_torch(model, precision: str, config: BenchConfig, inputs: Inputs, size) -> Candidate:
    """PyTorch with batched AdaConv (this project's form), at fp32 (CPU/CUDA) or fp16 (CUDA), on
    its own copy of the model."""
    device = torch.device(config.device)
    dtype = torch.float16 if precision == "fp16" else torch.float32
    net = copy.deepcopy(model).to(device=device, dtype=dtype)
    style = torch.from_numpy(inputs.style).to(device, dtype)
    with torch.inference_mode():
        cached = net.style_kernels(style)
    kernels = {"k": cached}

    @torch.inference_mode()
    def style_stage():
        kernels["k"] = net.style_kernels(style)

    @torch.inference_mode()
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
    return Candidate(_row("torch", precision, "eager", config.mode, size, config.batch), stages, sync, gpu)


MEASURE_ONLY_PSNR = 1.0  # dB: any finite output passes the export's own check


def export_split(config: BenchConfig, precision: str, size, workdir: Path, int8_target: Optional[str] = None
                 ) -> Path:
    """An ONNX split export at ``precision`` for this size (static shapes: what a deployment uses)."""
    layout = f"-{int8_target}" if int8_target else ""
    target = workdir / f"onnx-{precision}{layout}-{size_label(size)}-b{config.batch}"
    if not (target / "manifest.json").is_file():
        # bench measures accuracy itself (its PSNR column): an export below its precision's floor
        # is still timed and shown with its accuracy, not turned into a failed row.
        measure_only = verify.Tolerances(fp16_min_psnr=MEASURE_ONLY_PSNR, int8_min_psnr=MEASURE_ONLY_PSNR)
        pipeline.run_export(pipeline.ExportConfig(
            output=target, graph="split", checkpoint=config.checkpoint, variant=config.variant, batch=config.batch,
            content_size=tuple(size), style_size=config.style_size, precision=precision, int8_target=int8_target,
            tolerances=measure_only), console=rich_console.Console(quiet=True))
    return target


def tensorrt_unavailable() -> Optional[str]:
    try:
        load(tensorrt)  # only: is it installed?
    except ImportError:
        return "TensorRT is not installed (needs an NVIDIA GPU machine: pip install .[tensorrt] or JetPack)"
    try:
        cuda = load(pycuda_driver)
        cuda.init()
        if cuda.Device.count() == 0:
            return "no NVIDIA GPU visible"
    except Exception as error:  # pycuda missing, or no driver
        return f"pycuda/CUDA driver unavailable ({type(error).__name__}: {error})"
    return None


def openvino_unavailable(precision: str) -> Optional[str]:
    """Why OpenVINO rows (and, for INT8, NNCF) cannot run here, or None."""
    try:
        load(openvino)  # only: is it installed?
    except ImportError:
        return "OpenVINO is not installed (pip install .[openvino])"
    if precision == "int8":
        try:
            load(nncf)
        except ImportError:
            return "NNCF is not installed (pip install .[openvino]): OpenVINO's INT8 graphs come from it"
    return None


class PlanRow(NamedTuple):
    """One row to run: backend, precision, INT8 target (graph layout) and OpenVINO precision."""
    backend: str
    precision: str
    int8_target: Optional[str] = None
    ov_precision: Optional[str] = None


def plan_rows(config: BenchConfig) -> List[PlanRow]:
    """The rows in the order they run. INT8 graphs are TensorRT's explicit Q/DQ form; ONNX Runtime
    on the CPU also gets a row with the graph laid out for its CPU kernels (``export --int8-target
    cpu``), since that is what a CPU deployment would use. OpenVINO runs the FP32 graph twice,
    with its defaults (what a CPU user gets: BF16 on CPUs with AMX or AVX-512 BF16) and forced to
    FP32, and NNCF's INT8 graph with its defaults."""
    plan = []
    for backend in config.backends:
        for precision in config.precisions:
            if backend == "openvino":
                if precision == "fp32":
                    plan += [PlanRow(backend, precision, None, "default"), PlanRow(backend, precision, None, "fp32")]
                elif precision == "int8":
                    plan.append(PlanRow(backend, precision, "openvino", "default"))
                else:
                    plan.append(PlanRow(backend, precision))
                continue
            if precision != "int8" or backend == "torch":
                plan.append(PlanRow(backend, precision))
                continue
            plan.append(PlanRow(backend, precision, "tensorrt"))
            if backend == "onnxruntime" and config.device == "cpu":
                plan.append(PlanRow(backend, precision, "cpu"))
    return plan


def run_benchmark(config: BenchConfig, progress: Optional[Callable[[str], None]] = None,
                  peak_log: Optional[List[dict]] = None) -> List[dict]:
    """Every row of every size. With interleaved rounds and a ``peak_log`` list, the CPU's peaks
    are measured in each round (see ``measure_interleaved``) and collected there."""
    progress = progress or (lambda text: None)
    if config.rounds < 1:
        raise BenchError(f"--rounds must be at least 1, not {config.rounds}")
    if config.threads:
        torch.set_num_threads(config.threads)
    # Untrained weights leave denormal floats in the style path, which slow CPU convolutions many
    # times over; flushing them for every torch row (the reference too) keeps speed-ups honest.
    torch.set_flush_denormal(True)
    model = default_model.resolve_network(config.checkpoint, config.variant)[0]
    models.validate_style_size(model.variant, config.style_size)
    models_device.torch_device(config.device, BenchError)
    trt_reason = tensorrt_unavailable() if "tensorrt" in config.backends else None
    context = {"model": model, "trt_reason": trt_reason,
               "ort_options": {"intra_op_threads": config.threads} if config.threads else {}}

    rows = []
    with tempfile.TemporaryDirectory(prefix="infusionnet-bench-") as scratch:
        context["workdir"] = Path(config.workdir) if config.workdir else Path(scratch)
        for size in config.sizes:
            progress(f"{size_label(size)}: PyTorch FP32 reference output")
            inputs = Inputs(model, size, config.style_size, config.batch)
            macs = content_macs(model, size, config.batch)
            plan = ([None] if config.reference else []) + plan_rows(config)
            if config.rounds > 1:
                size_rows = _interleaved(plan, config, inputs, size, context, progress, peak_log)
            else:
                size_rows = []
                for item in plan:
                    progress(f"{size_label(size)}: {_describe(item)}")
                    with ExitStack() as resources:
                        prepared = _prepare(item, config, inputs, size, context, resources)
                        size_rows.append(prepared if isinstance(prepared, dict)
                                         else measure_row(prepared, config, inputs))
            for row in size_rows:
                row["content_gmac"] = macs / 1e9
            rows += size_rows
    return rows


def _interleaved(plan, config: BenchConfig, inputs: Inputs, size, context: dict, progress,
                 peak_log: Optional[List[dict]]) -> List[dict]:
    """Prepare every row of one size, then time them together in rounds; rows in plan order."""
    with ExitStack() as resources:
        prepared = []
        for item in plan:
            progress(f"{size_label(size)}: prepare {_describe(item)}")
            prepared.append(_prepare(item, config, inputs, size, context, resources))
        candidates = [p for p in prepared if isinstance(p, Candidate)]
        progress(f"{size_label(size)}: {config.rounds} interleaved rounds of {len(candidates)} rows")
        timed = iter(measure_interleaved(candidates, config, inputs, peak_log))
        return [p if isinstance(p, dict) else next(timed) for p in prepared]


def _describe(item: Optional[PlanRow]) -> str:
    if item is None:
        return "reference (authors' test path)"
    layout = {"cpu": " (CPU layout)", "openvino": " (NNCF)"}.get(item.int8_target or "", "")
    ov = f" ({item.ov_precision})" if item.ov_precision and item.precision != "int8" else ""
    return f"{item.backend} {item.precision}{layout}{ov}"


# ONNX Runtime's CPU provider casts FP16 back to FP32 around most kernels: slower than FP32 on every
# CPU measured (this project's bench on a 2-core AMD EPYC, 512x512: 462 vs 336 ms, 256x256: 145 vs
# 77 ms; issue 16's run on a 2-core Intel Xeon with AMX, 512x512: 504 vs 368 ms), so bench does
# not offer it as a CPU row.
ORT_CPU_FP16_REASON = ("ONNX Runtime's CPU provider runs FP16 graphs slower than FP32 (it casts around most "
                       "kernels): not a CPU path; FP16 rows run with the CUDA or TensorRT provider")


def onnxruntime_has_gpu() -> bool:
    """Whether the installed ONNX Runtime has a GPU provider (CUDA or TensorRT) to run FP16 on."""
    return bool(set(GPU_PROVIDERS) & set(onnxruntime.get_available_providers()))


def graph_label(mode: str, int8_target: Optional[str] = None, ov_precision: Optional[str] = None) -> str:
    """The graph column: which graphs run per frame, "/cpu-int8" for the CPU INT8 layout,
    "/nncf-int8" for NNCF's, and "/ov-default" or "/ov-fp32" for OpenVINO's precision setting."""
    graph = "content" if mode == "cached-style" else "style+content"
    graph += {"cpu": "/cpu-int8", "openvino": "/nncf-int8"}.get(int8_target or "", "")
    if ov_precision and int8_target is None:
        graph += f"/ov-{ov_precision}"
    return graph


def _prepare(item: Optional[PlanRow], config: BenchConfig, inputs: Inputs, size, context: dict,
             resources: ExitStack):
    """A Candidate for one plan row (None: the reference), or a skipped/failed row dict."""
    model, batch, mode = context["model"], config.batch, config.mode
    if item is None:
        return prepare_reference(model, config, inputs, size)
    backend, precision, int8_target, ov_precision = item
    graph = graph_label(mode, int8_target, ov_precision)
    if backend == "torch":
        if precision == "int8":
            return skipped(backend, precision, "eager", mode, size, batch,
                           "PyTorch eager has no INT8 path here (use onnxruntime or tensorrt)")
        if precision == "fp16" and config.device != "cuda":
            return skipped(backend, precision, "eager", mode, size, batch,
                           "FP16 PyTorch needs CUDA (--device cuda); CPU FP16 convolutions are not a deployment path")
        return prepare_torch(model, precision, config, inputs, size)
    if backend == "tensorrt" and context["trt_reason"]:
        return skipped(backend, precision, graph, mode, size, batch, context["trt_reason"])
    if backend == "onnxruntime" and precision == "fp16" and not onnxruntime_has_gpu():
        return skipped(backend, precision, graph, mode, size, batch, ORT_CPU_FP16_REASON)
    if backend == "openvino":
        reason = openvino_unavailable(precision)
        if precision == "fp16":
            reason = ("OpenVINO's CPU plugin computes in FP32, BF16 or INT8; an FP16 graph is no CPU path "
                      "(the fp32 rows show its defaults)")
        if reason:
            return skipped(backend, precision, graph, mode, size, batch, reason)
    try:
        onnx_dir = export_split(config, precision, size, context["workdir"], int8_target)
        if backend == "onnxruntime":
            return prepare_backend("onnxruntime", precision, onnx_dir, config, inputs, size, context["ort_options"],
                                   graph, resources)
        if backend == "openvino":
            options = {"precision": ov_precision or "default", "threads": config.threads}
            return prepare_backend("openvino", precision, onnx_dir, config, inputs, size, options, graph, resources)
        engine_dir = context["workdir"] / f"trt-{onnx_dir.name}"
        if not engine_dir.exists():
            trt_build.build_engines(onnx_dir, engine_dir, trt_build.BuildOptions(precision=precision),
                                    log=lambda *a, **k: None)
        return prepare_backend("tensorrt", precision, engine_dir, config, inputs, size, {}, graph, resources)
    except MissingDependency:  # stops the run, as a failed import did: not one row's failure
        raise
    except InfusionNetError as error:
        return skipped(backend, precision, graph, mode, size, batch, str(error), status="failed")
