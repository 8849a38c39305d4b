"""`infusionnet export trt`: one TensorRT engine per graph of an ONNX export directory.

The steps, each a function:

    plan_builds      manifest + options -> what to build (profiles, precision flags); pure, tested
    build_engine     one ONNX graph -> serialized engine bytes, with Polygraphy's loaders
    build_engines    every graph -> <role>.engine + <role>.engine.json sidecar + engines.json,
                     written atomically into the output directory

Precision:
- fp16: FP16 kernels allowed, but normalization and reductions are pinned to FP32 (layer
  precision constraints, obeyed): InstanceNorm's variance overflows FP16 on large activations.
- int8, explicit (default): the export's QDQ graph (``infusionnet export onnx --precision int8``)
  carries its own scales; INT8 and FP16 flags on, the same FP32 pins.
- int8, implicit (TensorRT 8.x only; deprecated in 10): an FP32 graph calibrated here with the
  entropy calibrator on the calibration images, with a calibration cache for reproducible
  rebuilds.

Polygraphy supplies the network parsing (with the right creation flags per version), the
builder config (profiles, memory pools, timing cache, optimization level, DLA), the calibrator
(device buffers without pycuda) and the build itself; what is written here is the project's
policy on top. This module never imports torch: engines are built on a Jetson without it.
"""
import json
import shlex
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from infusionnet.runtime.engine_sidecar import (EngineSidecar, Environment, platform_tag, write_engine_index,
                                                write_sidecar)
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import file_sha256
from infusionnet.runtime.fileio import atomic_directory
from infusionnet.runtime.manifest import Manifest
from infusionnet.runtime.trt_plan import HW, Profile, TensorSpec, derive_profile

PRECISIONS = ("fp32", "fp16", "int8")
INT8_MODES = ("explicit", "implicit")
OPT_LEVELS = range(0, 6)  # TensorRT's builder optimization levels (default 3)
# Layer types kept in FP32 under FP16/INT8 (tensorrt.LayerType member names).
FP32_LAYER_TYPES = ("NORMALIZATION", "REDUCE")


class TrtBuildError(InfusionNetError):
    """Options that cannot build, or a build that failed; the message says which graph and why."""


class BuildOptions(NamedTuple):
    precision: str = "fp16"
    int8_mode: str = "explicit"
    calibration: Optional[str] = None        # image folder for implicit INT8 (default: built-in samples)
    calibration_batches: int = 32
    calibration_cache: Optional[str] = None  # implicit INT8: reused when it exists (reproducible rebuilds)
    workspace_mb: Optional[int] = None
    min_hw: Optional[HW] = None
    opt_hw: Optional[HW] = None
    max_hw: Optional[HW] = None
    timing_cache: Optional[str] = None
    dla_core: Optional[int] = None
    opt_level: Optional[int] = None


class GraphBuild(NamedTuple):
    """What one engine is built from and how."""
    role: str
    onnx: Path
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    profile: Profile
    fp16: bool
    int8: bool
    calibrate: bool       # implicit INT8: run the calibrator on this graph
    fp32_pins: bool       # pin normalization/reductions to FP32


def _specs(tensors) -> Tuple[TensorSpec, ...]:
    return tuple(TensorSpec(t.name, tuple(t.shape), t.dtype) for t in tensors)


def plan_builds(manifest: Manifest, options: BuildOptions) -> List[GraphBuild]:
    """Check the options against the export and derive every graph's build (no TensorRT needed)."""
    precision = options.precision
    if precision not in PRECISIONS:
        raise TrtBuildError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if options.int8_mode not in INT8_MODES:
        raise TrtBuildError(f"--int8-mode must be one of {', '.join(INT8_MODES)}, not {options.int8_mode!r}")
    if options.opt_level is not None and options.opt_level not in OPT_LEVELS:
        raise TrtBuildError(f"--opt-level must be 0..5 (TensorRT's builder optimization level), not {options.opt_level}")
    if options.workspace_mb is not None and options.workspace_mb < 1:
        raise TrtBuildError(f"--workspace must be a positive number of MB, not {options.workspace_mb}")
    if options.dla_core is not None and options.dla_core < 0:
        raise TrtBuildError(f"--dla-core must be 0 or more, not {options.dla_core}")
    exported = manifest.precision
    where = manifest.directory or manifest.location
    if manifest.int8_target == "cpu":
        raise TrtBuildError(f"{where} holds INT8 graphs laid out for ONNX Runtime's CPU (--int8-target cpu: uint8 "
                            f"tensors between layers), which TensorRT cannot build; re-export with "
                            f"--precision int8 --int8-target tensorrt")
    if manifest.int8_target == "openvino":
        raise TrtBuildError(f"{where} holds INT8 graphs quantized by NNCF for OpenVINO (--int8-target openvino); "
                            f"re-export with --precision int8 --int8-target tensorrt for TensorRT")
    if exported == "int8" and not (precision == "int8" and options.int8_mode == "explicit"):
        raise TrtBuildError(f"{where} holds INT8 (QDQ) graphs: build them with --precision int8 (explicit), or "
                            "export FP32 graphs for an fp32/fp16 or implicit-INT8 engine")
    if precision == "int8" and options.int8_mode == "explicit" and exported != "int8":
        raise TrtBuildError(f"explicit INT8 needs the QDQ graphs of `infusionnet export onnx --precision int8`, and "
                            f"{where} is {exported}; or pass --int8-mode implicit (TensorRT 8.x) to calibrate here")
    if precision == "int8" and options.int8_mode == "implicit" and exported != "fp32":
        raise TrtBuildError(f"implicit INT8 calibrates an FP32 graph; {where} is {exported}")
    dynamic = manifest.dynamic_size
    sizes_given = any(hw is not None for hw in (options.min_hw, options.opt_hw, options.max_hw))
    if sizes_given and not dynamic:
        raise TrtBuildError(f"--min/--opt/--max need a dynamic-size export, and {where} is fixed at "
                            f"{manifest.content_size[0]}x{manifest.content_size[1]} (re-export with --dynamic-size)")
    calibrate = precision == "int8" and options.int8_mode == "implicit"
    builds = []
    for role, graph in manifest.graphs.items():
        inputs, outputs = _specs(graph.inputs), _specs(graph.outputs)
        profile = derive_profile(inputs, options.min_hw, options.opt_hw, options.max_hw,
                                 default_hw=tuple(manifest.content_size))  # type: ignore[arg-type]
        builds.append(GraphBuild(role, graph.path, inputs, outputs, profile, fp16=precision != "fp32",
                                 int8=precision == "int8", calibrate=calibrate, fp32_pins=precision != "fp32"))
    return builds


def fp32_layers(layers: Iterable[Tuple[str, str]]) -> List[str]:
    """Names of the layers to pin to FP32, from (layer name, LayerType member name) pairs.

    Native normalization and reduce layers by type; InstanceNorm parsed as a plugin (TensorRT
    8.5 without the native flag) by name.
    """
    pinned = []
    for name, kind in layers:
        squashed = name.lower().replace("_", "")
        if kind in FP32_LAYER_TYPES or (kind.startswith("PLUGIN") and "instancenorm" in squashed):
            pinned.append(name)
    return pinned


def build_command(onnx_dir: str, output: str, options: BuildOptions) -> str:
    """The command line that rebuilds these engines (stored in every sidecar)."""
    words = ["infusionnet", "export", "trt", "--onnx", str(onnx_dir), "--precision", options.precision]
    if options.precision == "int8":
        words += ["--int8-mode", options.int8_mode]
        if options.int8_mode == "implicit" and options.calibration:
            words += ["--calibration", str(options.calibration)]
        if options.int8_mode == "implicit" and options.calibration_cache:
            words += ["--calibration-cache", str(options.calibration_cache)]
    for flag, hw in (("--min", options.min_hw), ("--opt", options.opt_hw), ("--max", options.max_hw)):
        if hw is not None:
            words += [flag, f"{hw[0]}x{hw[1]}"]
    for flag, value in (("--workspace", options.workspace_mb), ("--timing-cache", options.timing_cache),
                        ("--dla-core", options.dla_core), ("--opt-level", options.opt_level)):
        if value is not None:
            words += [flag, str(value)]
    words += ["--output", str(output), "--overwrite"]
    return " ".join(shlex.quote(w) for w in words)


# ---------------------------------------------------------------------------------------------
# The TensorRT part (runs only where TensorRT and a GPU exist)

def _tensorrt_and_gpu():
    """(tensorrt, polygraphy.backend.trt, Environment of GPU 0) or a clear error."""
    from infusionnet.runtime.trt_backend import import_pycuda, import_tensorrt
    from infusionnet.runtime.trt_plan import detect_features, require_runtime_features

    trt = import_tensorrt()
    require_runtime_features(detect_features(trt))
    try:
        from polygraphy.backend import trt as poly
    except ImportError:
        raise TrtBuildError("the engine builder uses Polygraphy: pip install polygraphy (or .[tensorrt])") from None
    cuda = import_pycuda(0)
    device = cuda.Device(0)
    here = Environment(trt.__version__, device.name(), "%d.%d" % device.compute_capability(), platform_tag())
    return trt, poly, here


def _pin_fp32(trt, network) -> List[str]:
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    names = set(fp32_layers((layer.name, layer.type.name) for layer in layers))
    for layer in layers:
        if layer.name in names:
            layer.precision = trt.float32
            for index in range(layer.num_outputs):
                layer.set_output_type(index, trt.float32)
    return sorted(names)


def build_engine(trt, poly, build: GraphBuild, options: BuildOptions, calibration=None,
                 calibration_cache: Optional[Path] = None) -> Tuple[bytes, List[str]]:
    """Serialized engine bytes for one graph, and the names of the layers pinned to FP32."""
    from infusionnet.runtime.trt_plan import detect_features

    features = detect_features(trt)
    if build.calibrate and not features.implicit_int8:
        raise TrtBuildError(f"TensorRT {trt.__version__} has deprecated implicit INT8 calibration: export QDQ graphs "
                            "(`infusionnet export onnx --precision int8`) and build with --int8-mode explicit")
    pinned = []  # type: List[str]
    parse = poly.NetworkFromOnnxPath(str(build.onnx))

    def network():
        builder, net, parser = parse()
        if build.fp32_pins:
            pinned.extend(_pin_fp32(trt, net))
        return builder, net, parser

    profile = poly.Profile()
    for name, shapes in build.profile.items():
        profile.add(name, min=shapes.min, opt=shapes.opt, max=shapes.max)
    settings = dict(fp16=build.fp16, int8=build.int8, profiles=[profile],
                    precision_constraints="obey" if build.fp32_pins else None,
                    load_timing_cache=options.timing_cache)
    if build.calibrate:
        settings["calibrator"] = poly.Calibrator(calibration, cache=str(calibration_cache) if calibration_cache else None)
    if options.workspace_mb:
        settings["memory_pool_limits"] = {trt.MemoryPoolType.WORKSPACE: int(options.workspace_mb) << 20}
    if options.opt_level is not None:
        if not features.optimization_level:
            raise TrtBuildError(f"--opt-level needs TensorRT 8.6 or newer (this is {trt.__version__})")
        settings["builder_optimization_level"] = options.opt_level
    if options.dla_core is not None:
        settings.update(use_dla=True, allow_gpu_fallback=True)
    create = poly.CreateConfig(**settings)

    def config(builder, net):
        made = create(builder, net)
        if options.dla_core is not None:  # Polygraphy always picks DLA core 0
            if options.dla_core >= builder.num_DLA_cores:
                raise TrtBuildError(f"--dla-core {options.dla_core}: this device has {builder.num_DLA_cores} DLA cores")
            made.DLA_core = options.dla_core
        return made

    try:
        data = poly.EngineBytesFromNetwork(network, config=config, save_timing_cache=options.timing_cache)()
    except TrtBuildError:
        raise
    except Exception as error:  # Polygraphy reports parser and builder failures as PolygraphyException
        raise TrtBuildError(f"TensorRT could not build the {build.role} graph ({build.onnx}): "
                            f"{str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__}"
                            ) from None
    return bytes(data), pinned


def _calibration_feed(manifest: Manifest, build: GraphBuild, options: BuildOptions):
    """Feed dicts for the implicit calibrator: calibration images in the graph's roles.

    The content graph of a split export also needs kernels: they come from running the FP32
    style graph in ONNX Runtime on each batch's style images."""
    from infusionnet.export.calibration import PairFeed, RoleFeed, image_pairs
    from infusionnet.runtime.ort_backend import OnnxRuntimeBackend

    content, style, _ = image_pairs(options.calibration)
    opt = build.profile[build.inputs[0].name].opt if build.role != "style" else None
    height, width = (opt[2], opt[3]) if opt else tuple(manifest.content_size)
    pairs = PairFeed(content, style, manifest.batch, (height, width), manifest.style_size,
                     limit=options.calibration_batches)
    if build.role != "content":
        return list(RoleFeed(pairs, build.role))
    with OnnxRuntimeBackend.from_graph(manifest.graph("style"), provider="cpu") as styler:
        return list(RoleFeed(pairs, build.role, lambda style_batch: styler.run({"style": style_batch})))


def build_engines(onnx_dir, output, options: BuildOptions, overwrite: bool = False, log=print) -> Path:
    """Build every graph of ``onnx_dir`` into ``output``; nothing is left behind on failure."""
    manifest = Manifest.load(onnx_dir)
    builds = plan_builds(manifest, options)
    trt, poly, here = _tensorrt_and_gpu()
    command = build_command(str(onnx_dir), str(output), options)
    engines = {}
    with atomic_directory(output, overwrite=overwrite) as tmp:
        for build in builds:
            log(f"building {build.role} engine ({options.precision}) from {build.onnx.name} on {here.gpu_name} ...")
            started = time.time()
            feed = _calibration_feed(manifest, build, options) if build.calibrate else None
            cache = None
            if build.calibrate:
                cache = Path(options.calibration_cache) if options.calibration_cache else \
                    tmp / f"{build.role}.calibration.cache"
                if options.calibration_cache and len(builds) > 1:  # one cache file per graph
                    cache = cache.with_name(f"{cache.stem}.{build.role}{cache.suffix}")
            data, pinned = build_engine(trt, poly, build, options, feed, cache)
            seconds = time.time() - started
            engine = tmp / f"{build.role}.engine"
            engine.write_bytes(data)
            write_sidecar(engine, EngineSidecar(
                engine_file=engine.name, engine_bytes=len(data), engine_sha256=file_sha256(engine), role=build.role,
                precision=options.precision, tensorrt_version=here.tensorrt_version, gpu_name=here.gpu_name,
                compute_capability=here.compute_capability, platform=here.platform, inputs=build.inputs,
                outputs=build.outputs, profiles=(build.profile,), onnx_file=str(build.onnx),
                onnx_sha256=file_sha256(build.onnx), build_time=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                build_seconds=round(seconds, 2), build_command=command,
                options=dict(options._asdict(), fp32_layers=pinned)))
            engines[build.role] = engine.name
            log(f"  {engine.name}: {len(data) / (1 << 20):.1f} MiB in {seconds:.0f} s"
                + (f", {len(pinned)} layers pinned to FP32" if pinned else ""))
        write_engine_index(tmp, engines, str(Path(onnx_dir).resolve()), json.loads(json.dumps(manifest.data)),
                           options.precision)
    return Path(output)


def describe_plan(builds: Sequence[GraphBuild]) -> List[Dict[str, Any]]:
    """A JSON-able view of ``plan_builds`` (for --dry-run and tests)."""
    return [{"role": b.role, "onnx": str(b.onnx), "fp16": b.fp16, "int8": b.int8, "calibrate": b.calibrate,
             "profile": {name: r.to_json() for name, r in b.profile.items()}} for b in builds]
