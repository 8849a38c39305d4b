"""Hostile inputs, one row per case: the exit code, the one-line message and what is on disk.

Every row runs the real `infusionnet` command in-process on small synthetic files. A row
passes only when the command exits with the expected code, its last stderr line is
`error: ...` holding the expected words, no traceback is printed, and the files that must (not)
exist after it do (not). The memory cases check the refusal, never an actual OOM.
"""
import json
import os
import shutil
import stat
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from infusionnet.cli.main import main
from infusionnet.runtime import images
from infusionnet.runtime.fileio import file_sha256
from runtime_exports import export


def _png(path: Path, height: int, width: int, seed: int = 0) -> Path:
    cv2.imwrite(str(path), np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))
    return path


def _bomb_png(path: Path, side: int = 60000) -> Path:
    """A structurally valid PNG whose header claims side x side pixels (3.6 gigapixels)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def _copy_export(tmp: Path) -> Path:
    """A private copy of the shared dynamic split export (same call as the other rows: one build)."""
    target = tmp / "export"
    shutil.copytree(str(export("split", dynamic=True)), str(target))
    return target


def _nan_export(tmp: Path) -> Path:
    """A copy of a split export whose content graph computes NaN, with the manifest hash updated
    (the graph is "valid", only its numbers are broken, as after a bad FP16 overflow)."""
    import onnx
    from onnx import numpy_helper

    target = _copy_export(tmp)
    path = target / "content.onnx"
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.dtype == np.float32 and array.ndim == 4:  # a convolution weight
            init.CopyFrom(numpy_helper.from_array(np.full_like(array, np.nan), init.name))
            break
    onnx.save(model, str(path))
    manifest = json.loads((target / "manifest.json").read_text())
    for graph in manifest["graphs"]:
        if graph["file"] == "content.onnx":
            graph["sha256"] = file_sha256(path)
    (target / "manifest.json").write_text(json.dumps(manifest))
    return target


def _damaged_export(tmp: Path) -> Path:
    target = _copy_export(tmp)
    data = bytearray((target / "content.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (target / "content.onnx").write_bytes(bytes(data))
    return target


def _nan_checkpoint(tmp: Path) -> Path:
    import torch

    from infusionnet.models import build_model, save_checkpoint

    model = build_model("infusionnet", seed=0)
    with torch.no_grad():
        next(model.parameters()).fill_(float("nan"))
    return save_checkpoint(model, tmp / "nan.safetensors")


def _video(path: Path, frames: int = 3, size=(32, 32)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (size[1], size[0]))
    for i in range(frames):
        writer.write(np.full((size[0], size[1], 3), 40 * i, np.uint8))
    writer.release()
    return path


def _files(folder: Path):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# Each row: id, setup(tmp) -> argv, exit code, words of the last line, check(tmp) -> bool.
# Rows that stylize with PyTorch use the untrained network (no checkpoint) and tiny images.
CASES = [
    # -- cases that already worked -------------------------------------------------------------
    ("corrupt-image",
     lambda t: ["stylize", "--content", str(_bad(t / "c.png", b"\x89PNG\r\n\x1a\nnot a png")), "-o", str(t / "o")],
     2, ["c.png"], lambda t: not (t / "o").exists()),
    ("truncated-jpeg",
     lambda t: ["stylize", "--content", str(_bad(t / "c.jpg", _jpeg_bytes()[:400])), "-o", str(t / "o")],
     2, ["c.jpg", "truncated"], lambda t: not (t / "o").exists()),
    ("decompression-bomb",
     lambda t: ["stylize", "--content", str(_bomb_png(t / "bomb.png")), "-o", str(t / "o")],
     2, ["bomb.png", "megapixels"], lambda t: not (t / "o").exists()),
    ("not-a-checkpoint",
     lambda t: ["stylize", "--checkpoint", str(_bad(t / "x.pth", b"garbage" * 10)), "-o", str(t / "o")],
     2, ["x.pth"], lambda t: not (t / "o").exists()),
    ("missing-content",
     lambda t: ["stylize", "--content", str(t / "nope.png"), "-o", str(t / "o")],
     2, ["nope.png"], lambda t: not (t / "o").exists()),
    # -- 1. memory bounded after resizing ------------------------------------------------------
    ("thin-strip-at-default-size",
     lambda t: ["stylize", "--content", str(_png(t / "strip.png", 16, 4000)), "-o", str(t / "o")],
     2, ["strip.png", "longer than wide", "--resize"], lambda t: not (t / "o").exists()),
    ("over-pixel-budget",
     lambda t: ["stylize", "--content", str(_png(t / "big.png", 64, 64)), "--resize", "keep",
                "--max-pixels", "1000", "-o", str(t / "o")],
     2, ["big.png", "--max-pixels", "--resize"], lambda t: not (t / "o").exists()),
    ("over-pixel-budget-model",
     lambda t: ["stylize", "--model", str(export("split", dynamic=True)), "--content",
                str(_png(t / "big.png", 64, 64)), "--resize", "keep", "--max-pixels", "1000", "-o", str(t / "o")],
     2, ["big.png", "--max-pixels"], lambda t: not (t / "o").exists()),
    ("video-over-pixel-budget",
     lambda t: ["video", "--model", str(export("split", dynamic=True)), "--input", str(_video(t / "in.avi")),
                "--max-pixels", "100", "-o", str(t / "out.avi")],
     2, ["in.avi", "--max-pixels"], lambda t: _files(t) == ["in.avi"]),
    # -- 2. damaged graphs and non-finite outputs ----------------------------------------------
    ("graph-hash-mismatch",
     lambda t: ["stylize", "--model", str(_damaged_export(t)), "--content", str(_png(t / "c.png", 32, 32)),
                "-o", str(t / "o")],
     2, ["content.onnx", "sha256"], lambda t: not (t / "o").exists()),
    ("nan-output-model",
     lambda t: ["stylize", "--model", str(_nan_export(t)), "--content", str(_png(t / "c.png", 32, 32)),
                "--fail-fast", "-o", str(t / "o")],
     2, ["NaN/Inf", "nothing was written"], lambda t: not (t / "o").exists()),
    ("nan-output-torch",
     lambda t: ["stylize", "--checkpoint", str(_nan_checkpoint(t)), "--content", str(_png(t / "c.png", 32, 32)),
                "--resize", "keep", "-o", str(t / "o")],
     2, ["c.png", "NaN/Inf"], lambda t: not (t / "o").exists()),
    ("nan-output-video",
     lambda t: ["video", "--model", str(_nan_export(t)), "--input", str(_video(t / "in.avi")),
                "-o", str(t / "out.avi")],
     2, ["NaN/Inf"], lambda t: not (t / "out.avi").exists() and not list(t.glob(".out*"))),
    # -- 3. file-system errors before the work starts ------------------------------------------
    ("export-into-proc",
     lambda t: ["export", "onnx", "-o", "/proc/infusionnet-x"],
     2, ["cannot write /proc/infusionnet-x"], lambda t: not Path("/proc/infusionnet-x").exists()),
    ("video-into-proc",
     lambda t: ["video", "--input", str(_video(t / "in.avi")), "-o", "/proc/infusionnet-x.mp4"],
     2, ["cannot write /proc/infusionnet-x.mp4"], lambda t: _files(t) == ["in.avi"]),
    ("check-json-into-proc",
     lambda t: ["check", str(export("split", dynamic=True)), "--json", "/proc/infusionnet-x.json"],
     2, ["cannot write /proc/infusionnet-x.json"], lambda t: True),
    ("output-under-a-file",
     lambda t: ["stylize", "--content", str(_png(t / "c.png", 32, 32)), "-o", str(_bad(t / "f.txt", b"x")) + "/out"],
     2, ["f.txt", "is a file, not a folder"], lambda t: (t / "f.txt").read_bytes() == b"x"),
    ("export-under-a-file",
     lambda t: ["export", "onnx", "-o", str(_bad(t / "f.txt", b"x")) + "/out"],
     2, ["f.txt", "is a file, not a folder"], lambda t: _files(t) == ["f.txt"]),
    # -- 5. one bad image does not stop the batch ----------------------------------------------
    ("batch-continues-torch",
     lambda t: ["stylize", "--content", str(_batch_folder(t)), "--resize", "keep", "-o", str(t / "o")],
     2, ["b_bad.png", "the other 2 outputs were written"],
     lambda t: _files(t / "o") == ["a_good__hubble_deep_field.png", "c_good__hubble_deep_field.png"]),
    ("batch-continues-model",
     lambda t: ["stylize", "--model", str(export("split", dynamic=True)), "--content", str(_batch_folder(t)),
                "--resize", "keep", "-o", str(t / "o")],
     2, ["b_bad.png", "the other 2 outputs were written"],
     lambda t: _files(t / "o") == ["a_good__hubble_deep_field.png", "c_good__hubble_deep_field.png"]),
    ("batch-fail-fast",
     lambda t: ["stylize", "--content", str(_batch_folder(t)), "--resize", "keep", "--fail-fast", "-o", str(t / "o")],
     2, ["b_bad.png"], lambda t: _files(t / "o") == ["a_good__hubble_deep_field.png"]),
    # -- 10. smaller ---------------------------------------------------------------------------
    ("video-odd-size",
     lambda t: ["video", "--input", str(_video(t / "in.avi")), "--frame-size", "7x7", "-o", str(t / "out.mp4")],
     2, ["even", "--frame-size 6x6"], lambda t: _files(t) == ["in.avi"]),
]


def _bad(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _jpeg_bytes() -> bytes:
    ok, data = cv2.imencode(".jpg", np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8))
    return data.tobytes()


def _batch_folder(tmp: Path) -> Path:
    folder = tmp / "in"
    folder.mkdir()
    _png(folder / "a_good.png", 24, 32)
    (folder / "b_bad.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    _png(folder / "c_good.png", 32, 24, seed=1)
    return folder


@pytest.mark.parametrize("setup, code, words, check", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_case(setup, code, words, check, tmp_path, capsys):
    argv = setup(tmp_path)
    capsys.readouterr()
    assert main(argv) == code
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: "), err
    for word in words:
        assert word in last, last
    assert "Traceback" not in err
    assert check(tmp_path), _files(tmp_path)


def test_batch_reports_every_bad_input_by_name(tmp_path, capsys):
    folder = _batch_folder(tmp_path)
    _bomb_png(folder / "d_bomb.png")
    assert main(["stylize", "--content", str(folder), "--resize", "keep", "-o", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "skipped " + str(folder / "b_bad.png") in err and "skipped " + str(folder / "d_bomb.png") in err
    assert "2 inputs failed (b_bad.png, d_bomb.png), each reason above; the other 2 outputs were written" in \
        err.strip().splitlines()[-1]


def test_export_directories_follow_the_umask(tmp_path):
    directory = export("split", dynamic=True)
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o777 & ~mask


def test_static_export_letterboxes_and_says_so(tmp_path, capsys):
    content = _png(tmp_path / "wide.png", 16, 48)
    out = tmp_path / "o"
    assert main(["stylize", "--model", str(export("split", dynamic=False)), "--content", str(content),
                 "--resize", "keep", "--style-size", "128", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "static-size export (32x32)" in err and "reflect-padded" in err and "--dynamic-size" in err
    assert "--style-size 128 is not used" in err
    assert images.read_image(out / "wide__hubble_deep_field.png").shape == (16, 48, 3)


def test_letterbox_keeps_the_aspect_ratio():
    plan = images.Letterbox.plan(16, 48, (32, 32))
    assert plan.scaled == (11, 32) and plan.pad == (10, 11, 0, 0)
    rgb = np.random.default_rng(0).integers(0, 256, (16, 48, 3), dtype=np.uint8)
    boxed = plan.apply(rgb)
    assert boxed.shape == (32, 32, 3)
    # The image sits unstretched in the middle rows; undo crops it and scales it back.
    np.testing.assert_array_equal(boxed[10:21], images.resize_array(rgb, 11, 32))
    assert plan.undo(boxed).shape == (16, 48, 3)


def test_check_without_torch_says_torch_is_needed_for_the_reference(tmp_path):
    import subprocess
    import sys

    from test_runtime_without_torch import BLOCK_TORCH

    code = BLOCK_TORCH + ("import sys\nfrom infusionnet.cli.main import main\n"
                          f"sys.exit(main(['check', {str(tmp_path)!r}, '--backend', 'onnxruntime']))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert "always needs torch" in last and "also with --backend onnxruntime" in last
