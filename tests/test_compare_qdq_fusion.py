"""scripts/compare-qdq-fusion.py: INT8 graphs run fused, unfused and unoptimized against FP32."""
import re
import subprocess
import sys
from pathlib import Path

from runtime_exports import export

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "compare-qdq-fusion.py"


def compare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True)


def test_reports_each_way_and_the_unfused_ways_agree():
    fp32 = export("split", dynamic=False, content=(64, 64))
    int8 = export("split", dynamic=False, content=(64, 64), precision="int8")
    result = compare(str(fp32), str(int8), "--size", "64", "--rounds", "1")
    assert result.returncode == 0, result.stderr
    rows = dict(re.findall(r"^\| \S+ \| (fused|unfused|unoptimized) \| ([\d.]+) \|", result.stdout, re.M))
    assert set(rows) == {"fused", "unfused", "unoptimized"}
    # Both run each Q/DQ node as written: the same arithmetic up to float rounding.
    assert abs(float(rows["unfused"]) - float(rows["unoptimized"])) < 0.5, result.stdout
    assert "content graph, 64x64" in result.stdout and "onnxruntime " in result.stdout


def test_refuses_exports_of_another_size():
    result = compare(str(export("split", dynamic=False, content=(64, 64))), str(export("split", dynamic=False)),
                     "--size", "64")
    assert result.returncode == 2 and "is not a split export at 64x64" in result.stderr


def test_sample_content_feeds_carry_the_style_graphs_kernels():
    # The feeds the INT8 study tools share (this script, int8_sensitivity, nncf-int8-study): the
    # content batch plus every output of the style graph, which the content graph takes as inputs.
    import numpy as np
    import onnxruntime as ort

    from infusionnet.export.calibration import sample_content_feeds
    from infusionnet.runtime.manifest import Manifest
    manifest = Manifest.load(export("split", dynamic=False, content=(64, 64)))
    style = ort.InferenceSession(str(manifest.graph("style").path), providers=["CPUExecutionProvider"])
    content = ort.InferenceSession(str(manifest.graph("content").path), providers=["CPUExecutionProvider"])
    feeds = list(sample_content_feeds(style, 1, (64, 64), manifest.style_size, limit=2))
    assert len(feeds) == 2
    assert set(feeds[0]) == {i.name for i in content.get_inputs()} == {"content"} | {o.name for o in style.get_outputs()}
    assert feeds[0]["content"].shape == (1, 3, 64, 64)
    assert not np.array_equal(feeds[0]["content"], feeds[1]["content"])  # two different sample pairs
    assert np.isfinite(content.run(["stylized"], feeds[0])[0]).all()
