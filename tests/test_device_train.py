"""scripts/device-train.sh: the bundle it stages for the GPU machine, and a dry run of the GPU
command on the CPU (tiny crops and batch, a tiny HED file) that must bring back loadable weights."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

h5py = pytest.importorskip("h5py", reason="h5py is in the dev extra")
pytest.importorskip("skimage", reason="the recipe's built-in samples come from scikit-image")

from infusionnet.models import load_checkpoint  # noqa: E402
from infusionnet.models.train.hed_vgg import convert_hed  # noqa: E402
from test_hed_vgg import write_tiny_hed  # noqa: E402
from test_training import write_folder  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "device-train.sh"


def device_train(step: str, **env: str) -> subprocess.CompletedProcess:
    environment = dict(os.environ, PY=sys.executable, PYTHON=sys.executable, OMP_NUM_THREADS="1", **env)
    return subprocess.run(["bash", str(SCRIPT), step], capture_output=True, text=True, env=environment, cwd=ROOT)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("device")
    write_folder(root / "data" / "content", 2, seed=0)
    write_folder(root / "data" / "style", 2, seed=1)
    (root / "data" / "style" / "picabia_udnie_1913.png").write_bytes((root / "data" / "style" / "00.png").read_bytes())
    write_tiny_hed(root / "tiny.h5")
    vgg = convert_hed(root / "tiny.h5", root / "tiny.safetensors")
    result = device_train("prepare", DATA=str(root / "data"), BUNDLE=str(root / "bundle"), VGG=str(vgg),
                          TEXTURES="3")
    assert result.returncode == 0, result.stderr
    return root / "bundle"


def test_prepare_stages_the_recipe_images_without_the_held_out_painting(bundle):
    content = sorted(p.name for p in (bundle / "content").iterdir())
    assert content == ["00.png", "01.png", "motorcycle_left.png", "rocket.jpg"]
    styles = sorted(p.name for p in (bundle / "style").iterdir() if p.is_file())
    assert styles == ["00.png", "01.png", "brick.png", "grass.png", "gravel.png"]  # no picabia_udnie
    assert sorted(p.name for p in (bundle / "style" / "photos").iterdir()) == content
    assert len(list((bundle / "style" / "textures").glob("*.png"))) == 3
    assert (bundle / "vgg.safetensors").is_file()
    assert not Path(str(bundle) + ".partial").exists()


@pytest.mark.slow
def test_run_sizes_the_run_by_the_probe_and_brings_back_float16_weights(bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    result = device_train("run", BUNDLE=str(bundle), OUT=str(out), BATCH="2", CROP="96", WORKERS="0",
                          PROBE_STEPS="2", TRAIN_SECONDS="1", AMP="none")  # bf16: test_training
    assert result.returncode == 0, result.stdout + result.stderr
    log = (out / "train.log").read_text()
    assert re.search(r"probe: [0-9.]+ steps/s at batch 2, 96 px, none, channels-last -> 10 steps "
                     r"\(lr warmup 1, decay from 7\)", log), log
    assert (out / "metrics.csv").read_text().splitlines()[-1].startswith("10,")
    model = load_checkpoint(out / "model.safetensors")
    assert next(model.parameters()).dtype.is_floating_point
    config = json.loads((out / "model.json").read_text())
    assert config["weights_dtype"] == "float16" and config["batch_size"] == 2 and config["crop"] == 96
    assert config["lr_warmup"] == 1
    assert config["trained_steps"] == config["fine_tuned_steps"] + json.loads(
        (ROOT / "models" / "weights" / "infusionnet-default.json").read_text())["trained_steps"]
    assert (out / "device.txt").is_file() and (out / "install.log").is_file()


def test_run_without_a_bundle_or_out_is_a_one_line_error(tmp_path):
    result = device_train("run", BUNDLE=str(tmp_path / "none"), OUT=str(tmp_path))
    assert result.returncode == 2 and result.stderr.startswith("error: no ") and "prepare" in result.stderr
    result = device_train("run", OUT="")
    assert result.returncode == 2 and "$OUT" in result.stderr
