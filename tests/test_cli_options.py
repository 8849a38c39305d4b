"""One spelling per concept across the subcommands; renamed options keep their old spelling
working, with a deprecation note printed once to stderr."""
import pytest

from infusionnet.cli.main import build_parser, main
from infusionnet.runtime.sizes import parse_content_sizes

# (subcommand words, old spelling, new spelling, destination, a value)
RENAMED = [
    (["stylize"], "--size", "--resize", "resize", "keep"),
    (["video"], "--size", "--frame-size", "frame_size", "256x448"),
]


@pytest.mark.parametrize("words, old, new, dest, value", RENAMED)
def test_old_spelling_still_works_with_one_deprecation_note(words, old, new, dest, value, capsys):
    args = build_parser().parse_args(words + [old, value])
    assert getattr(args, dest) == value
    err = capsys.readouterr().err
    assert err.count("deprecated") == 1
    assert f"infusionnet {words[0]} {old} is deprecated" in err and f"use {new}" in err

    args = build_parser().parse_args(words + [old, "x", old, value])  # given twice: noted once
    assert getattr(args, dest) == value and capsys.readouterr().err.count("deprecated") == 1


@pytest.mark.parametrize("words, old, new, dest, value", RENAMED)
def test_new_spelling_is_quiet_and_help_shows_both(words, old, new, dest, value, capsys):
    args = build_parser().parse_args(words + [new, value])
    assert getattr(args, dest) == value and capsys.readouterr().err == ""
    with pytest.raises(SystemExit):
        build_parser().parse_args(words + ["--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps help lines
    assert f"{new} " in text and f"{old} " in text and f"({old}: the old spelling, deprecated)" in text


def test_renamed_defaults_are_kept():
    assert build_parser().parse_args(["stylize"]).resize == "512"
    assert build_parser().parse_args(["video"]).frame_size is None


def test_deprecated_spelling_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["video", "--input", "0", "-o", "x.mp4", "--size", "big"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "--size is deprecated" in err[0] and "use --frame-size" in err[0]
    assert err[-1] == ("error: --frame-size 'big': expected HxW (height x width in pixels, for example 384x512)")


@pytest.mark.parametrize("command", [["bench", "-o", "out"], ["check", "exports/x"]])
def test_sizes_lists_take_commas_spaces_or_both_in_every_command(command):
    parser = build_parser()
    for spelling in (["256,512", "720p"], ["256", "512", "720p"], ["256,512,720p"]):
        args = parser.parse_args(command + ["--sizes"] + spelling)
        assert parse_content_sizes(args.sizes) == [(256, 256), (512, 512), (720, 1280)]


def test_bench_lists_take_commas_or_spaces(tmp_path):
    from infusionnet.benchmarks import runner

    args = build_parser().parse_args(["bench", "--backends", "torch", "onnxruntime,openvino", "--precisions",
                                      "fp32,int8", "-o", "out"])
    assert runner.parse_list(args.backends, runner.BACKENDS, "backend") == ["torch", "onnxruntime", "openvino"]
    assert runner.parse_list(args.precisions, runner.PRECISIONS, "precision") == ["fp32", "int8"]
    defaults = build_parser().parse_args(["bench", "-o", "out"])
    assert parse_content_sizes(defaults.sizes) == [(256, 256), (512, 512)]
    assert runner.parse_list(defaults.backends, runner.BACKENDS, "backend") == list(runner.BACKENDS)


def test_the_network_options_are_spelled_once(capsys):
    """--checkpoint, --variant and --seed mean the same in every command that runs a network."""
    for words in (["stylize"], ["video"], ["export", "onnx", "-o", "x"], ["bench", "-o", "x"]):
        args = build_parser().parse_args(words + ["--checkpoint", "untrained", "--variant", "aesfa"])
        assert (args.checkpoint, args.variant) == ("untrained", "aesfa")
        if words[0] != "bench":
            assert build_parser().parse_args(words + ["--seed", "3"]).seed == 3
        with pytest.raises(SystemExit):
            build_parser().parse_args(words + ["--variant", "vgg"])
    capsys.readouterr()
