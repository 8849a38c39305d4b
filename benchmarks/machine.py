"""Describe the machine a benchmark ran on: CPU, cores, memory, GPU, driver, library versions."""
import os
import platform
import re
import subprocess
from importlib import metadata
from typing import Dict, Optional

LIBRARIES = ("torch", "onnx", "onnxruntime", "onnxruntime-gpu", "tensorrt", "opencv-python-headless",
             "numpy", "pycuda", "polygraphy")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def describe_machine() -> dict:
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_gib": memory_gib(),
        "gpu": gpu_description(),
        "versions": library_versions(),
    }


def machine_slug(description: dict) -> str:
    """A folder name for results: GPU model if any, else CPU model and core count."""
    if description.get("gpu"):
        base = description["gpu"]["name"]
    else:
        base = f"{description['cpu']}-{description['cpu_cores']}cores"
    return re.sub(r"[^A-Za-z0-9.]+", "-", base).strip("-").lower()
