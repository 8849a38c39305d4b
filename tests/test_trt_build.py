"""`infusionnet export trt`: build planning here; real builds only where TensorRT and a GPU exist."""
import json

import numpy as np
import pytest

from infusionnet.export.trt_build import BuildOptions, TrtBuildError, build_command, fp32_layers, plan_builds
from infusionnet.runtime.manifest import FORMAT, Manifest
from infusionnet.runtime.trt_plan import PlanError, ShapeRange
from trt_env import real_tensorrt, tensorrt_gpu_missing

TRT_MISSING = tensorrt_gpu_missing()

KERNEL = {"name": "AdaOctConv1_1.h.spatial", "shape": [1, 128, 1, 3, 3], "dtype": "float32"}


def _manifest(precision="fp32", dynamic=True, graph_kind="split"):
    size = ["height", "width"] if dynamic else [64, 64]
    content = {"name": "content", "shape": [1, 3] + size, "dtype": "float32"}
    stylized = {"name": "stylized", "shape": [1, 3] + size, "dtype": "float32"}
    graphs = {"split": [{"role": "style", "file": "style.onnx",
                         "inputs": [{"name": "style", "shape": [1, 3, 96, 96], "dtype": "float32"}], "outputs": [KERNEL]},
                        {"role": "content", "file": "content.onnx", "inputs": [content, KERNEL], "outputs": [stylized]}],
              "baked": [{"role": "baked", "file": "baked.onnx", "inputs": [content], "outputs": [stylized]}]}
    return Manifest({"format": FORMAT, "graph_kind": graph_kind, "variant": "infusionnet", "precision": precision,
                     "opset": 17, "batch": 1, "content_size": [64, 64], "dynamic_size": dynamic, "style_size": 96,
                     "normalization": {"mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
                     "checkpoint": {"file": None, "sha256": "untrained-seed-0"}, "exporter": {},
                     "graphs": graphs[graph_kind]}, "/exports/x")


def test_fp16_plan_of_a_dynamic_split_export():
    builds = {b.role: b for b in plan_builds(_manifest(), BuildOptions("fp16", min_hw=(32, 32), max_hw=(128, 256)))}
    assert set(builds) == {"style", "content"}
    content = builds["content"]
    assert content.profile["content"] == ShapeRange((1, 3, 32, 32), (1, 3, 64, 64), (1, 3, 128, 256))
    assert content.profile[KERNEL["name"]].is_fixed and builds["style"].profile["style"].is_fixed
    assert content.fp16 and content.fp32_pins and not content.int8 and not content.calibrate
    assert str(content.onnx) == "/exports/x/content.onnx"


def test_int8_plans():
    explicit = plan_builds(_manifest("int8", graph_kind="baked"), BuildOptions("int8"))[0]
    assert explicit.int8 and explicit.fp16 and not explicit.calibrate
    implicit = plan_builds(_manifest("fp32", graph_kind="baked"), BuildOptions("int8", int8_mode="implicit"))[0]
    assert implicit.int8 and implicit.calibrate


@pytest.mark.parametrize("exported, mode", [("int8", "explicit"), ("fp32", "implicit")])
def test_int8_plans_keep_the_style_graph_out_of_int8(exported, mode):
    builds = {b.role: b for b in plan_builds(_manifest(exported), BuildOptions("int8", int8_mode=mode))}
    assert builds["content"].int8 and builds["content"].calibrate == (mode == "implicit")
    assert builds["style"].fp16 and not builds["style"].int8 and not builds["style"].calibrate


@pytest.mark.parametrize("manifest, options, message", [
    (_manifest(dynamic=False), BuildOptions("fp16", max_hw=(128, 128)),
     r"--min/--opt/--max need a dynamic-size export, and /exports/x is fixed at 64x64"),
    (_manifest("fp32"), BuildOptions("int8"), r"explicit INT8 needs the QDQ graphs .* --int8-mode implicit"),
    (_manifest("int8"), BuildOptions("fp16"), r"holds INT8 \(QDQ\) graphs: build them with --precision int8"),
    (_manifest("fp16"), BuildOptions("int8", int8_mode="implicit"), r"implicit INT8 calibrates an FP32 graph"),
    (_manifest(), BuildOptions("fp16", opt_level=7), r"--opt-level must be 0..5"),
    (_manifest(), BuildOptions("fp16", workspace_mb=0), r"--workspace must be a positive"),
    (_manifest(), BuildOptions("bf16"), r"--precision must be one of fp32, fp16, int8"),
])
def test_plans_that_cannot_build_are_refused(manifest, options, message):
    with pytest.raises(TrtBuildError, match=message):
        plan_builds(manifest, options)


def test_profile_errors_surface_from_planning():
    with pytest.raises(PlanError, match="min <= opt <= max"):
        plan_builds(_manifest(), BuildOptions("fp16", min_hw=(128, 128)))


def test_fp32_pins_normalization_reductions_and_plugin_instancenorm():
    layers = [("/AdaConv_h/InstanceNormalization", "NORMALIZATION"), ("/kp/ReduceMean", "REDUCE"),
              ("InstanceNormalization_TRT_3", "PLUGIN_V2"), ("/conv/Conv", "CONVOLUTION"), ("Resize_1", "RESIZE"),
              ("MyPlugin", "PLUGIN_V2")]
    assert fp32_layers(layers) == ["/AdaConv_h/InstanceNormalization", "/kp/ReduceMean", "InstanceNormalization_TRT_3"]


def test_build_command_rebuilds_with_the_same_options():
    options = BuildOptions("int8", int8_mode="implicit", calibration="my photos", min_hw=(32, 32), opt_hw=(64, 64),
                           max_hw=(128, 128), timing_cache="t.cache", dla_core=1, opt_level=5, workspace_mb=512)
    command = build_command("exports/x", "engines/x", options)
    assert command.startswith("infusionnet export trt --onnx exports/x --precision int8 --int8-mode implicit")
    for part in ("--calibration 'my photos'", "--min 32x32", "--opt 64x64", "--max 128x128", "--workspace 512",
                 "--timing-cache t.cache", "--dla-core 1", "--opt-level 5", "--output engines/x --overwrite"):
        assert part in command
    assert "--min" not in build_command("e", "o", BuildOptions("fp16"))


# --------------------------------------------------------------------------- the command here

def export_trt(argv):
    """`infusionnet export trt ARGV` through its own parser (cli/trt_cmd.py)."""
    import argparse

    from infusionnet.cli import trt_cmd

    parser = argparse.ArgumentParser()
    trt_cmd.add_parser(parser.add_subparsers())
    args = parser.parse_args(["trt"] + argv)
    return args.func(args)


def test_dry_run_prints_the_plan(capsys):
    from runtime_exports import export

    assert export_trt(["--onnx", str(export("split", dynamic=True)), "--precision", "fp16", "--max", "64x64",
                       "-o", "unused", "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert [p["role"] for p in plan] == ["style", "content"]
    assert plan[1]["profile"]["content"]["max"] == [1, 3, 64, 64]


@pytest.mark.skipif(real_tensorrt(), reason="TensorRT is installed here")
def test_build_without_tensorrt_fails_clearly_and_writes_nothing(tmp_path):
    from runtime_exports import export
    from infusionnet.runtime.errors import InfusionNetError

    output = tmp_path / "engines"
    with pytest.raises(InfusionNetError, match=r"TensorRT is not installed: pip install \.\[tensorrt\]"):
        export_trt(["--onnx", str(export("split", dynamic=True)), "-o", str(output)])
    assert not output.exists()
    with pytest.raises(InfusionNetError, match="--max: height 60 must be a multiple of 8"):
        export_trt(["--onnx", str(export("split", dynamic=True)), "--max", "60x64", "-o", str(output)])


# --------------------------------------------------------------------------- with TensorRT and a GPU

@pytest.fixture(scope="module")
def engines(tmp_path_factory):
    from runtime_exports import export
    from infusionnet.export.trt_build import build_engines

    source = export("split", dynamic=True)
    output = tmp_path_factory.mktemp("trt") / "split-fp16"
    build_engines(source, output, BuildOptions("fp16", min_hw=(16, 16), max_hw=(64, 64)), log=lambda *a: None)
    return source, output


@pytest.mark.tensorrt
@pytest.mark.skipif(TRT_MISSING is not None, reason=str(TRT_MISSING))
def test_engines_run_and_match_onnxruntime(engines):
    from infusionnet.runtime import samples
    from infusionnet.runtime.stylizer import Stylizer

    source, output = engines
    frame, style = samples.load_sample("coffee")[:40, :56], samples.load_sample("gravel")
    results = {}
    for backend, directory in (("tensorrt", output), ("onnxruntime", source)):
        with Stylizer(directory, backend=backend) as stylizer:
            stylizer.set_style(style)
            results[backend] = stylizer.stylize(frame)
    assert np.abs(results["tensorrt"].astype(int) - results["onnxruntime"]).max() <= 2
    sidecar = json.loads((output / "content.engine.json").read_text())
    assert sidecar["precision"] == "fp16" and sidecar["profiles"][0]["content"]["max"] == [1, 3, 64, 64]


@pytest.mark.tensorrt
@pytest.mark.skipif(TRT_MISSING is not None, reason=str(TRT_MISSING))
def test_truncated_or_foreign_engines_are_refused(engines, tmp_path):
    import shutil

    from infusionnet.runtime.engine_sidecar import EngineMismatchError
    from infusionnet.runtime.trt_backend import TensorRTBackend

    _, output = engines
    copy_dir = tmp_path / "copy"
    shutil.copytree(output, copy_dir)
    engine = copy_dir / "style.engine"
    engine.write_bytes(engine.read_bytes()[:1000])
    with pytest.raises(EngineMismatchError, match="truncated"):
        TensorRTBackend(engine).open()
    sidecar_file = copy_dir / "content.engine.json"
    data = json.loads(sidecar_file.read_text())
    data["tensorrt_version"] = "8.5.2.2" if not data["tensorrt_version"].startswith("8.5.2") else "10.0.0.1"
    sidecar_file.write_text(json.dumps(data))
    with pytest.raises(EngineMismatchError, match="built it, this machine has"):
        TensorRTBackend(copy_dir / "content.engine").open()


@pytest.mark.tensorrt
@pytest.mark.skipif(TRT_MISSING is not None, reason=str(TRT_MISSING))
def test_check_passes_on_tensorrt_fp16(engines, tmp_path):
    from infusionnet.cli.main import main

    _, output = engines
    assert main(["check", str(output), "--backend", "tensorrt", "--json", str(tmp_path / "c.json")]) == 0
    report = json.loads((tmp_path / "c.json").read_text())
    assert {row["size"] for row in report["rows"]} == {"32x32", "16x16", "64x64"}  # profile opt, min, max


def _fake_engine_dir(tmp_path):
    """An engine directory as `export trt` writes it, with placeholder engine bytes."""
    import hashlib

    from runtime_exports import export
    from infusionnet.runtime.engine_sidecar import EngineSidecar, write_engine_index, write_sidecar

    source = export("split", dynamic=True)
    manifest = Manifest.load(source)
    directory = tmp_path / "engines"
    directory.mkdir()
    builds = plan_builds(manifest, BuildOptions("fp16"))
    for build in builds:
        engine = directory / f"{build.role}.engine"
        engine.write_bytes(build.role.encode() * 100)
        write_sidecar(engine, EngineSidecar(
            engine.name, engine.stat().st_size, hashlib.sha256(engine.read_bytes()).hexdigest(), build.role, "fp16",
            "10.3.0.26", "NVIDIA H100", "9.0", "Linux-x86_64", build.inputs, build.outputs, (build.profile,),
            str(build.onnx), "0" * 64, "2025-01-01T00:00:00+00:00", 1.0, "infusionnet export trt ...", {}))
    write_engine_index(directory, {b.role: f"{b.role}.engine" for b in builds}, str(source), manifest.data, "fp16")
    return directory


@pytest.mark.skipif(real_tensorrt(), reason="TensorRT is installed here")
def test_engine_directory_without_tensorrt(tmp_path, capsys):
    from infusionnet.cli.main import main
    from infusionnet.runtime.stylizer import Stylizer

    engines = _fake_engine_dir(tmp_path)
    stylizer = Stylizer(engines, backend="tensorrt")  # sidecars and index read without TensorRT
    assert stylizer.graph_kind == "split" and stylizer.backends["content"].external
    assert main(["check", str(engines), "--backend", "tensorrt", "--json", str(tmp_path / "c.json")]) == 2
    assert "TensorRT is not installed" in capsys.readouterr().err
    assert main(["check", str(engines), "--json", str(tmp_path / "c.json")]) == 2
    assert "holds TensorRT engines: use --backend tensorrt" in capsys.readouterr().err


def _features(version, native_instancenorm, strongly_typed):
    from infusionnet.runtime.trt_plan import TrtFeatures

    return TrtFeatures(version, named_tensors=True, optimization_level=True, memory_pools=True, timing_cache=True,
                       precision_constraints=True, implicit_int8=version < (10,), explicit_batch_flag=version < (10,),
                       native_instancenorm=native_instancenorm, strongly_typed=strongly_typed)


@pytest.mark.parametrize("version, native, strongly, flags, strongly_typed_int8", [
    ((8, 5, 2), False, False, (), False), ((8, 6, 1), True, False, ("NATIVE_INSTANCENORM",), False),
    ((10, 3, 0), True, True, ("NATIVE_INSTANCENORM",), True)])
def test_network_plan_per_tensorrt_version(version, native, strongly, flags, strongly_typed_int8):
    from infusionnet.export.trt_build import network_plan

    features = _features(version, native, strongly)
    explicit = network_plan(plan_builds(_manifest("int8", graph_kind="baked"), BuildOptions("int8"))[0], features)
    assert explicit.parser_flags == flags and explicit.strongly_typed == strongly_typed_int8
    # Strongly typed networks take no precision flags and no layer pins; 8.x keeps both.
    assert (explicit.fp16, explicit.int8, explicit.fp32_pins) == ((False,) * 3 if strongly_typed_int8 else (True,) * 3)
    fp16 = network_plan(plan_builds(_manifest(graph_kind="baked"), BuildOptions("fp16"))[0], features)
    assert not fp16.strongly_typed and fp16.fp16 and fp16.fp32_pins and fp16.parser_flags == flags
