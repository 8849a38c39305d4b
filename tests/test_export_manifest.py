"""runtime/manifest.py: the torch-free manifest schema, loader and its errors."""
import copy
import json
import re

import pytest

from infusionnet.runtime.manifest import (FORMAT, MANIFEST_NAME, GraphEntry, Manifest, ManifestError, TensorSpec,
                                          graph_metadata, read_graph_metadata, validate)


def _data():
    return {
        "format": FORMAT, "graph_kind": "split", "variant": "aesfa", "precision": "fp16", "opset": 17,
        "batch": 2, "content_size": [32, 48], "dynamic_size": True, "style_size": 32,
        "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
        "checkpoint": {"file": None, "sha256": "untrained-seed-0"},
        "exporter": {"torch": "2.13.0"},
        "graphs": [
            {"role": "style", "file": "style.onnx",
             "inputs": [{"name": "style", "shape": [2, 3, 32, 32], "dtype": "float32"}],
             "outputs": [{"name": "AdaOctConv1_1.h.bias", "shape": [2, 128], "dtype": "float32"}]},
            {"role": "content", "file": "content.onnx",
             "inputs": [{"name": "content", "shape": [2, 3, "height", "width"], "dtype": "float32"},
                        {"name": "AdaOctConv1_1.h.bias", "shape": [2, 128], "dtype": "float32"}],
             "outputs": [{"name": "stylized", "shape": [2, 3, "height", "width"], "dtype": "float32"}]},
        ],
        "verification": {"passed": True, "checks": []},
        "trt_compat": None,
    }


@pytest.fixture
def export_dir(tmp_path):
    directory = tmp_path / "export"
    directory.mkdir()
    for name in ("style.onnx", "content.onnx"):
        (directory / name).write_bytes(b"onnx")
    Manifest(_data()).save(directory)
    return directory


def test_round_trip_and_accessors(export_dir):
    manifest = Manifest.load(export_dir)
    assert manifest.graph_kind == "split" and manifest.variant == "aesfa" and manifest.precision == "fp16"
    assert (manifest.opset, manifest.batch, manifest.style_size) == (17, 2, 32)
    assert manifest.content_size == [32, 48] and manifest.dynamic_size is True
    assert manifest.mean == [0.485, 0.456, 0.406] and manifest.std[2] == 0.225
    assert manifest.checkpoint_sha256 == "untrained-seed-0"
    content = manifest.graph("content")
    assert content.path == export_dir / "content.onnx"
    assert content.input_names == ["content", "AdaOctConv1_1.h.bias"]
    assert content.input("content").shape == (2, 3, "height", "width")
    assert content.input("content").is_dynamic and not content.input("AdaOctConv1_1.h.bias").is_dynamic
    assert manifest.graph("style").output_names == ["AdaOctConv1_1.h.bias"]
    # A manifest file path works as well as its directory.
    assert Manifest.load(export_dir / MANIFEST_NAME).to_dict() == manifest.to_dict()
    assert json.loads((export_dir / MANIFEST_NAME).read_text())["graphs"][0]["role"] == "style"


def test_missing_role_and_tensor(export_dir):
    manifest = Manifest.load(export_dir)
    with pytest.raises(ManifestError, match=r"has no baked graph \(it holds: style, content\)"):
        manifest.graph("baked")
    with pytest.raises(KeyError, match="no input named 'nope'"):
        manifest.graph("content").input("nope")


def test_missing_directory_file_and_graph(tmp_path, export_dir):
    with pytest.raises(ManifestError, match="manifest not found"):
        Manifest.load(tmp_path / "nowhere" / MANIFEST_NAME)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ManifestError, match=f"export directory {empty} has no {MANIFEST_NAME}"):
        Manifest.load(empty)
    (export_dir / "content.onnx").unlink()
    with pytest.raises(ManifestError, match=r"graph file content.onnx \(content graph\) is missing"):
        Manifest.load(export_dir)
    assert Manifest.load(export_dir, check_files=False).graph("content").file == "content.onnx"


def test_bad_json(export_dir):
    (export_dir / MANIFEST_NAME).write_text("{not json")
    with pytest.raises(ManifestError, match=r"manifest.json: not valid JSON"):
        Manifest.load(export_dir)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.pop("variant"), "missing field variant"),
    (lambda d: [d.pop("batch"), d.pop("opset")], "missing fields opset, batch"),
    (lambda d: d.update(format="other/9"), "format 'other/9' is not"),
    (lambda d: d.update(precision="int4"), "precision 'int4' is not one of fp32, fp16, int8"),
    (lambda d: d.update(batch=0), "batch must be a positive integer"),
    (lambda d: d.update(content_size=[32]), r"content_size must be \[height, width\]"),
    (lambda d: d["normalization"].pop("std"), "normalization must hold mean and std"),
    (lambda d: d["graphs"].pop(), "a split export holds the graphs style, content, not style"),
    (lambda d: d["graphs"][0].update(role="decoder"), "role 'decoder' is not one of"),
    (lambda d: d["graphs"][1]["inputs"][0].update(shape=[2, 3, -1, 4]), "content: shape must list"),
    (lambda d: d["graphs"][1]["outputs"][0].update(dtype="complex64"), "unknown dtype 'complex64'"),
    (lambda d: d["graphs"][0].pop("file"), r"graphs\[0\] misses file"),
])
def test_validation_messages(export_dir, change, message):
    data = copy.deepcopy(_data())
    change(data)
    assert any(re.search(message, problem) for problem in validate(data)), validate(data)
    (export_dir / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(ManifestError, match=message) as error:
        Manifest.load(export_dir)
    assert str(export_dir / MANIFEST_NAME) in str(error.value)
    assert "\n" not in str(error.value)


def test_valid_data_has_no_problems_and_top_level_must_be_an_object():
    assert validate(_data()) == []
    assert validate([1, 2]) == ["top level must be a JSON object, not list"]


def test_save_refuses_invalid_data(tmp_path):
    data = _data()
    data["precision"] = "fp8"
    with pytest.raises(ManifestError, match="refusing to write an invalid manifest"):
        Manifest(data).save(tmp_path)
    assert not (tmp_path / MANIFEST_NAME).exists()


def test_graph_metadata_round_trip():
    props = graph_metadata(_data(), "content")
    assert props["infusionnet.role"] == "content"
    assert all(isinstance(v, str) for v in props.values())
    facts = read_graph_metadata(dict(props, other="ignored"))
    assert facts["role"] == "content" and facts["batch"] == 2 and facts["content_size"] == [32, 48]
    assert facts["normalization"]["mean"] == [0.485, 0.456, 0.406]
    assert "graphs" not in facts and "verification" not in facts and "other" not in facts


def test_tensor_and_graph_entries():
    spec = TensorSpec("content", [1, 3, "height", 64])
    assert spec == TensorSpec.from_dict(spec.to_dict()) and spec.dtype == "float32"
    entry = GraphEntry("baked", "baked.onnx", [spec], [TensorSpec("stylized", [1, 3, "height", 64])], "ab")
    assert GraphEntry.from_dict(entry.to_dict()).to_dict() == entry.to_dict()
