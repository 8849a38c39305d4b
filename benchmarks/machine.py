"""Describe the machine a benchmark ran on: CPU, cores, memory, GPU, driver, library versions."""
import os
import platform
import re
import subprocess
from typing import Dict, List, Optional

from infusionnet.runtime.environment import cpu_affinity, installed_distributions

LIBRARIES = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "opencv-python-headless",
             "numpy", "pycuda", "polygraphy", "openvino", "nncf")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# The instruction sets that decide which precision is fast here (FMA FP32, VNNI INT8, BF16, AMX
# matrix tiles): results from CPUs of different kinds are only comparable with these in view.
INSTRUCTION_SETS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_tile", "amx_bf16",
                    "amx_int8")


def cpu_features(cpuinfo: Optional[str] = None) -> List[str]:
    """Which of ``INSTRUCTION_SETS`` this CPU has (the flags of /proc/cpuinfo; [] elsewhere)."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo") as f:
                cpuinfo = f.read()
        except OSError:
            return []
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return [name for name in INSTRUCTION_SETS if name in flags]


def memory_gib() -> Optional[float]:
    try:
        with open("/proc/meminfo") as f:
            kib = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1))
        return round(kib / 1024 / 1024, 1)
    except (OSError, AttributeError):
        return None


def gpu_description() -> Optional[Dict[str, str]]:
    """Name, driver and memory of the first NVIDIA GPU via nvidia-smi, or None."""
    try:
        line = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,memory.total,compute_cap", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True).stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError, IndexError):
        return None
    name, driver, memory, capability = (part.strip() for part in line.split(","))
    return {"name": name, "driver": driver, "memory": memory, "compute_capability": capability}


def library_versions() -> Dict[str, str]:
    return installed_distributions(LIBRARIES)


def describe_machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "cpu_cores": os.cpu_count(),
        "cpu_affinity": cpu_affinity(),
        "memory_gib": memory_gib(),
        "gpu": gpu_description(),
        "versions": library_versions(),
    }


def machine_slug(description: dict) -> str:
    """A folder name for results: GPU model if any, else the CPU model without trademarks and
    filler words, its widest matrix instruction set (what decides its speed here: amx, avx512 or
    avx2) and the core count, e.g. "intel-xeon-amx-2cores"."""
    if description.get("gpu"):
        base = description["gpu"]["name"]
    else:
        name = re.sub(r"\((R|TM|tm|r)\)|\b(CPU|Processor)\b|@.*$", " ", description["cpu"])
        features = description.get("cpu_features") or []
        isa = next((tag for tag, flag in (("amx", "amx_tile"), ("avx512", "avx512f"), ("avx2", "avx2"))
                    if flag in features), "")
        base = f"{name}-{isa}-{description['cpu_cores']}cores"
    return re.sub(r"[^A-Za-z0-9.]+", "-", base).strip("-").lower()
