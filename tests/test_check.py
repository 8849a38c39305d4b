"""`infusionnet check`: metrics, floors, sizes, and the command end to end on real exports."""
import json

import numpy as np
import pytest

from infusionnet.cli.main import main
from infusionnet.runtime.compare import Row, check_sizes, judge
from infusionnet.runtime.errors import CheckError
from infusionnet.runtime.floors import Floors, floors_for
from infusionnet.runtime.metrics import image_metrics, kernel_metrics
from runtime_exports import export


# --------------------------------------------------------------------------- plain functions

def _image(seed, shape=(1, 3, 32, 32)):
    return np.random.default_rng(seed).uniform(-2, 2, shape).astype(np.float32)


def test_identical_outputs_are_exact():
    a = _image(0)
    metrics = image_metrics(a, a.copy())
    assert metrics["max_abs"] == 0 and metrics["psnr_db"] == 100.0 and metrics["ssim"] == pytest.approx(1.0)


def test_noise_lowers_psnr_and_ssim_in_order():
    reference = _image(1)
    small = image_metrics(reference + 0.01 * _image(2), reference)
    large = image_metrics(reference + 0.3 * _image(3), reference)
    assert small["psnr_db"] > large["psnr_db"] and small["ssim"] > large["ssim"]
    assert 0 < large["mean_abs"] < large["max_abs"] <= 0.3 * 2 + 1e-6
    with pytest.raises(CheckError, match="differs from the reference"):
        image_metrics(reference[:, :, :16], reference)


def test_kernel_metrics_need_the_same_names():
    kernels = {"a": np.zeros(3, np.float32), "b": np.ones(2, np.float32)}
    assert kernel_metrics(kernels, {"a": np.zeros(3), "b": np.full(2, 1.5)}) == {"max_abs": 0.5, "mean_abs": 0.2}
    with pytest.raises(CheckError, match="kernel names differ"):
        kernel_metrics(kernels, {"a": np.zeros(3)})


def test_judge_applies_each_floor_and_ignores_kernels():
    row = Row("random", "32x32", "stylized", max_abs=0.2, mean_abs=0.01, psnr_db=45.0, range_psnr_db=30.0, ssim=0.95)
    assert judge(row, Floors(min_psnr_db=25.0, min_ssim=0.9)).passed
    failed = judge(row, Floors(max_abs=1e-3, min_psnr_db=40.0, min_ssim=0.97))
    assert failed.failures == ["max abs 0.2 > 0.001", "PSNR 30.0 dB < 40", "SSIM 0.9500 < 0.97"]
    kernels = Row("random", "32x32", "kernels", max_abs=9.0, mean_abs=1.0)
    assert judge(kernels, Floors(max_abs=1e-3)).passed
    assert not judge(Row("r", "s", "stylized", float("nan"), 0.0, 100.0, 100.0, 1.0), Floors()).passed


def test_floors_defaults_and_overrides():
    assert floors_for("fp16") == Floors(min_psnr_db=45.0, min_ssim=0.99)
    assert floors_for("int8", {"min_ssim": 0.5}).min_ssim == 0.5
    with pytest.raises(CheckError, match="unknown floor 'psnr'"):
        floors_for("fp32", {"psnr": 3})


def test_check_sizes():
    assert check_sizes([32, 48], dynamic=False) == [(32, 48)]
    assert check_sizes([32, 48], dynamic=True) == [(32, 48), (48, 56)]
    profile = ((16, 16), (32, 48), (64, 64))
    assert check_sizes([32, 48], dynamic=True, profile_hw=profile) == [(32, 48), (16, 16), (64, 64)]
    assert check_sizes([32, 48], dynamic=True, requested=[(64, 64), (64, 64)]) == [(64, 64)]
    with pytest.raises(CheckError, match="fixed size 32x48"):
        check_sizes([32, 48], dynamic=False, requested=[(64, 64)])


# --------------------------------------------------------------------------- the command

def test_check_split_export_passes_and_writes_json(tmp_path, capsys):
    result = tmp_path / "check.json"
    assert main(["check", str(export("split", dynamic=True)), "--json", str(result)]) == 0
    assert "check passed" in capsys.readouterr().out
    report = json.loads(result.read_text())
    assert report["passed"] and report["precision"] == "fp32" and report["backend"] == "onnxruntime"
    stylized = [row for row in report["rows"] if row["output"] == "stylized"]
    assert {row["size"] for row in stylized} == {"32x32", "48x40"}       # dynamic: two sizes
    assert {row["inputs"] for row in stylized} == {"random", "samples"}
    assert all(row["max_abs"] < 1e-4 for row in report["rows"])
    assert any(row["output"] == "kernels" for row in report["rows"])


def test_check_exits_1_when_a_floor_is_missed(tmp_path, capsys):
    result = tmp_path / "check.json"
    code = main(["check", str(export("full", dynamic=False)), "--max-abs", "0", "--samples", "0",
                 "--json", str(result)])
    out = capsys.readouterr().out
    assert code == 1 and "FAILED" in out
    report = json.loads(result.read_text())
    assert not report["passed"] and report["floors"]["max_abs"] == 0.0
    assert report["rows"][0]["failures"][0].startswith("max abs")


@pytest.mark.slow
def test_check_torch_fp16_against_fp32(tmp_path):
    result = tmp_path / "fp16.json"
    assert main(["check", str(export("full", dynamic=False)), "--backend", "torch", "--fp16", "--samples", "0",
                 "--json", str(result)]) == 0
    report = json.loads(result.read_text())
    assert report["precision"] == "fp16" and "fp16" in report["candidate"]
    assert 0 < report["rows"][0]["max_abs"] < 0.05


@pytest.mark.parametrize("extra, message", [
    (["--fp16"], "--fp16 applies to --backend torch"),
    (["--sizes", "64x64"], "fixed size 32x32"),
    (["--sizes", "60x64"], "height 60 must be a multiple of 8"),
    (["--backend", "tensorrt"], "build engines first"),
    (["--floors", "missing.json"], "missing.json"),
])
def test_check_bad_arguments(extra, message, tmp_path, capsys):
    code = main(["check", str(export("full", dynamic=False)), "--json", str(tmp_path / "x.json")] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: ") and message in err[-1]
    assert not (tmp_path / "x.json").exists()


def test_check_missing_manifest(tmp_path, capsys):
    assert main(["check", str(tmp_path)]) == 2
    assert "neither an ONNX export" in capsys.readouterr().err
