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
  carries its own scales. TensorRT 10 builds it strongly typed (NVIDIA's recommendation: no
  precision flags, types from the graph); 8.x with INT8 and FP16 flags on and the same FP32 pins.
- int8, implicit (TensorRT 8.x only; deprecated in 10): an FP32 graph calibrated here with the
  entropy calibrator on the calibration images, with a calibration cache for reproducible
  rebuilds.
- INT8 is for the per-frame graphs only: a split export's style graph (FP32, no Q/DQ) builds as
  an fp16 engine's would, since it runs once per style.

Parsing sets OnnxParserFlag.NATIVE_INSTANCENORM where it exists (8.6+): 8.6 otherwise imports
InstanceNormalization as a plugin, and 8.5 always does. The sidecar lists an engine's plugin
layers: they need TensorRT's plugin library at run time and cannot run on a DLA.

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
from typing import TYPE_CHECKING, Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from infusionnet.runtime.engine_sidecar import (EngineSidecar, Environment, platform_tag, write_engine_index,
                                                write_sidecar)
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import file_sha256
from infusionnet.runtime.fileio import atomic_directory
from infusionnet.runtime.lazy import lazy_import, load
from infusionnet.runtime.manifest import PRECISIONS, Manifest, TensorSpec
from infusionnet.runtime.ort_backend import OnnxRuntimeBackend
from infusionnet.runtime.trt_backend import import_pycuda, import_tensorrt
from infusionnet.runtime.trt_plan import (HW, Profile, TrtFeatures, derive_profile, detect_features,
                                           require_runtime_features)

from .calibration import PairFeed, RoleFeed, image_pairs
from .precision import INT8_ROLES

if TYPE_CHECKING:  # `make typecheck` checks the TensorRT calls against the stubs; never imported at run time
    import tensorrt
# Polygraphy builds the engines (the tensorrt extra): imported with TensorRT, when a build starts.
polygraphy_trt = lazy_import("polygraphy.backend.trt")

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
    builds = []
    for role, graph in manifest.graphs.items():
        inputs, outputs = tuple(graph.inputs), tuple(graph.outputs)
        profile = derive_profile(inputs, options.min_hw, options.opt_hw, options.max_hw,
                                 default_hw=tuple(manifest.content_size))
        # Only the per-frame graphs are INT8 (the export keeps the style graph FP32, without Q/DQ):
        # the style graph builds in FP16 like an fp16 engine's.
        int8 = precision == "int8" and role in INT8_ROLES
        builds.append(GraphBuild(role, graph.path, inputs, outputs, profile, fp16=precision != "fp32",
                                 int8=int8, calibrate=int8 and options.int8_mode == "implicit",
                                 fp32_pins=precision != "fp32"))
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


class NetworkPlan(NamedTuple):
    """How one graph is parsed and typed on the installed TensorRT (see ``network_plan``)."""
    parser_flags: Tuple[str, ...]  # tensorrt.OnnxParserFlag member names to set
    strongly_typed: bool           # types come from the graph; no precision flags, no layer pins
    fp16: bool
    int8: bool
    fp32_pins: bool


def network_plan(build: GraphBuild, features: TrtFeatures) -> NetworkPlan:
    """Parser flags and typing for ``build`` on a TensorRT with ``features`` (no TensorRT needed).

    - NATIVE_INSTANCENORM wherever the flag exists (8.6+; 8.6 defaults to the plugin): the native
      layer needs no plugin library at run time, can be pinned to FP32 by type, and takes
      computed scales. 8.5 has no such flag and always imports the InstanceNormalization_TRT
      plugin, which the runtime loads before deserializing.
    - Q/DQ (explicit INT8) graphs on TensorRT 10 build strongly typed, NVIDIA's recommendation:
      every tensor's type follows from the graph (INT8 between Q and DQ, FP32 elsewhere), and
      precision flags and layer precision pins are not allowed there.
    """
    flags = ("NATIVE_INSTANCENORM",) if features.native_instancenorm else ()
    if build.int8 and not build.calibrate and features.strongly_typed:
        return NetworkPlan(flags, strongly_typed=True, fp16=False, int8=False, fp32_pins=False)
    return NetworkPlan(flags, strongly_typed=False, fp16=build.fp16, int8=build.int8, fp32_pins=build.fp32_pins)


def plugin_layers(layers: Iterable[Tuple[str, str]]) -> List[str]:
    """Names of the plugin layers among (layer name, LayerType member name) pairs: the engine will
    need TensorRT's plugin library at run time, and these layers cannot run on a DLA."""
    return [name for name, kind in layers if kind.startswith("PLUGIN")]


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
    trt = import_tensorrt()
    require_runtime_features(detect_features(trt))
    try:
        poly = load(polygraphy_trt)
    except ImportError:
        raise TrtBuildError("the engine builder uses Polygraphy: pip install polygraphy (or .[tensorrt])") from None
    cuda = import_pycuda(0)
    device = cuda.Device(0)
    here = Environment(trt.__version__, device.name(), "%d.%d" % device.compute_capability(), platform_tag())
    return trt, poly, here


def _layer_kinds(network: "tensorrt.INetworkDefinition") -> List[Tuple[str, str]]:
    return [(network.get_layer(i).name, network.get_layer(i).type.name) for i in range(network.num_layers)]


def _pin_fp32(trt, network: "tensorrt.INetworkDefinition") -> List[str]:
    names = set(fp32_layers(_layer_kinds(network)))
    for index in range(network.num_layers):
        layer = network.get_layer(index)
        if layer.name in names:
            layer.precision = trt.float32
            for output in range(layer.num_outputs):
                layer.set_output_type(output, trt.float32)
    return sorted(names)


class BuiltEngine(NamedTuple):
    data: bytes
    plan: NetworkPlan
    fp32_layers: List[str]     # pinned to FP32
    plugin_layers: List[str]   # need libnvinfer_plugin at run time; never on DLA


def build_engine(trt, poly, build: GraphBuild, options: BuildOptions, calibration=None,
                 calibration_cache: Optional[Path] = None, log=print) -> BuiltEngine:
    """Serialize one graph's engine on the installed TensorRT."""
    features = detect_features(trt)
    if build.calibrate and not features.implicit_int8:
        raise TrtBuildError(f"TensorRT {trt.__version__} has deprecated implicit INT8 calibration: export QDQ graphs "
                            "(`infusionnet export onnx --precision int8`) and build with --int8-mode explicit")
    plan = network_plan(build, features)
    pinned = []  # type: List[str]
    plugins = []  # type: List[str]
    parsing = {}  # type: Dict[str, Any]  # only what is set: older Polygraphy lacks these arguments
    if plan.parser_flags:
        parsing["flags"] = [getattr(trt.OnnxParserFlag, flag) for flag in plan.parser_flags]
    if plan.strongly_typed:
        parsing["strongly_typed"] = True
    parse = poly.NetworkFromOnnxPath(str(build.onnx), **parsing)

    def network():
        builder, net, parser = parse()
        plugins.extend(plugin_layers(_layer_kinds(net)))
        if plan.fp32_pins:
            pinned.extend(_pin_fp32(trt, net))
        return builder, net, parser

    profile = poly.Profile()
    for name, shapes in build.profile.items():
        profile.add(name, min=shapes.min, opt=shapes.opt, max=shapes.max)
    settings = dict(fp16=plan.fp16, int8=plan.int8, profiles=[profile],
                    precision_constraints="obey" if plan.fp32_pins else None,
                    load_timing_cache=options.timing_cache)  # type: Dict[str, Any]
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

    def config(builder: "tensorrt.Builder", net: "tensorrt.INetworkDefinition") -> "tensorrt.IBuilderConfig":
        made = create(builder, net)  # type: tensorrt.IBuilderConfig
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
    if plugins and options.dla_core is not None:
        log(f"  {len(plugins)} plugin layers ({', '.join(plugins[:2])}, ...) cannot run on DLA: they run on the GPU")
    return BuiltEngine(bytes(data), plan, pinned, plugins)


def _calibration_feed(manifest: Manifest, build: GraphBuild, options: BuildOptions):
    """Feed dicts for the implicit calibrator: calibration images in the graph's roles.

    The content graph of a split export also needs kernels: they come from running the FP32
    style graph in ONNX Runtime on each batch's style images."""
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
            built = build_engine(trt, poly, build, options, feed, cache, log=log)
            data, pinned = built.data, built.fp32_layers
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
                options=dict(options._asdict(), fp32_layers=pinned, plugin_layers=built.plugin_layers,
                             strongly_typed=built.plan.strongly_typed,
                             parser_flags=list(built.plan.parser_flags))))
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
