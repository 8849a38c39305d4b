"""scripts/train-default-model.sh, run with a stand-in for `infusionnet` that records each call and
writes the checkpoint a finished call would: the phases run in order, each from where the run
stands, the seventh in a second run seeded with the first's final weights, the held-out painting
is never a style, and a finished recipe runs nothing."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "scripts" / "train-default-model.sh"

pytestmark = pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")

# Records its arguments, then writes checkpoints/step_<--iterations>.pth and final/ into the run
# (--output or --resume's folder).
FAKE_TRAIN = r"""#!/usr/bin/env bash
echo "$*" >> "$CALLS"
run= iterations=0
while [ $# -gt 0 ]; do
  case "$1" in
    --output|--resume) run=$2; shift ;;
    --iterations) iterations=$2; shift ;;
  esac
  shift
done
mkdir -p "$run/checkpoints" "$run/final"
touch "$run/checkpoints/$(printf 'step_%08d.pth' "$iterations")" "$run/final/model.safetensors"
"""


def run_recipe(tmp_path: Path) -> list:
    calls = tmp_path / "calls.txt"
    calls.unlink(missing_ok=True)
    environ = dict(os.environ, DATA=str(tmp_path / "data"), OUT=str(tmp_path / "run"),  # + run-texture
                   INFUSIONNET=str(tmp_path / "infusionnet"), CALLS=str(calls))
    result = subprocess.run(["bash", str(RECIPE)], capture_output=True, text=True, env=environ, timeout=60)
    assert result.returncode == 0, result.stderr
    return calls.read_text().splitlines() if calls.exists() else []


@pytest.fixture
def recipe_dir(tmp_path):
    for name in ("content/photo.jpg", "style/picabia_udnie_1913.jpg", "style/hokusai.jpg"):
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).touch()
    fake = tmp_path / "infusionnet"
    fake.write_text(FAKE_TRAIN)
    fake.chmod(0o755)
    return tmp_path


def test_recipe_runs_every_phase_once_in_order(recipe_dir):
    calls = run_recipe(recipe_dir)
    run, texture_run = recipe_dir / "run", recipe_dir / "run-texture"
    assert len(calls) == 7
    assert calls[0].startswith("train --variant infusionnet --vgg hed") and "--iterations 1582" in calls[0]
    assert [c.split("--iterations ")[1].split()[0] for c in calls[1:6]] == ["3600", "3768", "4095", "4900", "6400"]
    assert all(c.startswith(f"train --resume {run} ") for c in calls[1:6])
    assert calls[6].startswith("train --variant infusionnet --vgg hed")
    assert f"--init {run}/final/model.safetensors" in calls[6] and f"--output {texture_run}" in calls[6]
    assert "sample:gravel" in calls[6] and "--lambda-perc-style 25" in calls[6]
    assert "hokusai.jpg" in calls[0] and "hokusai.jpg" in calls[6]
    assert not any("picabia_udnie" in c for c in calls)  # held out
    assert run_recipe(recipe_dir) == []  # finished: nothing to do


def test_recipe_continues_from_the_newest_checkpoint(recipe_dir):
    run_recipe(recipe_dir)
    shutil.rmtree(recipe_dir / "run-texture")
    checkpoint = recipe_dir / "run" / "checkpoints" / "step_00006400.pth"
    checkpoint.rename(checkpoint.with_name("step_00005000.pth"))
    calls = run_recipe(recipe_dir)
    assert len(calls) == 2 and "--iterations 6400" in calls[0] and "--style-pixel-slices 8" in calls[0]
    assert "--init" in calls[1] and "--iterations 1300" in calls[1]  # then the texture run begins


def test_recipe_resumes_the_texture_run(recipe_dir):
    run_recipe(recipe_dir)
    checkpoint = recipe_dir / "run-texture" / "checkpoints" / "step_00001300.pth"
    checkpoint.rename(checkpoint.with_name("step_00001000.pth"))
    calls = run_recipe(recipe_dir)
    assert calls == [f"train --resume {recipe_dir / 'run-texture'} --iterations 1300"]


def test_recipe_needs_content_and_style_folders(tmp_path):
    environ = dict(os.environ, DATA=str(tmp_path / "nothing"), OUT=str(tmp_path / "run"), INFUSIONNET="false")
    result = subprocess.run(["bash", str(RECIPE)], capture_output=True, text=True, env=environ, timeout=60)
    assert result.returncode == 2 and "needs content/ and style/ folders" in result.stderr
