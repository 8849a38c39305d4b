"""The greedy keep-in-float step of benchmarks/int8_sensitivity: PSNR and SSIM goals."""
from infusionnet.benchmarks.int8_sensitivity import Goal, Score, keep_until

# Each layer kept in float adds 2 dB and 0.01 SSIM to a graph at 30 dB / 0.93.
RANKING = ["worst", "second", "third", "fourth", "fifth"]


def _score(kept):
    return Score(30.0 + 2.0 * len(kept), 0.93 + 0.01 * len(kept))


def test_psnr_goal_alone_stops_at_the_first_layer_set_that_reaches_it():
    kept, steps, final = keep_until(RANKING, _score([]), Goal(35.0), _score, log=lambda text: None)
    assert kept == ["worst", "second", "third"] and final.psnr_db == 36.0
    assert [step["keep_float"] for step in steps] == kept and steps[-1]["ssim"] == 0.96


def test_ssim_goal_keeps_more_layers_until_both_are_met():
    kept, _, final = keep_until(RANKING, _score([]), Goal(35.0, 0.97), _score, log=lambda text: None)
    assert kept == RANKING[:4] and final.ssim >= 0.97 and Goal(35.0, 0.97).met(final)


def test_an_unreachable_goal_keeps_everything_and_says_so():
    kept, _, final = keep_until(RANKING, _score([]), Goal(50.0), _score, log=lambda text: None)
    assert kept == RANKING and not Goal(50.0).met(final)


def test_a_graph_already_at_the_goal_keeps_nothing():
    assert keep_until(RANKING, Score(40.0, 0.99), Goal(35.0, 0.97), _score, log=lambda text: None)[0] == []


def test_keep_float_list_is_what_export_reads_and_says_how_it_was_found():
    from pathlib import Path

    from infusionnet.benchmarks.int8_sensitivity import keep_float_list
    result = {"target": "cpu", "size": 256, "goal_db": 35.0, "goal_ssim": 0.97, "reached_goal": False,
              "keep_float": ["/a/Conv", "/b/Add"], "final_psnr_db": 36.1, "final_ssim": 0.965,
              "all_int8_psnr_db": 29.0, "all_int8_ssim": 0.85}
    text = keep_float_list(result, Path("x/cpu-sensitivity.json"))
    assert [line for line in text.splitlines() if not line.startswith("#")] == ["/a/Conv", "/b/Add"]
    assert "does NOT reach 35 dB PSNR and SSIM 0.97" in text and "cpu-sensitivity.json" in text


def test_an_unwritable_output_is_refused_before_any_work(tmp_path, capsys):
    from infusionnet.benchmarks.int8_sensitivity import main
    blocker = tmp_path / "file"
    blocker.write_text("x")
    # The export folder does not exist either: the output is refused first, before it is read.
    assert main([str(tmp_path / "no-export"), "--keep-float-list", str(blocker / "list.txt")]) == 2
    message = capsys.readouterr().err
    assert message.startswith("error: ") and "list.txt" in message and "manifest" not in message
    assert main([str(tmp_path / "no-export")]) == 2
    assert "manifest not found" in capsys.readouterr().err
