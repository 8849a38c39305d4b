"""Engine sidecars: round trip, compatibility rules, damaged engine files."""
import hashlib
import json

import pytest

from infusionnet.runtime.engine_sidecar import (
    EngineMismatchError, EngineSidecar, Environment, SidecarError, check_compatible, compatibility_problems,
    read_engine_bytes, read_sidecar, sidecar_path, write_sidecar)
from infusionnet.runtime.trt_plan import ShapeRange, TensorSpec

ENGINE_BYTES = b"not a real engine, but bytes with a known hash" * 10
COMMAND = "infusionnet export trt --onnx exports/split --precision fp16 --output engines/split"


def _sidecar(**changes):
    values = dict(
        engine_file="content.engine", engine_bytes=len(ENGINE_BYTES),
        engine_sha256=hashlib.sha256(ENGINE_BYTES).hexdigest(), role="content", precision="fp16",
        tensorrt_version="8.6.1.6", gpu_name="Orin", compute_capability="8.7", platform="Linux-aarch64",
        inputs=(TensorSpec("content", (1, 3, "height", "width"), "float32"),),
        outputs=(TensorSpec("stylized", (1, 3, "height", "width"), "float32"),),
        profiles=({"content": ShapeRange((1, 3, 64, 64), (1, 3, 256, 256), (1, 3, 512, 512))},),
        onnx_file="content.onnx", onnx_sha256="ab" * 32, build_time="2025-01-01T00:00:00Z",
        build_seconds=12.5, build_command=COMMAND, options={"workspace_mb": 1024, "dla_core": None})
    values.update(changes)
    return EngineSidecar(**values)


HERE = Environment("8.6.1.6", "Orin", "8.7", "Linux-aarch64")


def test_round_trip(tmp_path):
    engine = tmp_path / "content.engine"
    path = write_sidecar(engine, _sidecar())
    assert path == sidecar_path(engine) == tmp_path / "content.engine.json"
    loaded = read_sidecar(engine)
    assert loaded == _sidecar()
    assert loaded.inputs[0].shape == (1, 3, "height", "width")
    assert json.loads(path.read_text())["format"] == 1


def test_same_machine_is_compatible():
    assert compatibility_problems(_sidecar(), HERE) == ([], [])


@pytest.mark.parametrize("here, expected", [
    (HERE._replace(tensorrt_version="10.3.0.26"), r"TensorRT 8\.6\.1 built it, this machine has 10\.3\.0"),
    (HERE._replace(tensorrt_version="8.6.0.12"), r"TensorRT 8\.6\.1 built it, this machine has 8\.6\.0"),
    (HERE._replace(compute_capability="9.0", gpu_name="NVIDIA H100"), r"compute capability 8\.7 \(Orin\).*9\.0"),
    (HERE._replace(platform="Linux-x86_64"), r"built on Linux-aarch64, this machine is Linux-x86_64"),
])
def test_mismatch_says_what_differs_and_how_to_rebuild(tmp_path, here, expected):
    with pytest.raises(EngineMismatchError, match=expected) as caught:
        check_compatible(tmp_path / "content.engine", _sidecar(), here)
    message = str(caught.value)
    assert "content.engine cannot run here" in message
    assert message.endswith(COMMAND)


def test_build_number_or_gpu_name_differences_only_warn(tmp_path):
    here = HERE._replace(tensorrt_version="8.6.1.2", gpu_name="Orin NX")
    warnings = check_compatible(tmp_path / "e", _sidecar(), here)
    assert len(warnings) == 2
    assert "8.6.1.6 vs 8.6.1.2" in warnings[0] and "Orin NX" in warnings[1]


def test_missing_and_malformed_sidecars(tmp_path):
    engine = tmp_path / "style.engine"
    with pytest.raises(SidecarError, match=r"style\.engine\.json is missing"):
        read_sidecar(engine)
    sidecar_path(engine).write_text("{not json")
    with pytest.raises(SidecarError, match="not readable JSON"):
        read_sidecar(engine)
    data = _sidecar().to_json()
    del data["onnx_sha256"], data["gpu_name"]
    sidecar_path(engine).write_text(json.dumps(data))
    with pytest.raises(SidecarError, match="lacks gpu_name, onnx_sha256"):
        read_sidecar(engine)
    sidecar_path(engine).write_text(json.dumps({"format": 99}))
    with pytest.raises(SidecarError, match="format 1"):
        read_sidecar(engine)


def test_engine_bytes_are_checked(tmp_path):
    engine = tmp_path / "content.engine"
    write_sidecar(engine, _sidecar())
    with pytest.raises(EngineMismatchError, match="missing"):
        read_engine_bytes(engine)
    engine.write_bytes(ENGINE_BYTES)
    assert read_engine_bytes(engine) == ENGINE_BYTES
    engine.write_bytes(ENGINE_BYTES[:100])
    with pytest.raises(EngineMismatchError, match=r"100 bytes but was built as \d+ \(truncated") as caught:
        read_engine_bytes(engine)
    assert COMMAND in str(caught.value)
    engine.write_bytes(ENGINE_BYTES[::-1])
    with pytest.raises(EngineMismatchError, match="sha256"):
        read_engine_bytes(engine)
