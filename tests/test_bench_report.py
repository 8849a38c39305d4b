"""Benchmark harness pieces that need no backend: statistics, timing loop, results files, plots."""
import json
import time

import numpy as np
import pytest

from infusionnet.benchmarks import machine, memory, report, timing


def _row(backend, median, size="64x64", psnr=40.0, status="ok", precision="fp32"):
    row = {"backend": backend, "precision": precision, "graph": "full", "mode": "cached-style", "size": size,
           "batch": 1, "status": status}
    if status == "ok":
        row.update(latency=timing.latency_stats([median * f for f in (0.9, 1.0, 1.1)]),
                   accuracy={"psnr_db": psnr, "max_abs": 1e-4},
                   stages_ms={"preprocess": 1.0, "style": 0.0, "content": median, "postprocess": 1.0},
                   peak_rss_mb=100.0)
    else:
        row["reason"] = "TensorRT is not installed"
    return row


def test_latency_stats_match_numpy_percentiles():
    samples = list(np.linspace(1.0, 100.0, 100))
    stats = timing.latency_stats(samples)
    assert stats["median_ms"] == pytest.approx(50.5)
    assert stats["p90_ms"] == pytest.approx(np.percentile(samples, 90))
    assert stats["p99_ms"] == pytest.approx(np.percentile(samples, 99))
    assert stats["std_ms"] == pytest.approx(np.std(samples, ddof=1))
    assert stats["fps"] == pytest.approx(1000 / 50.5)
    with pytest.raises(ValueError):
        timing.latency_stats([])


def test_measure_excludes_warmup_and_synchronizes_before_each_clock_read():
    calls, syncs = [], []
    samples = timing.measure(lambda: calls.append(1), warmup=4, iterations=7, synchronize=lambda: syncs.append(1))
    assert len(samples) == 7 and len(calls) == 11
    assert len(syncs) == 8  # once after warm-up, once per timed iteration


def test_measure_by_seconds_keeps_a_minimum_of_iterations():
    samples = timing.measure(lambda: time.sleep(0.002), warmup=0, seconds=0.001, min_iterations=5)
    assert len(samples) == 5 and min(samples) >= 1.5


def test_interleaved_takes_turns_and_warms_up_in_the_first_round_only():
    order = []
    times = timing.interleaved({"a": lambda: order.append("a"), "b": lambda: order.append("b")},
                               rounds=3, runs=2, warmup=1)
    assert order == ["a"] * 3 + ["b"] * 3 + ["a", "a", "b", "b"] * 2
    assert [len(samples) for samples in times.values()] == [6, 6]


def test_ratio_table_compares_medians_with_the_first_step():
    lines = timing.ratio_table("export", {"fast": [10.0, 12.0, 11.0], "slow": [30.0, 20.0, 22.0]})
    assert lines[0] == "| export | median ms | min-max ms | vs fast |"
    assert lines[2:] == ["| fast | 11.0 | 10.0-12.0 | 1.00x |", "| slow | 22.0 | 20.0-30.0 | 2.00x |"]


def test_stage_timer_means():
    timer = timing.StageTimer()
    for _ in range(3):
        timer.time("content", lambda: time.sleep(0.001))
    assert timer.counts == {"content": 3} and timer.means_ms()["content"] >= 0.9


def test_speedups_are_relative_to_the_reference_of_the_same_size():
    rows = [_row("reference", 100.0), _row("onnxruntime", 20.0), _row("reference", 400.0, size="128x128"),
            _row("onnxruntime", 50.0, size="128x128"), _row("tensorrt", 0, status="skipped")]
    report.add_speedups(rows)
    assert rows[1]["speedup"] == pytest.approx(5.0)
    assert rows[3]["speedup"] == pytest.approx(8.0)
    assert "speedup" not in rows[4]


def test_results_files_table_plots_and_report(tmp_path):
    rows = [_row("reference", 100.0), _row("onnxruntime", 20.0), _row("onnxruntime", 10.0, precision="int8", psnr=31.0),
            _row("reference", 400.0, size="128x128"), _row("onnxruntime", 50.0, size="128x128"),
            _row("tensorrt", 0, status="skipped")]
    report.add_speedups(rows)
    description = machine.describe_machine()
    paths = report.write_results(tmp_path, description, {"warmup": 3}, rows)
    data = json.loads(paths["json"].read_text())
    assert data["machine"]["cpu_cores"] >= 1 and len(data["rows"]) == 6
    csv_lines = paths["csv"].read_text().splitlines()
    assert csv_lines[0].split(",")[:4] == ["backend", "precision", "compute_precision", "graph"] and len(csv_lines) == 7
    assert "TensorRT is not installed" in csv_lines[-1]
    plots = report.write_plots(tmp_path, rows)
    assert [p.name for p in plots] == ["latency_vs_resolution.png", "speedup_vs_accuracy.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
    markdown = report.write_markdown(tmp_path, description, {"warmup": 3}, rows, plots, "infusionnet bench").read_text()
    assert "![latency_vs_resolution](latency_vs_resolution.png)" in markdown
    assert "| onnxruntime | int8 | full | 64x64 | 1 | 10.00 |" in markdown and "skipped: TensorRT" in markdown

    from rich.console import Console
    console = Console(record=True, width=200)
    console.print(report.results_table(rows))
    text = console.export_text()
    assert "5.00x" in text and "skipped" in text
    console.print(report.compare_table(report.load_results(paths["json"]),
                                       [_row("onnxruntime", 40.0)]))
    assert "+100.0%" in console.export_text()


def test_load_results_rejects_other_files(tmp_path):
    from infusionnet.runtime.errors import InfusionNetError
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(InfusionNetError, match="x.json"):
        report.load_results(bad)


def test_peak_rss_tracks_a_large_allocation():
    reset = memory.reset_peak_rss()
    before = memory.peak_rss_mb()
    block = np.ones((64, 1024, 1024), dtype=np.uint8)  # 64 MiB, touched
    after = memory.peak_rss_mb()
    del block
    assert after - before >= 60 or not reset
    assert after > 0


def test_machine_slug_is_a_safe_folder_name():
    assert machine.machine_slug({"gpu": {"name": "NVIDIA H100 80GB HBM3"}}) == "nvidia-h100-80gb-hbm3"
    slug = machine.machine_slug({"gpu": None, "cpu": "Intel(R) Xeon(R) CPU @ 2.20GHz", "cpu_cores": 2})
    assert slug == "intel-xeon-2cores"
    amx = {"gpu": None, "cpu": "Intel(R) Xeon(R) Processor", "cpu_cores": 2,
           "cpu_features": ["avx2", "avx512f", "amx_tile"]}
    assert machine.machine_slug(amx) == "intel-xeon-amx-2cores"  # the folder of this project's results
    epyc = {"gpu": None, "cpu": "AMD EPYC 7B13 64-Core Processor", "cpu_cores": 2, "cpu_features": ["avx2"]}
    assert machine.machine_slug(epyc) == "amd-epyc-7b13-64-core-avx2-2cores"
