"""What this machine gives the runtime: Python, numpy, OpenCV's video back ends, ONNX Runtime,
TensorRT, the GPU and its DLA cores, torch.

`infusionnet doctor` prints these facts and what each command can do with them; the Jetson
install script runs it last. Every probe returns a ``Probe`` and never raises: a package that is
missing or fails to import is a fact to report, not a crash. The parsers of the texts the probes
read (OpenCV's build information, L4T's release file) are plain functions, tested on samples.
"""
import importlib
import importlib.util
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Tuple

from .lazy import lazy_import, module_location

# The doctor reports a missing numpy or OpenCV instead of failing to import: the samples (numpy,
# OpenCV) load only when probed.
samples = lazy_import("infusionnet.runtime.samples")

# Distributions that install the same import name: two of them in one environment overwrite
# each other's files, and the module left behind is a mix of both.
ONNXRUNTIME_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml",
                             "onnxruntime-training")
OPENCV_DISTRIBUTIONS = ("opencv-python", "opencv-python-headless", "opencv-contrib-python",
                        "opencv-contrib-python-headless")

# L4T (the Jetson Linux release in /etc/nv_tegra_release) -> JetPack generation.
L4T_TO_JETPACK = {32: "JetPack 4", 34: "JetPack 5 (developer preview)", 35: "JetPack 5", 36: "JetPack 6"}
TEGRA_RELEASE_FILE = Path("/etc/nv_tegra_release")
DEVICE_TREE_MODEL = Path("/proc/device-tree/model")


class Probe(NamedTuple):
    """One fact: ``found`` says whether the thing is usable, ``summary`` is the line to print."""
    found: bool
    summary: str
    details: Dict[str, Any] = {}


def installed_distributions(names: Sequence[str]) -> Dict[str, str]:
    """{distribution name: version} of those of ``names`` that pip (or a system package) installed."""
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return found


def cpu_affinity() -> Optional[int]:
    """The CPU cores this process may run on (its affinity, e.g. a container's cpuset), which can
    be fewer than the machine has; None where the OS does not say (macOS, Windows)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None


def import_module(name: str) -> Tuple[Any, Optional[str]]:
    """(module, None), or (None, why not): absent, or the import failed (a broken install, a
    missing shared library)."""
    try:
        if importlib.util.find_spec(name.split(".")[0]) is None:
            return None, "not installed"
        return importlib.import_module(name), None
    except Exception as error:  # a broken package raises anything: report it
        return None, f"fails to import ({type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''})"


def python_probe() -> Probe:
    """The interpreter, and whether it runs in a venv that sees the system's packages (JetPack's
    OpenCV and TensorRT live there)."""
    version = platform.python_version()
    in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
    system_site = venv_includes_system_site(Path(sys.prefix) / "pyvenv.cfg") if in_venv else None
    where = "venv" if in_venv else "no venv"
    if system_site is not None:
        where += f", system site-packages {'visible' if system_site else 'hidden'}"
    supported = sys.version_info >= (3, 8)
    return Probe(supported, f"{version} ({sys.executable}; {where})" + ("" if supported else ": needs 3.8 or newer"),
                 {"version": version, "executable": sys.executable, "venv": in_venv, "system_site_packages": system_site})


def venv_includes_system_site(pyvenv_cfg: Path) -> Optional[bool]:
    """``include-system-site-packages`` of a venv's pyvenv.cfg (None if unreadable)."""
    try:
        text = pyvenv_cfg.read_text()
    except OSError:
        return None
    match = re.search(r"^\s*include-system-site-packages\s*=\s*(\w+)", text, re.MULTILINE)
    return bool(match) and match.group(1).lower() == "true"


def numpy_probe() -> Probe:
    numpy, why = import_module("numpy")
    if numpy is None:
        return Probe(False, f"no: {why}")
    return Probe(True, numpy.__version__, {"version": numpy.__version__})


def parse_video_io(build_information: str) -> Dict[str, bool]:
    """{back end: built in} from the "Video I/O" section of ``cv2.getBuildInformation()``."""
    section = build_information.split("Video I/O:", 1)
    if len(section) < 2:
        return {}
    found = {}
    for line in section[1].splitlines()[1:]:
        match = re.match(r"\s+([A-Za-z0-9 _/.-]+?):\s+(\S.*)$", line)
        if not match:
            break  # the next section starts at the left margin
        found[match.group(1).strip()] = match.group(2).strip().upper().startswith("YES")
    return found


def opencv_probe() -> Probe:
    """OpenCV's version, who installed it (a pip wheel or the system) and its video back ends:
    GStreamer is what `csi:N` and pipeline strings need, and PyPI's wheels never have it."""
    cv2, why = import_module("cv2")
    if cv2 is None:
        return Probe(False, f"no: {why}", {"gstreamer": False})
    video_io = parse_video_io(cv2.getBuildInformation())
    wheels = installed_distributions(OPENCV_DISTRIBUTIONS)
    source = ", ".join(f"pip {name} {version}" for name, version in wheels.items()) or "system package"
    gstreamer = video_io.get("GStreamer", False)
    summary = (f"{cv2.__version__} ({source}; {getattr(cv2, '__file__', '?')}), GStreamer: "
               f"{'yes' if gstreamer else 'no'}, FFMPEG: {'yes' if video_io.get('FFMPEG') else 'no'}")
    return Probe(True, summary, {"version": cv2.__version__, "gstreamer": gstreamer, "ffmpeg": video_io.get("FFMPEG"),
                                 "distributions": wheels})


def onnxruntime_probe() -> Probe:
    ort, why = import_module("onnxruntime")
    flavours = installed_distributions(ONNXRUNTIME_DISTRIBUTIONS)
    if ort is None:
        return Probe(False, f"no: {why}", {"distributions": flavours, "providers": []})
    providers = list(ort.get_available_providers())
    source = ", ".join(f"{name} {version}" for name, version in flavours.items()) or "not installed by pip"
    return Probe(True, f"{ort.__version__} ({source}), providers: {', '.join(providers)}",
                 {"version": ort.__version__, "distributions": flavours, "providers": providers})


def tensorrt_probe() -> Probe:
    trt, why = import_module("tensorrt")
    if trt is None:
        return Probe(False, f"no: {why}")
    if not hasattr(trt, "Runtime"):  # type stubs, or the PyPI placeholder that failed to fetch the real wheels
        return Probe(False, f"no: {module_location(trt)} is not TensorRT's Python API (type stubs or a "
                            f"placeholder package)")
    return Probe(True, f"{trt.__version__} ({module_location(trt)})", {"version": trt.__version__})


def pycuda_probe() -> Probe:
    """pycuda imports only where the CUDA driver library loads."""
    driver, why = import_module("pycuda.driver")
    if driver is None:
        return Probe(False, f"no: {why}")
    pycuda, _ = import_module("pycuda")  # imported with its driver module
    return Probe(True, str(getattr(pycuda, "VERSION_TEXT", "installed")))


def parse_l4t_release(text: str) -> Optional[Tuple[int, str]]:
    """(major, "major.revision") from /etc/nv_tegra_release, e.g. (35, "35.3.1")."""
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", text)
    if not match:
        return None
    return int(match.group(1)), f"{match.group(1)}.{match.group(2)}"


def jetson_probe(release_file: Path = TEGRA_RELEASE_FILE, model_file: Path = DEVICE_TREE_MODEL) -> Probe:
    """Whether this is a Jetson board, its model and JetPack generation (from the L4T release)."""
    try:
        release = parse_l4t_release(release_file.read_text())
    except OSError:
        return Probe(False, "no")
    try:
        model = model_file.read_text().strip("\x00\n ")
    except OSError:
        model = "Jetson"
    if release is None:
        return Probe(True, f"{model}, L4T release unknown", {"model": model})
    major, l4t = release
    jetpack = L4T_TO_JETPACK.get(major, "JetPack ?")
    return Probe(True, f"{model}, L4T {l4t} ({jetpack})", {"model": model, "l4t": l4t, "jetpack": jetpack})


def gpu_probe(jetson: Probe) -> Probe:
    """NVIDIA GPUs: a Jetson's integrated one, or what ``nvidia-smi`` lists."""
    if jetson.found:
        return Probe(True, "integrated (Jetson)", {"names": [jetson.details.get("model", "Jetson")]})
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return Probe(False, "none found (no nvidia-smi)")
    try:
        result = subprocess.run([smi, "--query-gpu=name,driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.SubprocessError) as error:
        return Probe(False, f"none usable (nvidia-smi: {error})")
    lines = [line.strip() for line in result.stdout.splitlines() if line.strip()]
    if result.returncode != 0 or not lines:
        return Probe(False, f"none usable (nvidia-smi: {(result.stderr or result.stdout).strip()[:120]})")
    names = [line.split(",")[0].strip() for line in lines]
    driver = lines[0].split(",")[-1].strip()
    return Probe(True, f"{', '.join(names)} (driver {driver})", {"names": names, "driver": driver})


def dla_probe(tensorrt: Probe, gpu: Probe) -> Probe:
    """DLA cores as TensorRT's builder counts them (Jetson Orin and Xavier have them)."""
    if not (tensorrt.found and gpu.found):
        return Probe(False, "unknown (needs TensorRT and a GPU)")
    try:
        trt, _ = import_module("tensorrt")  # imported by the tensorrt probe
        builder = trt.Builder(trt.Logger(trt.Logger.ERROR))
        cores = int(builder.num_DLA_cores)
    except Exception as error:  # no CUDA context, a driver problem: report, don't crash
        return Probe(False, f"unknown (TensorRT's builder failed: {error})")
    return Probe(cores > 0, str(cores), {"cores": cores})


def torch_probe() -> Probe:
    torch, why = import_module("torch")
    if torch is None:
        return Probe(False, f"no: {why}")
    cuda = bool(torch.cuda.is_available())
    return Probe(True, f"{torch.__version__}, CUDA: {'yes' if cuda else 'no'}", {"version": torch.__version__,
                                                                            "cuda": cuda})


def module_probe(name: str) -> Probe:
    """Any other package: importable or not, and its version."""
    module, why = import_module(name)
    if module is None:
        return Probe(False, f"no: {why}")
    return Probe(True, str(getattr(module, "__version__", "installed")))


def samples_probe() -> Probe:
    """The built-in sample photos: scikit-image's data folder, found without importing it."""
    try:
        return Probe(True, f"yes ({samples.data_folder()})")
    except samples.SampleError as error:
        return Probe(False, f"no: {error}")


def gather(with_torch: bool = True) -> Dict[str, Probe]:
    """Every probe, by name, in the order the doctor prints them."""
    jetson = jetson_probe()
    tensorrt = tensorrt_probe()
    gpu = gpu_probe(jetson)
    facts = {
        "python": python_probe(),
        "platform": Probe(True, f"{platform.system()} {platform.machine()}"),
        "jetson": jetson,
        "numpy": numpy_probe(),
        "opencv": opencv_probe(),
        "onnxruntime": onnxruntime_probe(),
        "tensorrt": tensorrt,
        "pycuda": pycuda_probe() if gpu.found else Probe(False, "not tried (no GPU)"),
        "gpu": gpu,
        "dla": dla_probe(tensorrt, gpu),
    }
    facts["torch"] = torch_probe() if with_torch else Probe(False, "not probed (--no-torch)")
    for name in ("safetensors", "onnx", "onnxslim", "matplotlib"):
        facts[name] = module_probe(name)
    facts["samples"] = samples_probe()
    return facts


def conflicts(facts: Dict[str, Probe]) -> List[str]:
    """Problems that break the install whatever the command: two packages owning one module."""
    found = []
    for fact, what in (("onnxruntime", "ONNX Runtime"), ("opencv", "OpenCV")):
        distributions = facts[fact].details.get("distributions") or {}
        if len(distributions) > 1:
            found.append(f"{what} is installed by {len(distributions)} packages that overwrite each other "
                         f"({', '.join(distributions)}): pip uninstall all of them, then install one")
    python = facts["python"].details
    if facts["jetson"].found and python.get("venv") and python.get("system_site_packages") is False:
        found.append("this venv hides JetPack's OpenCV and TensorRT: recreate it with "
                     "`python3 -m venv --system-site-packages` (scripts/install-jetson.sh does)")
    if facts["jetson"].found and facts["opencv"].details.get("distributions"):
        found.append("a pip OpenCV hides JetPack's (which has GStreamer, for csi:N): pip uninstall "
                     + " ".join(facts["opencv"].details["distributions"]))
    return found

