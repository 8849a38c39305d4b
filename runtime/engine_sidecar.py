"""The JSON file written beside every TensorRT engine, and the rules for loading an engine.

A serialized engine runs only where it was built: the same TensorRT release and the same GPU
architecture (and OS/CPU platform). The engine file itself says none of this in a readable way,
so the builder records it in ``<engine>.json`` and the loader compares before deserializing,
failing with what differs and the exact command that rebuilds the engine on this machine.

Rules (TensorRT's engine-compatibility documentation; engines here are built without the
version- or hardware-compatible flags):
- TensorRT major.minor.patch must match: TensorRT itself refuses other releases ("expecting
  library version ..."). A different fourth (build) number is only a warning.
- Compute capability must match (the tactics are compiled for that architecture). Another GPU
  name with the same compute capability runs, but was timed on other hardware: a warning.
- Platform (OS and CPU architecture) must match.
- The engine file must have the size and sha256 the sidecar records (catches truncated copies).
"""
import hashlib
import json
import platform
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from .errors import InfusionNetError
from .fileio import PathLike, atomic_path
from .manifest import TensorSpec
from .trt_plan import Profile, ShapeRange, format_version, parse_version

SIDECAR_FORMAT = 1
SIDECAR_SUFFIX = ".json"


class SidecarError(InfusionNetError):
    """A sidecar that is missing or unreadable."""


class EngineMismatchError(InfusionNetError):
    """An engine that cannot run here (other TensorRT/GPU/platform, or a damaged file)."""


class EngineSidecar(NamedTuple):
    engine_file: str            # name of the engine file, beside the sidecar
    engine_bytes: int
    engine_sha256: str
    role: str                   # the ONNX graph's role: full, style, content, baked
    precision: str              # fp32, fp16, int8
    tensorrt_version: str
    gpu_name: str
    compute_capability: str     # "8.7"
    platform: str               # "Linux-aarch64"
    inputs: Tuple[TensorSpec, ...]
    outputs: Tuple[TensorSpec, ...]
    profiles: Tuple[Profile, ...]
    onnx_file: str
    onnx_sha256: str
    build_time: str             # ISO 8601, UTC
    build_seconds: float
    build_command: str          # what rebuilds this engine (shell-quoted)
    options: Dict[str, Any]     # workspace, dla_core, opt_level, int8 mode, timing cache, ...

    def to_json(self) -> Dict[str, Any]:
        data = self._asdict()
        data["format"] = SIDECAR_FORMAT
        data["inputs"] = [_spec_json(s) for s in self.inputs]
        data["outputs"] = [_spec_json(s) for s in self.outputs]
        data["profiles"] = [{name: r.to_json() for name, r in p.items()} for p in self.profiles]
        return data

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "EngineSidecar":
        values = {field: data[field] for field in cls._fields}
        values["inputs"] = tuple(_spec_from_json(s) for s in data["inputs"])
        values["outputs"] = tuple(_spec_from_json(s) for s in data["outputs"])
        values["profiles"] = tuple({name: ShapeRange.from_json(r) for name, r in p.items()}
                                   for p in data["profiles"])
        return cls(**values)


def _spec_json(spec: TensorSpec) -> Dict[str, Any]:
    return {"name": spec.name, "shape": list(spec.shape), "dtype": spec.dtype}


def _spec_from_json(data: Dict[str, Any]) -> TensorSpec:
    return TensorSpec(data["name"], tuple(data["shape"]), data["dtype"])


def sidecar_path(engine_path: PathLike) -> Path:
    """``content.engine`` -> ``content.engine.json``."""
    engine_path = Path(engine_path)
    return engine_path.with_name(engine_path.name + SIDECAR_SUFFIX)


def write_sidecar(engine_path: PathLike, sidecar: EngineSidecar) -> Path:
    path = sidecar_path(engine_path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(sidecar.to_json(), indent=2) + "\n")
    return path


def read_sidecar(engine_path: PathLike) -> EngineSidecar:
    path = sidecar_path(engine_path)
    if not path.is_file():
        raise SidecarError(f"{path} is missing: an engine needs the sidecar its build wrote beside it "
                           "(rebuild with `infusionnet export trt`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SidecarError(f"{path} is not readable JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != SIDECAR_FORMAT:
        raise SidecarError(f"{path} is not an engine sidecar of format {SIDECAR_FORMAT} "
                           f"(found format {data.get('format') if isinstance(data, dict) else None!r})")
    missing = [field for field in EngineSidecar._fields if field not in data]
    if missing:
        raise SidecarError(f"{path} lacks {', '.join(missing)}: rebuild the engine with `infusionnet export trt`")
    try:
        return EngineSidecar.from_json(data)
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise SidecarError(f"{path} has a malformed entry ({error!r})") from None


def platform_tag() -> str:
    """'Linux-x86_64', 'Linux-aarch64', 'Windows-AMD64': what a serialized engine is tied to."""
    return f"{platform.system()}-{platform.machine()}"


class Environment(NamedTuple):
    """What the loading machine offers, in the sidecar's terms."""
    tensorrt_version: str
    gpu_name: str
    compute_capability: str
    platform: str


def compatibility_problems(sidecar: EngineSidecar, here: Environment) -> Tuple[List[str], List[str]]:
    """(errors, warnings), each a short phrase naming what differs."""
    errors, warnings = [], []
    built, running = parse_version(sidecar.tensorrt_version), parse_version(here.tensorrt_version)
    if built[:3] != running[:3]:
        errors.append(f"TensorRT {format_version(built)} built it, this machine has {format_version(running)}")
    elif built != running:
        warnings.append(f"TensorRT build number differs ({sidecar.tensorrt_version} vs {here.tensorrt_version})")
    if sidecar.compute_capability != here.compute_capability:
        errors.append(f"it targets compute capability {sidecar.compute_capability} ({sidecar.gpu_name}), this GPU "
                      f"is {here.compute_capability} ({here.gpu_name})")
    elif sidecar.gpu_name != here.gpu_name:
        warnings.append(f"built on {sidecar.gpu_name}, running on {here.gpu_name} (same architecture, but "
                        "tactics were timed on the other GPU: rebuild for best speed)")
    if sidecar.platform != here.platform:
        errors.append(f"built on {sidecar.platform}, this machine is {here.platform}")
    return errors, warnings


def rebuild_hint(sidecar: EngineSidecar) -> str:
    return f"rebuild it on this machine: {sidecar.build_command}"


def check_compatible(engine_path: PathLike, sidecar: EngineSidecar, here: Environment) -> List[str]:
    """Raise EngineMismatchError when the engine cannot run here; return warnings otherwise."""
    errors, warnings = compatibility_problems(sidecar, here)
    if errors:
        raise EngineMismatchError(f"{engine_path} cannot run here: {'; '.join(errors)}. {rebuild_hint(sidecar)}")
    return warnings


def read_engine_bytes(engine_path: PathLike, sidecar: Optional[EngineSidecar] = None) -> bytes:
    """The engine file's bytes, checked against the sidecar's size and sha256."""
    engine_path = Path(engine_path)
    sidecar = sidecar or read_sidecar(engine_path)
    if not engine_path.is_file():
        raise EngineMismatchError(f"engine {engine_path} is missing (its sidecar is there); {rebuild_hint(sidecar)}")
    data = engine_path.read_bytes()
    if len(data) != sidecar.engine_bytes:
        state = "truncated" if len(data) < sidecar.engine_bytes else "larger than built"
        raise EngineMismatchError(f"engine {engine_path} is {len(data)} bytes but was built as {sidecar.engine_bytes} "
                                  f"({state}: an interrupted copy?); {rebuild_hint(sidecar)}")
    if hashlib.sha256(data).hexdigest() != sidecar.engine_sha256:
        raise EngineMismatchError(f"engine {engine_path} does not match the sha256 in its sidecar (the file was "
                                  f"replaced or damaged); {rebuild_hint(sidecar)}")
    return data


# ---------------------------------------------------------------------------------------------
# Engine directories: one engine + sidecar per graph of an ONNX export, and an index.

ENGINE_INDEX = "engines.json"
ENGINE_INDEX_FORMAT = "infusionnet-edge/trt-engines/1"


def write_engine_index(directory: PathLike, engines: Dict[str, str], source: str, manifest: Dict[str, Any],
                       precision: str) -> Path:
    """``engines.json``: role -> engine file, the ONNX export it came from and that export's
    manifest (variant, graph kind, batch, sizes, checkpoint) so the directory stands alone."""
    path = Path(directory) / ENGINE_INDEX
    data = {"format": ENGINE_INDEX_FORMAT, "precision": precision, "engines": dict(engines), "source": source,
            "manifest": manifest}
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
    return path


def read_engine_index(directory: PathLike) -> Dict[str, Any]:
    path = Path(directory) / ENGINE_INDEX
    if not path.is_file():
        raise SidecarError(f"{directory} is not an engine directory: it has no {ENGINE_INDEX} "
                           "(build one with `infusionnet export trt --onnx EXPORT_DIR -o DIR`)")
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise SidecarError(f"{path} is not readable JSON ({error})") from None
    if not isinstance(data, dict) or data.get("format") != ENGINE_INDEX_FORMAT:
        raise SidecarError(f"{path} is not an engine index of format {ENGINE_INDEX_FORMAT}")
    for field in ("engines", "manifest", "precision"):
        if field not in data:
            raise SidecarError(f"{path} lacks {field}: rebuild with `infusionnet export trt`")
    return data
