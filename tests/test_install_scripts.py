"""The decisions of scripts/bootstrap.sh and scripts/install-jetson.sh, through their --dry-run
(nothing is downloaded or created; the detected facts are given through the environment)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = ROOT / "scripts" / "bootstrap.sh"
JETSON = ROOT / "scripts" / "install-jetson.sh"
CPU_INDEX = "--index-url https://download.pytorch.org/whl/cpu"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")


def run_script(script: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {key: value for key, value in os.environ.items()
               if key not in ("TORCH", "TORCH_INDEX", "BOOTSTRAP_GPU", "BOOTSTRAP_CPU_INDEX", "INSTALL_JETSON_FACTS")}
    environ.update(env)
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, env=environ, timeout=60)


def torch_command(result: subprocess.CompletedProcess) -> str:
    """The `pip install ... torch==...` line the dry run would run."""
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if "would run:" in line and " torch==" in line]
    assert len(lines) == 1, result.stdout
    return lines[0].split("would run: ", 1)[1]


def test_cpu_build_from_pytorchs_index_when_it_answers(tmp_path):
    venv = tmp_path / "venv"
    result = run_script(BOOTSTRAP, "--dry-run", VENV=str(venv), BOOTSTRAP_GPU="no", BOOTSTRAP_CPU_INDEX="yes")
    assert torch_command(result) == f"{venv}/bin/python -m pip install -q torch==2.13.0 {CPU_INDEX}"
    assert f"would run: python3 -m venv {venv}" in result.stdout
    assert "pip install -q -e .[dev]" in result.stdout
    assert not venv.exists()  # a dry run creates nothing


def test_offline_falls_back_to_the_pip_configuration_and_says_so(tmp_path):
    result = run_script(BOOTSTRAP, "--dry-run", VENV=str(tmp_path / "v"), BOOTSTRAP_GPU="no", BOOTSTRAP_CPU_INDEX="no")
    assert torch_command(result).endswith("pip install -q torch==2.13.0")
    assert "did not answer" in result.stderr and "pip's configuration decides" in result.stderr


def test_a_gpu_alone_does_not_pull_cuda_but_says_how_to(tmp_path):
    result = run_script(BOOTSTRAP, "--dry-run", VENV=str(tmp_path / "v"), BOOTSTRAP_GPU="yes", BOOTSTRAP_CPU_INDEX="yes")
    assert torch_command(result).endswith(CPU_INDEX)
    assert "TORCH=cuda" in result.stderr


def test_cuda_on_request_skips_the_cpu_index(tmp_path):
    result = run_script(BOOTSTRAP, "--dry-run", VENV=str(tmp_path / "v"), TORCH="cuda", BOOTSTRAP_GPU="yes",
                        BOOTSTRAP_CPU_INDEX="yes")
    assert torch_command(result).endswith("pip install -q torch==2.13.0")
    assert "CUDA build" in result.stderr
    mirror = run_script(BOOTSTRAP, "--dry-run", VENV=str(tmp_path / "v"), TORCH="cuda",
                        TORCH_INDEX="https://mirror.example/cu130")
    assert torch_command(mirror).endswith("torch==2.13.0 --index-url https://mirror.example/cu130")


def test_bad_options_are_refused(tmp_path):
    result = run_script(BOOTSTRAP, "--dry-run", VENV=str(tmp_path / "v"), TORCH="rocm")
    assert result.returncode == 2 and result.stderr.strip() == "error: TORCH must be auto, cpu or cuda, not 'rocm'"
    assert run_script(BOOTSTRAP, "--fast").returncode == 2


def test_an_installed_torch_is_kept(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    site = next(venv.glob("lib/python3*/site-packages"))
    (site / "torch").mkdir()
    (site / "torch" / "__init__.py").write_text("__version__ = '2.13.0+cpu'\n")
    result = run_script(BOOTSTRAP, "--dry-run", VENV=str(venv), BOOTSTRAP_GPU="no", BOOTSTRAP_CPU_INDEX="yes")
    assert result.returncode == 0, result.stderr
    assert "torch 2.13.0+cpu is already installed" in result.stdout
    assert " torch==" not in result.stdout and "-m venv" not in result.stdout


JETPACK5 = ("python=3.8.10 tegra=yes numpy=1.17.4 cv2=4.5.4 gstreamer=yes tensorrt=8.5.2.2 onnxruntime=no "
            "pycuda=no nvcc=/usr/local/cuda/bin/nvcc")


def jetson_plan(facts: str, *args: str, expect: int = 0) -> subprocess.CompletedProcess:
    result = run_script(JETSON, "--dry-run", *args, INSTALL_JETSON_FACTS=facts, VENV="/tmp/jetson-venv-never-made")
    assert result.returncode == expect, result.stdout + result.stderr
    return result


def pip_installs(result: subprocess.CompletedProcess) -> list:
    """Requirement words of the dry run's `pip install` of requirements (not the project, not pip)."""
    for line in result.stdout.splitlines():
        words = line.split()
        if "would run:" in line and "install" in words and "-e" not in words and "--upgrade" not in words \
                and "pycuda" not in words:
            return words[words.index("install") + 2:]  # after "install -q"
    return []


def test_jetpack5_keeps_system_opencv_and_tensorrt_and_builds_pycuda():
    result = jetson_plan(JETPACK5)
    out = result.stdout
    assert "would run: /usr/bin/python3 -m venv --system-site-packages /tmp/jetson-venv-never-made" in out
    assert "pip install -q --no-deps -e ." in out
    wanted = pip_installs(result)
    assert not any(word.startswith("opencv") for word in wanted), wanted
    assert {"numpy>=1.21", "rich>=12", "onnxruntime>=1.15"} <= set(wanted)
    pycuda = next(line for line in out.splitlines() if "pycuda" in line and "would run:" in line)
    assert "PATH=/usr/local/cuda/bin:" in pycuda and "CUDA_ROOT=/usr/local/cuda" in pycuda
    assert out.rstrip().endswith("would run: /tmp/jetson-venv-never-made/bin/infusionnet doctor")


def test_requirements_come_from_setup_cfg():
    import configparser
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    base = config["options"]["install_requires"].split()
    wanted = pip_installs(jetson_plan(JETPACK5.replace("onnxruntime=no", "onnxruntime=1.15.1")))
    assert wanted == [r for r in base if not r.startswith("opencv")]  # nothing invented, ORT from the system


def test_without_system_opencv_pip_opencv_comes_with_a_gstreamer_warning():
    result = jetson_plan(JETPACK5.replace("cv2=4.5.4", "cv2=no").replace("gstreamer=yes", "gstreamer=no"))
    assert any(word.startswith("opencv-python-headless") for word in pip_installs(result))
    assert "no GStreamer" in result.stdout and "csi:N" in result.stdout


def test_pycuda_needs_nvcc_or_no_pycuda():
    no_nvcc = JETPACK5.replace("nvcc=/usr/local/cuda/bin/nvcc", "nvcc=no")
    result = jetson_plan(no_nvcc, expect=2)
    assert result.stderr.startswith("error: pycuda must be built from source and needs nvcc")
    skipped = jetson_plan(no_nvcc, "--no-pycuda")
    assert "would run: env PATH" not in skipped.stdout and "--no-pycuda" in skipped.stdout


def test_without_tensorrt_pycuda_is_not_built():
    result = jetson_plan(JETPACK5.replace("tensorrt=8.5.2.2", "tensorrt=no"))
    assert "pycuda" not in " ".join(line for line in result.stdout.splitlines() if "would run:" in line)
    assert "no TensorRT" in result.stdout


def test_a_desktop_is_refused_unless_forced():
    desktop = JETPACK5.replace("tegra=yes", "tegra=no")
    result = jetson_plan(desktop, expect=2)
    assert result.stderr.startswith("error: this is not a Jetson") and "scripts/bootstrap.sh" in result.stderr
    assert "--system-site-packages" in jetson_plan(desktop, "--force").stdout


def test_the_real_probe_runs_on_this_machine():
    result = run_script(JETSON, "--dry-run", "--force", PYTHON=sys.executable, VENV="/tmp/jetson-venv-never-made")
    assert result.returncode == 0, result.stderr
    found = result.stdout.splitlines()[0]
    assert f"python={'.'.join(map(str, sys.version_info[:3]))}" in found
    assert ("tegra=yes" if Path("/etc/nv_tegra_release").exists() else "tegra=no") in found
