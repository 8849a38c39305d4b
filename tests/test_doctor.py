"""`infusionnet doctor` and the environment probes behind it (torch-free, Python 3.8)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from infusionnet.cli import doctor
from infusionnet.cli.main import main
from infusionnet.runtime import environment
from infusionnet.runtime.environment import Probe

# Excerpts of cv2.getBuildInformation(): JetPack 5's OpenCV and a PyPI wheel.
JETPACK_BUILD_INFO = """
  Video I/O:
    FFMPEG:                      YES
      avcodec:                   YES (58.54.100)
    GStreamer:                   YES (1.16.3)
    v4l/v4l2:                    YES (linux/videodev2.h)

  Parallel framework:            TBB (ver 2020.1 interface 11101)
"""
WHEEL_BUILD_INFO = """
  Video I/O:
    DC1394:                      NO
    FFMPEG:                      YES
      avcodec:                   YES (59.37.100)
    GStreamer:                   NO
    v4l/v4l2:                    YES (linux/videodev2.h)

  Parallel framework:            pthreads
"""
JETPACK5_RELEASE = ("# R35 (release), REVISION: 3.1, GCID: 32827747, BOARD: t186ref, EABI: aarch64, "
                    "DATE: Sun Mar 19 15:19:21 UTC 2023\n")


def test_video_io_section_says_whether_gstreamer_is_built_in():
    assert environment.parse_video_io(JETPACK_BUILD_INFO)["GStreamer"] is True
    wheel = environment.parse_video_io(WHEEL_BUILD_INFO)
    assert wheel["GStreamer"] is False and wheel["FFMPEG"] is True and wheel["DC1394"] is False
    assert "Parallel framework" not in wheel  # the next section is not read as a back end
    assert environment.parse_video_io("no such section") == {}


def test_installed_opencv_is_described_from_its_own_build_information():
    probe = environment.opencv_probe()
    assert probe.found and probe.details["version"] == cv2.__version__
    assert probe.details["gstreamer"] == environment.parse_video_io(cv2.getBuildInformation()).get("GStreamer", False)
    assert ("GStreamer: yes" if probe.details["gstreamer"] else "GStreamer: no") in probe.summary


def test_l4t_release_gives_the_jetpack_generation(tmp_path):
    assert environment.parse_l4t_release(JETPACK5_RELEASE) == (35, "35.3.1")
    assert environment.parse_l4t_release("garbage") is None
    release, model = tmp_path / "nv_tegra_release", tmp_path / "model"
    release.write_text(JETPACK5_RELEASE)
    model.write_bytes(b"NVIDIA Jetson AGX Orin Developer Kit\x00")
    probe = environment.jetson_probe(release, model)
    assert probe.found and probe.details == {"model": "NVIDIA Jetson AGX Orin Developer Kit", "l4t": "35.3.1",
                                             "jetpack": "JetPack 5"}
    release.write_text("# R36 (release), REVISION: 2.0, GCID: 1\n")
    assert environment.jetson_probe(release, model).details["jetpack"] == "JetPack 6"
    assert not environment.jetson_probe(tmp_path / "absent", model).found


def test_venv_system_site_packages_flag(tmp_path):
    cfg = tmp_path / "pyvenv.cfg"
    cfg.write_text("home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.8.10\n")
    assert environment.venv_includes_system_site(cfg) is True
    cfg.write_text("home = /usr/bin\ninclude-system-site-packages = false\n")
    assert environment.venv_includes_system_site(cfg) is False
    assert environment.venv_includes_system_site(tmp_path / "absent.cfg") is None


def _fake_nvidia_smi(folder: Path, script: str) -> str:
    tool = folder / "nvidia-smi"
    tool.write_text("#!/bin/sh\n" + script)
    tool.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_gpu_probe_reads_nvidia_smi(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, 'echo "NVIDIA H200, 570.86.15"\n'))
    probe = environment.gpu_probe(Probe(False, "no"))
    assert probe.found and probe.details == {"names": ["NVIDIA H200"], "driver": "570.86.15"}
    monkeypatch.setenv("PATH", _fake_nvidia_smi(tmp_path, 'echo "NVIDIA-SMI has failed: no driver"; exit 9\n'))
    failed = environment.gpu_probe(Probe(False, "no"))
    assert not failed.found and "NVIDIA-SMI has failed" in failed.summary
    assert environment.gpu_probe(Probe(True, "x", {"model": "Jetson Orin Nano"})).found  # integrated GPU


def test_cpu_affinity_counts_the_cores_this_process_may_use(monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        assert environment.cpu_affinity() is None
        return
    assert environment.cpu_affinity() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 3})  # a container's cpuset
    assert environment.cpu_affinity() == 2
    monkeypatch.delattr(os, "sched_getaffinity")
    assert environment.cpu_affinity() is None


def test_dla_cores_are_not_asked_without_tensorrt_or_gpu():
    assert not environment.dla_probe(Probe(False, "no"), Probe(True, "gpu")).found
    assert "needs TensorRT and a GPU" in environment.dla_probe(Probe(True, "8.5"), Probe(False, "no")).summary


def test_a_module_that_fails_to_import_is_reported_not_raised(tmp_path, monkeypatch):
    (tmp_path / "broken_pkg_for_doctor.py").write_text("raise OSError('libnvinfer.so.8: cannot open shared object')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    module, why = environment.import_module("broken_pkg_for_doctor")
    assert module is None and "fails to import (OSError: libnvinfer.so.8" in why
    assert environment.import_module("no_such_module_anywhere") == (None, "not installed")


def _facts(**changes):
    facts = {name: Probe(True, "ok") for name in ("numpy", "opencv", "onnxruntime", "tensorrt", "pycuda", "gpu",
                                                  "torch", "safetensors", "onnx", "onnxslim", "matplotlib", "samples")}
    facts["python"] = Probe(True, "3.8", {"version": "3.8.10", "venv": True, "system_site_packages": True})
    facts["jetson"] = Probe(False, "no")
    facts.update(changes)
    return facts


def test_capabilities_name_what_is_missing_and_how_to_get_it():
    found = doctor.available(_facts(tensorrt=Probe(False, "no"), opencv=Probe(True, "4.5", {"gstreamer": False})))
    rows = {row["what"]: row for row in doctor.capabilities(found)}
    assert rows["stylize/video --model EXPORT --backend onnxruntime"]["ok"]
    trt = rows["stylize/video --model ENGINES --backend tensorrt"]
    assert not trt["ok"] and trt["missing"] == ["tensorrt"] and "JetPack" in trt["how"]
    assert "GStreamer" in rows["video --input csi:N or a GStreamer pipeline"]["how"]
    jetson = doctor.available(_facts(torch=Probe(False, "no"), samples=Probe(False, "no")))
    rows = {row["what"]: row for row in doctor.capabilities(jetson)}
    assert rows["export onnx"]["missing"] == ["torch"] and "pip install torch==2.13.0" in rows["export onnx"]["how"]
    assert "infusionnet-edge[samples]" in rows["built-in samples (sample:NAME, stylize without --content)"]["how"]


def test_two_packages_owning_one_module_are_a_problem():
    both = Probe(True, "1.15", {"distributions": {"onnxruntime": "1.15.1", "onnxruntime-gpu": "1.15.1"}})
    facts = _facts(onnxruntime=both)
    listed = doctor.problems(facts, doctor.available(facts))
    assert len(listed) == 1 and "onnxruntime, onnxruntime-gpu" in listed[0] and "overwrite" in listed[0]
    one = _facts(onnxruntime=Probe(True, "1.15", {"distributions": {"onnxruntime-gpu": "1.15.1"}}))
    assert doctor.problems(one, doctor.available(one)) == []


def test_jetson_venv_that_hides_jetpack_or_uses_pip_opencv_is_a_problem():
    jetson = Probe(True, "Orin", {"model": "Orin"})
    hidden = _facts(jetson=jetson, python=Probe(True, "3.8", {"version": "3.8.10", "venv": True,
                                                              "system_site_packages": False}),
                    opencv=Probe(True, "4.5", {"distributions": {"opencv-python-headless": "4.5.5.64"}}))
    listed = doctor.problems(hidden, doctor.available(hidden))
    assert any("--system-site-packages" in p for p in listed)
    assert any("pip uninstall opencv-python-headless" in p for p in listed)
    missing = _facts(numpy=Probe(False, "no"))
    assert any(p.startswith("numpy is missing") for p in doctor.problems(missing, doctor.available(missing)))


def test_doctor_command_reports_this_machine(tmp_path, capsys):
    report_path = tmp_path / "doctor.json"
    status = main(["doctor", "--no-torch", "--json", str(report_path)])
    out = capsys.readouterr().out
    assert "what each command can do here" in out and f"numpy{' ' * 2}" in out
    report = json.loads(report_path.read_text())
    assert status == (1 if report["problems"] else 0)
    assert report["facts"]["numpy"]["details"]["version"] == np.__version__
    assert report["facts"]["torch"]["summary"].startswith("not probed")
    assert {row["what"] for row in report["capabilities"]} == {c.what for c in doctor.CAPABILITIES}
    onnx_row = next(row for row in report["capabilities"] if row["what"].endswith("--backend onnxruntime"))
    assert onnx_row["ok"] == report["facts"]["onnxruntime"]["found"]


def test_doctor_json_on_stdout_is_only_json(capsys):
    main(["doctor", "--no-torch", "--json", "-"])
    report = json.loads(capsys.readouterr().out)
    assert report["facts"]["python"]["details"]["version"] == ".".join(map(str, sys.version_info[:3]))


def test_doctor_without_torch_says_what_torch_commands_need():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from infusionnet.cli.main import main\n"
            "sys.exit(main(['doctor']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode in (0, 1), result.stderr
    line = next(line for line in result.stdout.splitlines() if line.strip().startswith("train"))
    assert "no: torch: pip install torch==2.13.0" in line
    assert "torch" in result.stdout and "no: not installed" in result.stdout
