"""`infusionnet export onnx` as a list of steps.

    validate  -> load model -> [bake style kernels] ->
    trace (unrolled AdaConv, static pooling) -> simplify -> precision (fp16 / int8) ->
    verify against PyTorch -> TensorRT compatibility -> metadata + manifest

Each step is a function of its own module (trace.py, simplify.py, precision.py, verify.py) with
its own tests; this module only orders them, reports progress and owns the output directory:
everything is built in a temporary directory that replaces ``--output`` only when every step,
verification included, succeeded (``runtime.fileio.atomic_directory``).
"""
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import onnx
import onnxslim
import torch
from rich.console import Console

from infusionnet.models import VARIANTS, validate_content_size, validate_style_size
from infusionnet.models.default_model import resolve_network
from infusionnet.models.networks import CONTENT_SIZE_MULTIPLE, MIN_CONTENT_SIZE
from infusionnet.runtime import images, samples
from infusionnet.runtime import manifest as manifest_schema
from infusionnet.runtime.compare import Case, Report, check_sizes, print_report
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import atomic_directory, check_output_location, file_sha256
from infusionnet.runtime.lazy import lazy_import
from infusionnet.runtime.model_choice import is_untrained
from infusionnet.runtime.manifest import Manifest

from . import calibration as calib
from .graphs import GRAPH_KINDS, build_graph_specs
from .calibration import CALIBRATION_METHODS, DEFAULT_CALIBRATION_METHOD
from .onnx_nodes import graph_io
from .precision import INT8_OPS_BY_TARGET, INT8_ROLES, INT8_TARGETS, PRECISIONS, to_fp16, to_int8
from .simplify import dynamic_weight_convs, simplify
from .trace import DEFAULT_OPSET, MAX_OPSET, MIN_OPSET, exportable, trace
from .trt_compat import check_trt_compat
from .openvino_int8 import is_openvino_ir, quantize_for_openvino
from .verify import Tolerances, TorchReference, manifest_record, verify

# Its version for the manifest: verification has run the graphs in it by then (runtime.ort_backend).
onnxruntime = lazy_import("onnxruntime")

TRT_VERSIONS = ("8.2", "8.5", "8.6", "10")
DEFAULT_CALIBRATION_BATCHES = 16
# INT8 calibration runs every activation of the graph through ONNX Runtime's calibrator, which
# keeps them: one 1080x1920 sample took 11.6 GB. The network is fully convolutional and its
# activation ranges come from image content, not image size, so larger exports calibrate at
# this many pixels (same aspect ratio) and the ranges quantize the full-size graph. The export's
# verification at full size then judges the result as always (tests/test_export_calibration_size.py
# compares it with calibrating at full size).
CALIBRATION_MAX_PIXELS = 512 * 512
NORMALIZATION_SCALE = "pixel / 255, then (x - mean) / std per channel; outputs the same way back"


class ExportConfigError(InfusionNetError):
    """An export option is invalid; raised before any heavy work."""


class VerificationFailed(InfusionNetError):
    """An exported graph does not match PyTorch closely enough; the output was not written."""


@dataclass
class ExportConfig:
    output: Path
    graph: str = "split"
    checkpoint: Optional[str] = None
    variant: Optional[str] = None
    seed: int = 0
    batch: int = 1
    content_size: Tuple[int, int] = (256, 256)
    style_size: int = 256
    style_image: Optional[str] = None
    dynamic_size: bool = False
    precision: str = "fp32"
    calibration: Optional[str] = None
    calibration_method: str = DEFAULT_CALIBRATION_METHOD
    int8_target: Optional[str] = None  # "tensorrt" (default for int8), "cpu" or "openvino"; see precision.py
    calibration_batches: int = DEFAULT_CALIBRATION_BATCHES
    int8_keep_float: Tuple[str, ...] = ()  # static-weight nodes left in float (int8_sensitivity)
    opset: int = DEFAULT_OPSET
    overwrite: bool = False
    tolerances: Tolerances = field(default_factory=Tolerances)
    trt_versions: Tuple[str, ...] = TRT_VERSIONS


@dataclass
class LoadedModel:
    model: torch.nn.Module
    checkpoint: Dict[str, Optional[str]]  # {"file": ..., "sha256": ...}


# -- step 0: validation (cheap, before anything heavy) -------------------------------------------

def validate_config(config: ExportConfig) -> None:
    """Raise ExportConfigError (one line) for any option that cannot work; touches no output."""
    def fail(message: str):
        raise ExportConfigError(message)

    if config.graph not in GRAPH_KINDS:
        fail(f"--graph {config.graph!r} is not one of {', '.join(GRAPH_KINDS)}")
    if config.precision not in PRECISIONS:
        fail(f"--precision {config.precision!r} is not one of {', '.join(PRECISIONS)}")
    if config.calibration_method not in CALIBRATION_METHODS:
        fail(f"--calibration-method {config.calibration_method!r} is not one of {', '.join(CALIBRATION_METHODS)}")
    if config.variant is not None and config.variant not in VARIANTS:
        fail(f"--variant {config.variant!r} is not one of {', '.join(VARIANTS)}")
    if not 1 <= config.batch <= 64:
        fail(f"--batch {config.batch} must be between 1 and 64 (it is fixed in the graph)")
    if not MIN_OPSET <= config.opset <= MAX_OPSET:
        fail(f"--opset {config.opset} is not supported; choose {MIN_OPSET}..{MAX_OPSET} (default {DEFAULT_OPSET})")
    if config.int8_keep_float and config.precision != "int8":
        fail("--int8-keep-float only applies to --precision int8")
    if config.calibration_batches < 1:
        fail(f"--calibration-batches {config.calibration_batches} must be at least 1")
    validate_content_size(*config.content_size)
    # Without a checkpoint the variant is known now. A checkpoint's variant is known only once it
    # is read: the size must fit one of the variants now, and is checked again after loading.
    if config.checkpoint is None or config.variant is not None:
        validate_style_size(config.variant or "infusionnet", config.style_size)
    else:
        errors = []
        for variant in VARIANTS:
            try:
                validate_style_size(variant, config.style_size)
            except InfusionNetError as error:
                errors.append(error)
        if len(errors) == len(VARIANTS):
            raise errors[-1]
    if config.graph == "baked" and not config.style_image:
        fail("--graph baked needs --style-image IMG (or sample:NAME): its kernels are baked into the graph")
    if config.style_image and config.graph != "baked":
        fail(f"--style-image only applies to --graph baked (a {config.graph} graph takes the style as an input)")
    if config.style_image:
        _style_path(config.style_image)
    if config.int8_target is not None:
        if config.precision != "int8":
            fail("--int8-target only applies to --precision int8")
        if config.int8_target not in INT8_TARGETS:
            fail(f"--int8-target {config.int8_target!r} is not one of {', '.join(INT8_TARGETS)}")
    if config.calibration is not None:
        if config.precision != "int8":
            fail("--calibration only applies to --precision int8")
        if not Path(config.calibration).is_dir():
            fail(f"--calibration {config.calibration}: no such folder")
    if config.checkpoint is not None and not is_untrained(config.checkpoint):
        path = Path(config.checkpoint)
        if not path.is_file():
            fail(f"--checkpoint {path}: " + ("is a directory, expected a .pth or .safetensors file"
                                              if path.is_dir() else "no such file"))
    tolerances = config.tolerances
    if not (tolerances.fp32_max_abs > 0 and tolerances.fp16_min_psnr > 0 and tolerances.int8_min_psnr > 0):
        fail("verification limits must be positive")
    output = Path(config.output)
    if output.exists() and not output.is_dir():
        fail(f"--output {output} exists and is not a directory")
    if output.exists() and not config.overwrite:
        fail(f"--output {output} already exists (pass --overwrite to replace it)")
    check_output_location(output, directory=True)


def _style_path(text: str) -> Path:
    path = Path(samples.resolve_image_arg(text))
    if not path.is_file():
        raise ExportConfigError(f"--style-image {text}: no such file")
    return path


# -- step 1: the model ---------------------------------------------------------------------------

def load_model(config: ExportConfig) -> LoadedModel:
    """The network ``config.checkpoint`` selects (strict load): a file, the bundled default model
    (none given) or the seeded untrained network ("untrained")."""
    model, info = resolve_network(config.checkpoint, config.variant, config.seed)
    validate_style_size(model.variant, config.style_size)
    return LoadedModel(model.eval(), info)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


def style_tensor(text: str, size: int) -> Tuple[np.ndarray, Dict[str, str]]:
    """A style image argument -> normalized (1, 3, size, size), resized and centre-cropped."""
    path = _style_path(text)
    rgb, _ = images.prepare_image(images.read_image(path), images.Resize.square(size))
    return images.normalize(rgb), {"argument": str(text), "file": path.name, "sha256": file_sha256(path)}


# -- step 2: the graphs -------------------------------------------------------------------------

def bake_kernels(model: torch.nn.Module, style: np.ndarray) -> Dict[str, torch.Tensor]:
    """The kernels of one style image (batch 1), to be folded into a baked graph."""
    with torch.no_grad():
        return {name: tensor.detach().clone() for name, tensor in model.style_kernels(torch.from_numpy(style)).items()}


def export_fp32(model: torch.nn.Module, config: ExportConfig, directory: Path,
                baked_kernels: Optional[Dict[str, torch.Tensor]] = None, progress=None) -> Dict[str, Path]:
    """Trace and simplify each graph of ``config.graph`` into ``directory``; role -> path."""
    paths = {}
    with exportable(model, config.batch):
        specs = build_graph_specs(model, config.graph, config.batch, config.content_size, config.style_size,
                                  config.dynamic_size, baked_kernels)
        for spec in specs:
            path = Path(directory) / spec.file_name
            with _step(progress, f"trace {spec.role} graph (opset {config.opset})"):
                trace(spec, path, config.opset)
            with _step(progress, f"simplify {spec.role} graph (onnxslim, checker, shape inference)"):
                simplify(path)
            paths[spec.role] = path
    return paths


def int8_target(config: ExportConfig) -> Optional[str]:
    """The INT8 graph's target runtime (None unless --precision int8)."""
    if config.precision != "int8":
        return None
    return config.int8_target or INT8_TARGETS[0]


INT8_BELOW_FLOOR_HINT = ("; find the layers to keep in float with `python -m infusionnet.benchmarks.int8_sensitivity` "
                         "and pass them to --int8-keep-float, try --int8-target tensorrt, or accept the loss "
                         "with --int8-min-psnr")


def calibration_size(content_size: Tuple[int, int], max_pixels: Optional[int] = None) -> Tuple[int, int]:
    """The content size INT8 calibration runs at: ``content_size`` scaled down (aspect ratio kept,
    multiples of the network's size step) until it holds at most ``max_pixels``
    (default CALIBRATION_MAX_PIXELS)."""
    max_pixels = max_pixels or CALIBRATION_MAX_PIXELS
    height, width = content_size
    if height * width <= max_pixels:
        return int(height), int(width)
    scale = (max_pixels / (height * width)) ** 0.5
    return tuple(max(MIN_CONTENT_SIZE, int(side * scale) // CONTENT_SIZE_MULTIPLE * CONTENT_SIZE_MULTIPLE)
                 for side in (height, width))


def calibration_graphs(fp32: Dict[str, Path], config: ExportConfig, size: Tuple[int, int], reference: TorchReference,
                       scratch: Path, progress=None) -> Dict[str, Path]:
    """FP32 graphs that take content of ``size`` for calibration: the export's own graphs when
    they do (same size, or --dynamic-size), else the same network traced again at ``size``."""
    if tuple(size) == tuple(config.content_size) or config.dynamic_size:
        return fp32
    folder = Path(scratch) / "calibration-size"
    folder.mkdir(parents=True, exist_ok=True)
    small = replace(config, content_size=tuple(size))
    return export_fp32(reference.model, small, folder, reference.baked_kernels, progress)


def apply_precision(fp32: Dict[str, Path], config: ExportConfig, directory: Path, reference: TorchReference,
                    progress=None, scratch: Optional[Path] = None,
                    qdq_placement: Optional[str] = None) -> Tuple[Dict[str, Path], Optional[dict]]:
    """FP32 graphs -> graphs of ``config.precision`` in ``directory``; returns (paths, calibration info).

    INT8 calibrates at ``calibration_size`` (graphs traced at that size go to ``scratch``).
    ``qdq_placement`` overrides the INT8 target's Q/DQ placement (precision.QDQ_PLACEMENTS); only
    the placement measurement (benchmarks/qdq_placement.py) uses it.
    """
    if config.precision == "fp32":
        return fp32, None
    out = {}
    info = None
    runtime = int8_target(config)
    if config.precision == "int8":
        size = calibration_size(config.content_size)
        sources = calibration_graphs(fp32, config, size, reference, scratch or Path(directory), progress)
        content, style, description = calib.image_pairs(config.calibration)
        pairs = calib.PairFeed(content, style, config.batch, size, config.style_size,
                               limit=config.calibration_batches)
        info = {"method": config.calibration_method, "source": description, "batches": len(pairs),
                "batch": config.batch, "target": runtime, "content_size": list(size),
                "quantized_ops": list(INT8_OPS_BY_TARGET[runtime]), "float_dynamic_convs": {},
                "float_layers": list(config.int8_keep_float), "float_graphs": []}
    for role, path in fp32.items():
        target = Path(directory) / path.name
        if config.precision == "fp16":
            with _step(progress, f"convert {role} graph to FP16 (normalization and reductions in FP32)"):
                to_fp16(path, target)
        elif role not in INT8_ROLES:  # runs once per style: INT8 would cost accuracy, not frame time
            shutil.copyfile(str(path), str(target))
            info["float_graphs"].append(role)
        else:
            reader = calib.RoleFeed(pairs, role, reference.kernels)
            if runtime == "openvino":
                with _step(progress, f"quantize {role} graph to INT8 with NNCF for OpenVINO "
                                     f"({len(pairs)} batches of {description})"):
                    target = quantize_for_openvino(path, directory, role, reader)
            else:
                at = "" if tuple(size) == tuple(config.content_size) else f", calibrated at {size[0]}x{size[1]}"
                with _step(progress, f"quantize {role} graph to INT8 QDQ for {runtime} "
                                     f"({config.calibration_method}, {len(pairs)} batches of {description}{at})"):
                    to_int8(path, target, reader, config.calibration_method, int8_target=runtime,
                            calibration_source=sources[role], keep_float=config.int8_keep_float,
                            placement=qdq_placement)
            info["float_dynamic_convs"][role] = len(dynamic_weight_convs(onnx.load(str(path))))
        out[role] = target
    return out, info


# -- step 3: verification -----------------------------------------------------------------------

def verification_feeds(config: ExportConfig) -> List[Case]:
    """Fresh random images and one batch of the sample images at the export size; with
    --dynamic-size, random images at a second content size too."""
    sizes = check_sizes(config.content_size, config.dynamic_size)
    # Its own seed (check uses 20250): the images every manifest's verification record measured.
    return calib.image_cases(config.batch, config.style_size, sizes, samples=[1] + [0] * (len(sizes) - 1), seed=20240)


# -- step 4: TensorRT compatibility -------------------------------------------------------------

def check_trt(directory: Path, versions=TRT_VERSIONS) -> dict:
    """Summary of ``export.trt_compat`` per TensorRT version."""
    summary = {"available": True, "versions": {}}
    for version in versions:
        report = check_trt_compat(directory, version)
        data = report.summary() if hasattr(report, "summary") else dict(report)
        summary["versions"][version] = data
    return summary


def trt_line(summary: Optional[dict]) -> str:
    if not summary or not summary.get("available"):
        return "TensorRT compatibility: not checked" + (f" ({summary['reason']})" if summary else "")
    parts = []
    for version, data in summary["versions"].items():
        errors = data.get("errors", 0)
        parts.append(f"{version}: " + ("ok" if data.get("ok") else f"{errors} error(s)"))
    return "TensorRT compatibility: " + ", ".join(parts) + \
        " (details: infusionnet export check-trt DIR --trt VERSION)"


# -- step 5: manifest and metadata --------------------------------------------------------------

def exporter_versions() -> Dict[str, str]:
    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
                "onnxslim": onnxslim.__version__, "exporter": "torch.onnx TorchScript (dynamo=False)"}
    try:
        versions["infusionnet-edge"] = metadata.version("infusionnet-edge")
    except Exception:  # not installed as a distribution (running from a checkout)
        pass
    return versions


def build_manifest(config: ExportConfig, model: torch.nn.Module, checkpoint: dict, paths: Dict[str, Path],
                   verification: Report, trt: Optional[dict], calibration: Optional[dict],
                   style_image: Optional[dict], io_sources: Optional[Dict[str, Path]] = None) -> Manifest:
    graphs = []
    for role, path in paths.items():
        # OpenVINO IR (NNCF INT8) keeps the FP32 graph's inputs and outputs: read them there.
        inputs, outputs = graph_io(io_sources[role] if is_openvino_ir(path) else path)
        graphs.append({"role": role, "file": path.name, "inputs": [t.to_dict() for t in inputs],
                       "outputs": [t.to_dict() for t in outputs]})
    data = {
        "format": manifest_schema.FORMAT, "graph_kind": config.graph, "variant": model.variant,
        "precision": config.precision, "int8_target": int8_target(config), "opset": config.opset, "batch": config.batch,
        "content_size": list(config.content_size), "dynamic_size": config.dynamic_size,
        "style_size": config.style_size,
        "normalization": {"mean": list(images.MEAN), "std": list(images.STD), "color": "RGB", "layout": "NCHW",
                          "scale": NORMALIZATION_SCALE},
        "checkpoint": checkpoint, "style_image": style_image, "exporter": exporter_versions(),
        "graphs": graphs, "verification": manifest_record(verification, config.tolerances), "trt_compat": trt,
        "calibration": calibration, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    return Manifest(data)


def stamp_metadata(manifest: Manifest, paths: Dict[str, Path]) -> None:
    """Write the manifest's key facts into each graph's metadata_props; then record its sha256."""
    for role, path in paths.items():
        if is_openvino_ir(path):  # OpenVINO IR has no ONNX metadata; the manifest beside it says it all
            manifest.graphs[role].sha256 = file_sha256(path)
            continue
        model = onnx.load(str(path))
        del model.metadata_props[:]
        for key, value in manifest_schema.graph_metadata(manifest.data, role).items():
            model.metadata_props.add(key=key, value=value)
        model.producer_name = "infusionnet-edge"
        onnx.save(model, str(path))
        manifest.graphs[role].sha256 = file_sha256(path)


# -- the whole pipeline -------------------------------------------------------------------------

@contextmanager
def _step(progress, text: str):
    if progress is None:
        yield
        return
    with progress(text):
        yield


def run_export(config: ExportConfig, console=None) -> Manifest:
    """Validate, export, verify and write ``config.output``; returns the written manifest."""
    console = console or Console(stderr=True, highlight=False)
    validate_config(config)
    loaded = load_model(config)
    model = loaded.model

    @contextmanager
    def progress(text: str):
        start = time.perf_counter()
        with console.status(text + " ..."):
            yield
        console.print(f"[green]\u2713[/] {text} [dim]({time.perf_counter() - start:.1f} s)[/]", soft_wrap=True)

    style_image = baked = None
    if config.graph == "baked":
        with progress(f"bake kernels of {config.style_image}"):
            style, style_image = style_tensor(config.style_image, config.style_size)
            baked = bake_kernels(model, style)
    reference = TorchReference(model, baked)
    output = Path(config.output)
    created = _missing_parents(output)
    try:
        with atomic_directory(output, overwrite=config.overwrite) as target, \
                tempfile.TemporaryDirectory(prefix="infusionnet-export-") as scratch:
            fp32_dir = Path(scratch) if config.precision != "fp32" else target
            fp32 = export_fp32(model, config, fp32_dir, baked, progress)
            paths, calibration = apply_precision(fp32, config, target, reference, progress, Path(scratch))
            runner = "OpenVINO" if any(is_openvino_ir(p) for p in paths.values()) else "ONNX Runtime"
            with progress(f"verify {', '.join(paths)} in {runner} against PyTorch"):
                verification = verify({role: str(p) for role, p in paths.items()}, reference,
                                      verification_feeds(config), config.precision, config.tolerances, io_sources=fp32,
                                      int8_target=int8_target(config))
            print_report(verification, console)
            if not verification.passed:
                failed = verification.failures()[0]
                raise VerificationFailed(
                    f"verification failed: {failed.graphs} on {failed.inputs} {failed.size}: "
                    f"{'; '.join(failed.failures)} (limit {failed.limit}); nothing was written to {output}"
                    + (INT8_BELOW_FLOOR_HINT if config.precision == "int8" else ""))
            if int8_target(config) in ("cpu", "openvino"):
                trt = {"available": False, "reason": f"INT8 graphs for --int8-target {int8_target(config)} are "
                                                     "not TensorRT's; TensorRT needs --int8-target tensorrt"}
            else:
                with progress("check TensorRT compatibility (" + ", ".join(config.trt_versions) + ")"):
                    trt = check_trt(target, config.trt_versions)
            console.print(trt_line(trt), soft_wrap=True)
            manifest = build_manifest(config, model, loaded.checkpoint, paths, verification, trt, calibration,
                                      style_image, io_sources=fp32)
            stamp_metadata(manifest, paths)
            manifest.save(target)
    except BaseException:
        _remove_empty(created)
        raise
    manifest = Manifest.load(output)
    console.print(f"wrote {', '.join(g.file for g in manifest.graphs.values())} and "
                  f"{manifest_schema.MANIFEST_NAME} to {output}/", soft_wrap=True, markup=False)
    return manifest


def _missing_parents(path: Path) -> List[Path]:
    missing = []
    parent = Path(path).absolute().parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    return missing


def _remove_empty(folders: List[Path]) -> None:
    """Remove parent folders this run created, deepest first, if they stayed empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return
