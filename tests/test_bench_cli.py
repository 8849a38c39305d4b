"""`infusionnet bench` end to end on a tiny size: rows, reference speed-ups, skips, files, compare."""
import json

import pytest

from infusionnet.benchmarks import runner
from infusionnet.cli.main import main
from infusionnet.runtime.sizes import parse_content_sizes


def test_parse_sizes_and_lists():
    assert parse_content_sizes("256, 720p,384x640", "--sizes", runner.BenchError) == [(256, 256), (720, 1280),
                                                                                       (384, 640)]
    for bad in ("100", "8", "abc", ""):
        with pytest.raises(runner.BenchError):
            parse_content_sizes(bad, "--sizes", runner.BenchError)
    with pytest.raises(runner.BenchError, match="tensorflow"):
        runner.parse_list("torch,tensorflow", runner.BACKENDS, "backend")


@pytest.mark.slow
def test_bench_rows_files_and_compare(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "--backends", "torch,onnxruntime,tensorrt", "--precisions", "fp32,fp16", "--sizes", "32x48",
            "--style-size", "96", "--iters", "2", "--warmup", "1", "--threads", "1", "--no-plots", "-o", str(out)]
    assert main(args) == 0
    data = json.loads((out / "results.json").read_text())
    rows = {(r["backend"], r["precision"]): r for r in data["rows"]}
    reference = rows[("reference", "fp32")]
    assert reference["status"] == "ok" and reference["speedup"] == pytest.approx(1.0)
    ort = rows[("onnxruntime", "fp32")]
    assert ort["status"] == "ok" and ort["graph"] == "content" and ort["latency"]["iterations"] == 2
    assert ort["accuracy"]["max_abs"] < 1e-3                      # FP32 ONNX matches PyTorch FP32
    assert set(ort["stages_ms"]) == {"preprocess", "style", "content", "postprocess"}
    assert ort["speedup"] == pytest.approx(reference["latency"]["median_ms"] / ort["latency"]["median_ms"])
    ort_fp16 = rows[("onnxruntime", "fp16")]
    if runner.onnxruntime_has_gpu():
        assert ort_fp16["status"] == "ok"
    else:  # slower than FP32 on every CPU measured: not offered as a CPU row
        assert ort_fp16["status"] == "skipped" and "not a CPU path" in ort_fp16["reason"]
    assert rows[("torch", "fp16")]["status"] == "skipped" and "CUDA" in rows[("torch", "fp16")]["reason"]
    assert rows[("tensorrt", "fp32")]["status"] == "skipped"  # no TensorRT on CI machines
    assert data["machine"]["cpu_cores"] >= 1 and "onnxruntime" in data["machine"]["versions"]
    assert "infusionnet bench --backends" in (out / "report.md").read_text()
    printed = capsys.readouterr().out
    assert "reference" in printed and "skipped tensorrt fp32" in printed
    if rows[("tensorrt", "fp32")]["reason"].startswith("TensorRT is not installed"):  # (not pycuda, also a hint)
        assert "pip install .[tensorrt]" in printed  # reasons are printed verbatim, not as rich markup

    again = tmp_path / "again"
    assert main(["bench", "--backends", "onnxruntime", "--precisions", "fp32", "--sizes", "32x48", "--style-size",
                 "96", "--iters", "2", "--no-reference", "--no-plots", "--compare", str(out / "results.json"),
                 "-o", str(again)]) == 0
    assert "difference against the earlier run" in capsys.readouterr().out


def test_bench_bad_options_are_one_line_errors(tmp_path, capsys):
    assert main(["bench", "--sizes", "33", "-o", str(tmp_path / "b")]) == 2
    assert "height 33 must be a multiple of 8" in capsys.readouterr().err
    assert main(["bench", "--compare", str(tmp_path / "missing.json"), "-o", str(tmp_path / "b")]) == 2
    assert "missing.json" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()
