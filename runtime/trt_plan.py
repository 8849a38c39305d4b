"""TensorRT planning that needs no TensorRT: versions, API features, optimization profiles and
buffer sizes.

Everything here is plain arithmetic on names, shapes and dtypes, so it is tested on machines
without a GPU; the TensorRT glue (export/trt_build.py, runtime/trt_backend.py) only applies it.
Shapes follow the ONNX manifest: a dimension is an int, or a symbol (str) where it is dynamic.
Only the height and width of NCHW image inputs may be dynamic (the batch is fixed at export).
"""
from collections import OrderedDict
from typing import Dict, Iterable, List, Mapping, NamedTuple, Optional, Sequence, Tuple

from .errors import InfusionNetError
from .manifest import Dim, TensorSpec
from .sizes import check_size

HW = Tuple[int, int]

# The named-tensor API (set_tensor_address, execute_async_v3, set_input_shape) arrived in 8.5.
MIN_TENSORRT = (8, 5)

# numpy dtype name -> bytes per element. Names are what the manifest and sidecars store.
DTYPE_SIZES = OrderedDict([("float32", 4), ("float16", 2), ("bfloat16", 2), ("int64", 8), ("int32", 4),
                           ("int8", 1), ("uint8", 1), ("bool", 1)])
# tensorrt.DataType member name -> numpy dtype name (FP8/FP4 have no numpy type, so no entry).
TRT_DTYPES = {"FLOAT": "float32", "HALF": "float16", "BF16": "bfloat16", "INT64": "int64", "INT32": "int32",
              "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}


class PlanError(InfusionNetError):
    """Sizes, profiles or a TensorRT installation that cannot work."""


# ---------------------------------------------------------------------------------------------
# Versions and API features

def parse_version(text: str) -> Tuple[int, ...]:
    """'8.6.1.6' -> (8, 6, 1, 6); trailing tags such as 'post1' or 'rc' are ignored."""
    parts = []
    for piece in str(text).strip().split("."):
        digits = ""
        for char in piece:
            if not char.isdigit():
                break
            digits += char
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise PlanError(f"cannot read a version number from {text!r}")
    return tuple(parts)


def format_version(version: Sequence[int], parts: int = 3) -> str:
    return ".".join(str(v) for v in tuple(version)[:parts])


def _has(obj, *path: str) -> bool:
    for name in path:
        if not hasattr(obj, name):
            return False
        obj = getattr(obj, name)
    return True


class TrtFeatures(NamedTuple):
    """What the installed ``tensorrt`` module offers, found by looking, not by version tables."""
    version: Tuple[int, ...]
    named_tensors: bool          # the only runtime API this project uses (8.5+)
    optimization_level: bool     # IBuilderConfig.builder_optimization_level (8.6+)
    memory_pools: bool           # set_memory_pool_limit (8.4+; max_workspace_size is gone in 10)
    timing_cache: bool           # IBuilderConfig.create_timing_cache
    precision_constraints: bool  # BuilderFlag.OBEY_PRECISION_CONSTRAINTS (layer precisions are obeyed)
    implicit_int8: bool          # IInt8EntropyCalibrator2 and not yet deprecated (deprecated in 10)
    explicit_batch_flag: bool    # networks must be created with EXPLICIT_BATCH (before 10; ignored after)
    native_instancenorm: bool    # OnnxParserFlag.NATIVE_INSTANCENORM (8.6+; off by default in 8.6, on in 10)
    strongly_typed: bool         # NetworkDefinitionCreationFlag.STRONGLY_TYPED, used for Q/DQ graphs from 10 on

    def missing_for_runtime(self) -> List[str]:
        return [] if self.named_tensors else ["named-tensor API (set_tensor_address, execute_async_v3, "
                                              "set_input_shape)"]


NAMED_TENSOR_API = (("ICudaEngine", "num_io_tensors"), ("ICudaEngine", "get_tensor_name"),
                    ("ICudaEngine", "get_tensor_mode"), ("IExecutionContext", "set_tensor_address"),
                    ("IExecutionContext", "set_input_shape"), ("IExecutionContext", "execute_async_v3"))


def detect_features(trt) -> TrtFeatures:
    """Inspect a ``tensorrt`` module object (or anything shaped like one)."""
    version = parse_version(getattr(trt, "__version__", "0"))
    flags = getattr(trt, "BuilderFlag", None)
    creation = getattr(trt, "NetworkDefinitionCreationFlag", None)
    return TrtFeatures(
        version=version,
        named_tensors=all(_has(trt, *path) for path in NAMED_TENSOR_API),
        optimization_level=_has(trt, "IBuilderConfig", "builder_optimization_level"),
        memory_pools=_has(trt, "IBuilderConfig", "set_memory_pool_limit") and _has(trt, "MemoryPoolType", "WORKSPACE"),
        timing_cache=_has(trt, "IBuilderConfig", "create_timing_cache"),
        precision_constraints=flags is not None and hasattr(flags, "OBEY_PRECISION_CONSTRAINTS"),
        implicit_int8=_has(trt, "IInt8EntropyCalibrator2") and version[:1] < (10,),
        explicit_batch_flag=creation is not None and hasattr(creation, "EXPLICIT_BATCH") and version[:1] < (10,),
        native_instancenorm=_has(trt, "OnnxParserFlag", "NATIVE_INSTANCENORM"),
        # The flag exists in 9.x too, but NVIDIA's advice to build Q/DQ networks strongly typed
        # (without precision flags) is TensorRT 10's.
        strongly_typed=creation is not None and hasattr(creation, "STRONGLY_TYPED") and version[:1] >= (10,),
    )


def require_runtime_features(features: TrtFeatures) -> None:
    """Refuse a TensorRT that lacks what the runtime uses, saying which version is needed."""
    missing = features.missing_for_runtime()
    if missing or features.version[:2] < MIN_TENSORRT:
        found = format_version(features.version, 4)
        raise PlanError(f"TensorRT {found} is too old: InfusionNet Edge needs TensorRT "
                        f"{format_version(MIN_TENSORRT, 2)} or newer"
                        + (f" (missing: {', '.join(missing)})" if missing else "")
                        + "; on Jetson that means JetPack 5.1 or later")


def trt_dtype_name(dtype) -> str:
    """numpy dtype name of a ``tensorrt.DataType`` member (``trt.float16`` -> 'float16')."""
    name = getattr(dtype, "name", None) or str(dtype).rsplit(".", 1)[-1]
    if name not in TRT_DTYPES:
        raise PlanError(f"TensorRT tensor type {name} has no numpy equivalent in this runtime")
    return TRT_DTYPES[name]


# ---------------------------------------------------------------------------------------------
# Optimization profiles (sizes are checked by runtime.sizes)

class ShapeRange(NamedTuple):
    """One input's shapes in an optimization profile."""
    min: Tuple[int, ...]
    opt: Tuple[int, ...]
    max: Tuple[int, ...]

    @property
    def is_fixed(self) -> bool:
        return self.min == self.opt == self.max

    def to_json(self) -> Dict[str, List[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_json(cls, data: Mapping[str, Sequence[int]]) -> "ShapeRange":
        return cls(tuple(data["min"]), tuple(data["opt"]), tuple(data["max"]))


Profile = Dict[str, ShapeRange]


def is_dynamic(shape: Sequence[Dim]) -> bool:
    return any(not isinstance(d, int) or d < 0 for d in shape)


def _dynamic_axes(spec: TensorSpec) -> List[int]:
    axes = [i for i, d in enumerate(spec.shape) if not isinstance(d, int) or d < 0]
    if axes and (len(spec.shape) != 4 or any(a not in (2, 3) for a in axes)):
        raise PlanError(f"input {spec.name!r} has shape {list(spec.shape)}: only the height and width of an "
                        "NCHW image may be dynamic (re-export with a fixed batch)")
    return axes


def _with_hw(spec: TensorSpec, hw: HW) -> Tuple[int, ...]:
    shape = list(spec.shape)
    for axis in _dynamic_axes(spec):
        shape[axis] = hw[axis - 2]
    return tuple(int(d) for d in shape)


def derive_profile(inputs: Sequence[TensorSpec], min_hw: Optional[HW] = None, opt_hw: Optional[HW] = None,
                   max_hw: Optional[HW] = None, default_hw: Optional[HW] = None) -> Profile:
    """The optimization profile of one graph.

    Static inputs get min = opt = max = their shape. Dynamic height/width take the sizes given;
    a missing opt falls back to ``default_hw`` (the size the graph was exported and verified at),
    a missing min or max to opt. Every size is a multiple of 8 and min <= opt <= max per axis.
    """
    dynamic = [spec for spec in inputs if _dynamic_axes(spec)]
    if not dynamic:
        return OrderedDict((spec.name, ShapeRange(*(tuple(int(d) for d in spec.shape),) * 3)) for spec in inputs)
    opt_hw = opt_hw or default_hw
    if opt_hw is None:
        raise PlanError(f"input {dynamic[0].name!r} has a dynamic size: give --opt HxW (and --min/--max for a range)")
    min_hw, max_hw = min_hw or opt_hw, max_hw or opt_hw
    for option, hw in (("--opt", opt_hw), ("--min", min_hw), ("--max", max_hw)):
        check_size(hw, option, error=PlanError)
    for axis, name in enumerate(("height", "width")):
        if not min_hw[axis] <= opt_hw[axis] <= max_hw[axis]:
            raise PlanError(f"profile {name}s must satisfy min <= opt <= max, got {min_hw[axis]}, {opt_hw[axis]}, "
                            f"{max_hw[axis]} (--min {min_hw[0]}x{min_hw[1]} --opt {opt_hw[0]}x{opt_hw[1]} "
                            f"--max {max_hw[0]}x{max_hw[1]})")
    return OrderedDict((spec.name, ShapeRange(_with_hw(spec, min_hw), _with_hw(spec, opt_hw), _with_hw(spec, max_hw)))
                       for spec in inputs)


def symbol_values(inputs: Sequence[TensorSpec], shapes: Mapping[str, Sequence[int]]) -> Dict[str, int]:
    """Bind the symbolic dimensions of ``inputs`` to the sizes of concrete input ``shapes``."""
    values = {}  # type: Dict[str, int]
    for spec in inputs:
        for dim, size in zip(spec.shape, shapes[spec.name]):
            if isinstance(dim, str):
                if values.setdefault(dim, int(size)) != int(size):
                    raise PlanError(f"dimension {dim!r} is {values[dim]} in one input and {size} in {spec.name!r}: "
                                    "inputs sharing a dynamic size must agree")
    return values


def resolve_shape(spec: TensorSpec, values: Mapping[str, int]) -> Tuple[int, ...]:
    """A tensor's concrete shape once its symbols are bound (outputs share the inputs' symbols)."""
    shape = []
    for dim in spec.shape:
        if isinstance(dim, int) and dim >= 0:
            shape.append(dim)
        elif isinstance(dim, str) and dim in values:
            shape.append(int(values[dim]))
        else:
            raise PlanError(f"cannot size tensor {spec.name!r}: dimension {dim!r} of {list(spec.shape)} is "
                            "not bound by any input")
    return tuple(shape)


# ---------------------------------------------------------------------------------------------
# Buffers

def tensor_nbytes(shape: Sequence[int], dtype: str) -> int:
    if dtype not in DTYPE_SIZES:
        raise PlanError(f"unknown tensor dtype {dtype!r} (known: {', '.join(DTYPE_SIZES)})")
    count = 1
    for dim in shape:
        if not isinstance(dim, int) or dim < 0:
            raise PlanError(f"cannot size a tensor of shape {list(shape)}: every dimension must be known")
        count *= dim
    return count * DTYPE_SIZES[dtype]


class Buffer(NamedTuple):
    name: str
    is_input: bool
    shape: Tuple[int, ...]   # the largest shape the profile allows
    dtype: str
    nbytes: int


class BufferPlan(NamedTuple):
    """What a backend allocates once, at its largest profile shapes.

    ``external`` tensors (kernels bound to the style engine's outputs) get no allocation.
    With ``zero_copy`` (Jetson's shared memory) one mapped page-locked host buffer serves as the
    device buffer too, so nothing is allocated on the device.
    """
    buffers: Tuple[Buffer, ...]
    external: Tuple[str, ...]
    zero_copy: bool

    @property
    def host_bytes(self) -> int:
        return sum(b.nbytes for b in self.buffers)

    @property
    def device_bytes(self) -> int:
        return 0 if self.zero_copy else self.host_bytes

    def describe(self) -> str:
        mib = 1 << 20
        where = "mapped host (zero copy)" if self.zero_copy else "host + device"
        return (f"{len(self.buffers)} buffers, {self.host_bytes / mib:.1f} MiB page-locked host, "
                f"{self.device_bytes / mib:.1f} MiB device ({where})")


def plan_buffers(inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], profile: Profile,
                 external: Iterable[str] = (), zero_copy: bool = False) -> BufferPlan:
    """Allocation plan for one engine: every tensor at the profile's max shape."""
    external = tuple(external)
    unknown = [name for name in external if name not in {s.name for s in inputs}]
    if unknown:
        raise PlanError(f"external tensors {unknown} are not inputs of this graph")
    missing = [spec.name for spec in inputs if spec.name not in profile]
    if missing:
        raise PlanError(f"the profile has no shapes for inputs {missing}")
    largest = {spec.name: profile[spec.name].max for spec in inputs}
    values = symbol_values(inputs, largest)
    buffers = []
    for spec, is_input in [(s, True) for s in inputs] + [(s, False) for s in outputs]:
        if spec.name in external:
            continue
        shape = largest[spec.name] if is_input else resolve_shape(spec, values)
        buffers.append(Buffer(spec.name, is_input, shape, spec.dtype, tensor_nbytes(shape, spec.dtype)))
    return BufferPlan(tuple(buffers), external, zero_copy)
