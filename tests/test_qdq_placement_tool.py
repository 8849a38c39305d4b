"""The Q/DQ placement comparison runs end to end (it once broke silently when load_model changed)."""
import json

import pytest

from infusionnet.benchmarks import qdq_placement


@pytest.mark.slow
def test_qdq_placement_compares_both_placements(tmp_path):
    out = tmp_path / "qdq.json"
    assert qdq_placement.main(["--checkpoint", "untrained", "--size", "32", "--style-size", "96",
                               "--calibration-batches", "1", "--json", str(out)]) == 0
    summary = json.loads(out.read_text())
    by_placement = {r["placement"]: r for r in summary["results"]}
    assert set(by_placement) == {"onnxruntime", "inputs"}
    inputs, before = by_placement["inputs"]["layout"]["content"], by_placement["onnxruntime"]["layout"]["content"]
    assert inputs["q_after_conv_output"] < before["q_after_conv_output"]   # the point of the new placement
    assert inputs["convs_with_quantized_input"] == before["convs_with_quantized_input"] > 0
