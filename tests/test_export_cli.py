"""`infusionnet export onnx` and `export check-trt` end to end: outputs, manifest, errors."""
import json

import numpy as np
import onnx
import pytest

from export_cases import small_tensors_for_module  # noqa: F401 (fixtures)
from infusionnet.export.calibration import DEFAULT_CALIBRATION_METHOD
from infusionnet.cli.main import main
from infusionnet.runtime.fileio import file_sha256
from infusionnet.runtime.manifest import (MANIFEST_NAME, Manifest, graph_metadata,
                                          read_graph_metadata)

SMALL = ["--content-size", "32x48", "--variant", "aesfa", "--style-size", "32", "--checkpoint", "untrained"]


def _run(capsys, *argv):
    code = main(["export", *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture(scope="module")
def int8_split(tmp_path_factory):
    """One INT8 split export through the CLI, shared by the manifest tests."""
    output = tmp_path_factory.mktemp("cli") / "int8-split"
    code = main(["export", "onnx", "--graph", "split", "--batch", "2", "--dynamic-size", "--precision", "int8",
                 "--calibration-batches", "2", *SMALL, "-o", str(output)])
    assert code == 0
    return output


def test_int8_split_export_writes_graphs_and_manifest(int8_split):
    assert sorted(p.name for p in int8_split.iterdir()) == ["content.onnx", MANIFEST_NAME, "style.onnx"]
    manifest = Manifest.load(int8_split)
    data = manifest.data
    assert (manifest.graph_kind, manifest.variant, manifest.precision) == ("split", "aesfa", "int8")
    assert (manifest.batch, manifest.opset, manifest.style_size) == (2, 17, 32)
    assert manifest.content_size == [32, 48] and manifest.dynamic_size
    assert manifest.checkpoint_sha256 == "untrained-seed-0" and data["checkpoint"]["file"] is None
    assert manifest.mean == [0.485, 0.456, 0.406] and manifest.std == [0.229, 0.224, 0.225]
    assert set(data["exporter"]) >= {"torch", "onnx", "onnxruntime", "onnxslim"}
    content = manifest.graph("content")
    assert content.input("content").shape == (2, 3, "height", "width")
    assert content.output("stylized").shape == (2, 3, "height", "width")
    assert content.input_names[1:] == manifest.graph("style").output_names
    assert len(content.input_names) == 19
    assert content.input("AdaOctConv1_1.h.spatial").shape == (2, 128, 1, 3, 3)
    assert all(t.dtype == "float32" for g in manifest.graphs.values() for t in g.inputs + g.outputs)
    # Verification: every check passed, three inputs (random, samples, a second size).
    verification = data["verification"]
    assert verification["passed"] and verification["precision"] == "int8"
    assert verification["limits"] == {"fp32_max_abs": 0.001, "fp16_min_psnr": 45.0, "int8_min_psnr": 28.0}
    assert {c["inputs"] for c in verification["checks"]} == {"random 32x48", "samples 32x48", "random 48x56"}
    assert all(c["passed"] for c in verification["checks"])
    assert verification["worst"]["min_range_psnr_db"] >= 25.0
    # INT8 calibration on the samples, dynamic convs left in float.
    assert data["calibration"]["method"] == DEFAULT_CALIBRATION_METHOD and data["calibration"]["batches"] == 2
    assert data["calibration"]["float_dynamic_convs"] == {"content": 6}  # one folded conv per AdaConv
    assert data["calibration"]["float_graphs"] == ["style"]  # runs once per style: kept FP32
    # The TensorRT summary (from export.trt_compat) for each version.
    trt = data["trt_compat"]
    if trt.get("available"):
        assert set(trt["versions"]) == {"8.2", "8.5", "8.6", "10"}
        assert not trt["versions"]["8.2"]["ok"]  # dynamic-weight convolutions need TensorRT 8.5


def test_graphs_carry_the_manifest_facts(int8_split):
    manifest = Manifest.load(int8_split)
    for role, graph in manifest.graphs.items():
        assert graph.sha256 == file_sha256(graph.path)
        model = onnx.load(str(graph.path))
        props = {p.key: p.value for p in model.metadata_props}
        assert props == graph_metadata(manifest.data, role)
        facts = read_graph_metadata(props)
        assert facts["role"] == role and facts["precision"] == "int8" and facts["batch"] == 2
        assert facts["checkpoint"]["sha256"] == "untrained-seed-0"
        # INT8 is for the per-frame graph; the style graph, run once per style, stays FP32.
        quantized = any(node.op_type == "QuantizeLinear" for node in model.graph.node)
        assert quantized == (role == "content")


def test_check_trt_on_the_export(int8_split, capsys):
    pytest.importorskip("infusionnet.export.trt_compat")
    code, text = _run(capsys, "check-trt", str(int8_split), "--trt", "8.2")
    assert code == 1 and "NOT compatible" in text
    code, text = _run(capsys, "check-trt", str(int8_split / "style.onnx"), "--trt", "10")
    assert code == 0


def test_baked_export_with_a_checkpoint_and_overwrite(tmp_path, capsys, seeded_models):
    from infusionnet.models import save_checkpoint

    checkpoint = save_checkpoint(seeded_models["aesfa"], tmp_path / "aesfa.safetensors")
    output = tmp_path / "nested" / "baked"
    argv = ["onnx", "--checkpoint", str(checkpoint), "--graph", "baked", "--style-image", "sample:brick",
            "--precision", "fp16", "--opset", "13", "--content-size", "32x40", "--style-size", "32", "-o", str(output)]
    code, text = _run(capsys, *argv)
    assert code == 0, text
    assert "UNTRAINED" not in text and "fp16 ONNX vs PyTorch FP32" in text
    manifest = Manifest.load(output)
    assert manifest.checkpoint_sha256 == file_sha256(checkpoint)
    assert manifest.data["checkpoint"]["file"] == "aesfa.safetensors"
    assert manifest.data["style_image"]["argument"] == "sample:brick"
    assert manifest.opset == 13 and onnx.load(str(manifest.graph("baked").path)).opset_import[0].version == 13
    assert list(manifest.graphs) == ["baked"] and manifest.graph("baked").input_names == ["content"]
    # An existing output needs --overwrite, and is then replaced.
    (output / "stale.txt").write_text("old")
    code, text = _run(capsys, *argv)
    assert code == 2 and "already exists (pass --overwrite" in text
    code, text = _run(capsys, *argv, "--overwrite")
    assert code == 0 and not (output / "stale.txt").exists()


def test_default_export_records_the_bundled_model(tmp_path, capsys):
    from infusionnet.models.default_model import DEFAULT_CHECKPOINT
    output = tmp_path / "full"
    code, text = _run(capsys, "onnx", "--graph", "full", "--content-size", "32x32", "--style-size", "96", "-o",
                      str(output))
    assert code == 0, text
    assert "UNTRAINED" not in text and "TensorRT compatibility" in text
    recorded = Manifest.load(output).data["checkpoint"]
    assert recorded == {"file": DEFAULT_CHECKPOINT.name, "sha256": file_sha256(DEFAULT_CHECKPOINT)}


def test_aesfa_without_a_checkpoint_is_a_clear_error(tmp_path, capsys):
    code, text = _run(capsys, "onnx", "--variant", "aesfa", "-o", str(tmp_path / "x"))
    assert code == 2 and "bundled default model is InfusionNet, not aesfa" in text
    assert not (tmp_path / "x").exists()


def _no_output_left(root):
    return [p.name for p in root.iterdir()] == []


@pytest.mark.parametrize("args, message", [
    (["--content-size", "30x48"], "content height 30 must be a multiple of 8"),
    (["--content-size", "8x48"], "content height 8 must be a multiple of 8 and at least 16"),
    (["--content-size", "32by48"], "--content-size '32by48': expected HxW"),
    (["--style-size", "64"], "style size 64 does not fit infusionnet"),
    (["--style-size", "100"], "style size 100 does not fit infusionnet: it must be a multiple of 32"),
    (["--variant", "aesfa", "--style-size", "16"], "style size 16 does not fit aesfa"),
    (["--graph", "baked"], "--graph baked needs --style-image"),
    (["--graph", "baked", "--style-image", "nope.png"], "--style-image nope.png: no such file"),
    (["--graph", "baked", "--style-image", "sample:nope"], "unknown sample 'nope'"),
    (["--style-image", "sample:brick"], "--style-image only applies to --graph baked"),
    (["--calibration", "."], "--calibration only applies to --precision int8"),
    (["--precision", "int8", "--calibration", "no/such/dir"], "--calibration no/such/dir: no such folder"),
    (["--batch", "0"], "--batch 0 must be between 1 and 64"),
    (["--opset", "9"], "--opset 9 is not supported; choose 13..20"),
    (["--checkpoint", "missing.pth"], "--checkpoint missing.pth: no such file"),
])
def test_bad_arguments_fail_early_and_leave_nothing(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    code, text = _run(capsys, "onnx", *args, "-o", str(tmp_path / "parent" / "out"))
    assert code == 2
    lines = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and message in lines[0], text
    assert _no_output_left(tmp_path)


def test_unreadable_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"this is not a checkpoint")
    code, text = _run(capsys, "onnx", "--checkpoint", str(bad), "-o", str(tmp_path / "out"))
    assert code == 2 and f"error: {bad}: not a PyTorch checkpoint" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.pth"]


def test_failed_verification_removes_the_output(tmp_path, capsys):
    output = tmp_path / "deep" / "out"
    code, text = _run(capsys, "onnx", "--graph", "full", *SMALL, "--max-abs", "1e-12", "-o", str(output))
    assert code == 2
    assert "error: verification failed: full on random 32x48: max abs" in text
    assert "limit max abs <= 1e-12" in text and "FAIL" in text
    assert _no_output_left(tmp_path)


def test_help_is_instant_and_lists_the_commands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["export", "onnx", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--graph", "--batch", "--content-size", "--style-size", "--style-image", "--dynamic-size",
                   "--precision", "--calibration", "--calibration-method", "--opset", "--overwrite", "--output"):
        assert option in text
    assert main(["export"]) == 2


def test_manifest_json_is_plain_json(int8_split):
    text = (int8_split / MANIFEST_NAME).read_text()
    data = json.loads(text)  # no NaN/Infinity: every value is standard JSON
    assert "Infinity" not in text and "NaN" not in text
    assert np.isfinite(data["verification"]["worst"]["max_abs"])
