"""Interleaved rounds, per-round speed-up spreads, the CPU's measured peak and each row's share."""
import json

import numpy as np
import pytest

from infusionnet.benchmarks import machine, peak, report, runner, timing


def _row(backend, medians, precision="fp32", compute=None):
    row = {"backend": backend, "precision": precision, "graph": "content", "mode": "cached-style",
           "size": "64x64", "batch": 1, "status": "ok", "latency": timing.latency_stats(list(medians)),
           "round_medians_ms": list(medians)}
    if compute:
        row["compute_precision"] = compute
    return row


def test_speedups_are_per_round_ratios_with_their_spread():
    reference = _row("reference", [100.0, 200.0, 120.0])
    fast = _row("onnxruntime", [25.0, 40.0, 40.0])
    rows = [reference, fast]
    report.add_speedups(rows)
    # Rounds 4x, 5x, 3x: the median of the ratios, not the ratio of the medians (120/40 = 3x).
    assert fast["speedup_rounds"]["ratios"] == pytest.approx([4.0, 5.0, 3.0])
    assert fast["speedup"] == pytest.approx(4.0)
    assert (fast["speedup_rounds"]["min"], fast["speedup_rounds"]["max"]) == (pytest.approx(3.0), pytest.approx(5.0))
    assert report.speedup_label(fast) == "4.00x (3.00-5.00)"
    assert reference["speedup"] == pytest.approx(1.0)


def test_sequential_rows_keep_the_ratio_of_medians():
    reference, row = _row("reference", [100.0]), _row("torch", [50.0])
    del reference["round_medians_ms"], row["round_medians_ms"]
    report.add_speedups([reference, row])
    assert row["speedup"] == pytest.approx(2.0) and "speedup_rounds" not in row
    assert report.round_ratios([1.0, 2.0], [1.0]) == []


def test_share_of_peak_uses_the_precision_that_ran():
    peaks = {"fp32": {"gmacs": 100.0, "how": "x"}, "int8": {"gmacs": 400.0, "how": "y"},
             "bf16": {"gmacs": 800.0, "how": "z"}}
    macs = 10 ** 9  # 1 GMAC in 100 ms = 10 G MAC/s
    assert peak.peak_share(_row("onnxruntime", [100.0]), macs, peaks)["share"] == pytest.approx(0.1)
    int8 = peak.peak_share(_row("onnxruntime", [100.0], "int8"), macs, peaks)
    assert int8["peak"] == "int8" and int8["share"] == pytest.approx(10 / 400)
    bf16 = peak.peak_share(_row("openvino", [100.0], "fp32", compute="bf16"), macs, peaks)
    assert bf16["peak"] == "bf16" and bf16["share"] == pytest.approx(10 / 800)
    no_bf16 = peak.peak_share(_row("openvino", [100.0], "fp32", compute="bf16"), macs, {"fp32": peaks["fp32"]})
    assert no_bf16["peak"] == "fp32"
    assert peak.peak_share({"status": "skipped"}, macs, peaks) is None
    rows = [dict(_row("onnxruntime", [100.0]), content_gmac=1.0)]
    report.add_peak_shares(rows, peaks)
    assert report.peak_label(rows[0]) == "10% fp32"


def test_gemm_micro_benchmarks_measure_something():
    fp32, int8 = peak.gemm_fp32(n=128, seconds=0.01), peak.gemm_int8(n=128, seconds=0.01)
    # Only that they ran and measured: a loaded 2-core CI machine can be arbitrarily slow.
    assert fp32["gmacs"] > 0 and "SGEMM" in fp32["how"]
    assert int8["gmacs"] > 0 and "MatMulInteger" in int8["how"]


def test_content_macs_scale_with_pixels(seeded_models):
    model = seeded_models["infusionnet"]
    small, large = peak.content_macs(model, (64, 64)), peak.content_macs(model, (128, 128))
    assert large == pytest.approx(4 * small, rel=0.01)
    # About 21.5 GMAC at 512x512 (the profile; PyTorch's counter gives 21.7 with the
    # pointwise kernels folded, which removes well under 1%).
    assert 20e9 < large * 16 < 23e9


def test_cpu_features_from_cpuinfo_flags():
    text = "processor\t: 0\nflags\t\t: fpu sse avx2 fma avx512f avx512_vnni amx_tile amx_int8\n"
    assert machine.cpu_features(text) == ["avx2", "fma", "avx512f", "avx512_vnni", "amx_tile", "amx_int8"]
    assert machine.cpu_features("no flags here") == []


def test_interleaved_rounds_run_rows_in_turn(seeded_models):
    inputs = runner.Inputs(seeded_models["infusionnet"], (32, 32), 96, 1)
    calls = []

    def candidate(name):
        def content(tensor):
            calls.append(name)
            return inputs.expected
        return runner.Candidate({"backend": name, "precision": "fp32", "graph": "content", "mode": "cached-style",
                                 "size": "32x32", "batch": 1, "status": "ok"}, {"content": content})

    config = runner.BenchConfig(warmup=1, iterations=2, seconds=None, rounds=3)
    rows = runner.measure_interleaved([candidate("a"), candidate("b")], config, inputs)
    timed = calls[2:2 + 12]  # after one warm-up each; then the stage pass of each row follows
    assert timed == ["a", "a", "b", "b"] * 3
    assert [len(row["round_medians_ms"]) for row in rows] == [3, 3]
    assert rows[0]["latency"]["iterations"] == 6 and rows[0]["accuracy"]["psnr_db"] >= 99
    assert rows[0]["peak_rss_mb"] is None  # every row is loaded at once: no per-row peak


def test_plan_runs_openvino_defaults_forced_fp32_and_nncf_int8():
    config = runner.BenchConfig(backends=("openvino",), precisions=("fp32", "fp16", "int8"))
    assert runner.plan_rows(config) == [("openvino", "fp32", None, "default"), ("openvino", "fp32", None, "fp32"),
                                        ("openvino", "fp16", None, None), ("openvino", "int8", "openvino", "default")]
    assert runner.graph_label("cached-style", None, "default") == "content/ov-default"
    assert runner.graph_label("cached-style", "openvino", "default") == "content/nncf-int8"


@pytest.mark.slow
def test_bench_interleaved_end_to_end(tmp_path, capsys):
    from infusionnet.cli.main import main

    out = tmp_path / "bench"
    args = ["bench", "--backends", "onnxruntime,openvino", "--precisions", "fp32", "--sizes", "32x48",
            "--style-size", "96", "--iters", "2", "--warmup", "1", "--threads", "1", "--rounds", "2", "--no-plots",
            "-o", str(out)]
    assert main(args) == 0
    data = json.loads((out / "results.json").read_text())
    assert data["settings"]["rounds"] == 2
    assert data["machine"]["peaks"]["fp32"]["gmacs"] > 0 and "int8" in data["machine"]["peaks"]
    assert "best of 2 rounds" in data["machine"]["peaks"]["fp32"]["how"]  # measured in every round
    assert isinstance(data["machine"]["cpu_features"], list)
    rows = {(r["backend"], r["graph"]): r for r in data["rows"]}
    ort = rows[("onnxruntime", "content")]
    assert len(ort["speedup_rounds"]["ratios"]) == 2 and ort["latency"]["iterations"] == 4
    assert 0 < ort["peak"]["share"] and ort["content_gmac"] > 0
    assert len(ort["round_peaks_gmacs"]["fp32"]) == 2 and len(ort["peak"]["share_rounds"]["shares"]) == 2
    openvino = rows[("openvino", "content/ov-fp32")]
    if openvino["status"] == "ok":
        assert openvino["compute_precision"] == "fp32" and openvino["accuracy"]["max_abs"] < 1e-3
    else:
        assert "not installed" in openvino["reason"]
    assert "of peak" in (out / "report.md").read_text()


def test_share_of_peak_per_round_compares_the_same_minutes():
    # Round 2 ran in a slow minute: the row took twice as long and the peak measured half. The
    # per-round shares agree (10%), where the median against the best peak would say 5-10%.
    row = dict(_row("onnxruntime", [100.0, 200.0, 100.0]), round_peaks_gmacs={"fp32": [100.0, 50.0, 100.0]})
    share = peak.peak_share(row, 10 ** 9, {"fp32": {"gmacs": 100.0, "how": "x"}})
    assert share["share_rounds"]["shares"] == pytest.approx([0.1, 0.1, 0.1]) and share["share"] == pytest.approx(0.1)
    row["peak"] = share
    assert report.peak_label(row) == "10% fp32 (10-10%)"
    # Peaks that do not cover the row's rounds fall back to the run's peak.
    row["round_peaks_gmacs"] = {"fp32": [100.0]}
    assert "share_rounds" not in peak.peak_share(row, 10 ** 9, {"fp32": {"gmacs": 100.0, "how": "x"}})


def test_best_peaks_keeps_the_fastest_round_per_precision():
    rounds = [{"fp32": {"gmacs": 100.0, "how": "sgemm"}, "int8": {"gmacs": 650.0, "how": "mmi"}},
              {"fp32": {"gmacs": 150.0, "how": "sgemm"}, "int8": {"gmacs": 600.0, "how": "mmi"}}]
    best = peak.best_peaks(rounds)
    assert best["fp32"]["gmacs"] == 150.0 and best["int8"]["gmacs"] == 650.0
    assert best["fp32"]["how"] == "sgemm, best of 2 rounds"
    assert rounds[0]["fp32"]["how"] == "sgemm"  # the measurements themselves are left as they were
