"""The bundled default model: what ships, how it loads, and that it really stylizes."""
import json

import cv2

import numpy as np
import pytest
import torch
from safetensors import safe_open

from infusionnet.cli.main import main
from infusionnet.models import build_model, load_checkpoint
from infusionnet.models.checkpoint import CheckpointError
from infusionnet.models.default_model import DEFAULT_CHECKPOINT, default_checkpoint, resolve_network
from infusionnet.runtime import images, samples
from infusionnet.runtime.fileio import file_sha256


def stylize(model, content: str, style: str, size: int = 256) -> np.ndarray:
    square = images.parse_resize(f"square:{size}")
    c = images.normalize(images.prepare_image(samples.load_sample(content), square)[0])
    s = images.normalize(images.prepare_image(samples.load_sample(style), square)[0])
    with torch.inference_mode():
        return images.denormalize(model(torch.from_numpy(c), torch.from_numpy(s)).numpy())[0]


@pytest.fixture(scope="module")
def default_model():
    return load_checkpoint(default_checkpoint())


def test_ships_as_float16_safetensors_with_its_config():
    assert DEFAULT_CHECKPOINT.stat().st_size < 12 * 2 ** 20
    with safe_open(str(DEFAULT_CHECKPOINT), framework="pt") as f:
        dtypes = {f.get_slice(key).get_dtype() for key in f.keys()}
    assert dtypes == {"F16"}
    config = json.loads(DEFAULT_CHECKPOINT.with_suffix(".json").read_text())
    assert config["variant"] == "infusionnet" and config["trained_steps"] > 0
    assert config["recipe"] == "scripts/train-default-model.sh"


def test_loads_strictly_into_float32(default_model):
    assert default_model.variant == "infusionnet"
    assert {p.dtype for p in default_model.parameters()} == {torch.float32}
    fresh = build_model("infusionnet")
    assert default_model.state_dict().keys() == fresh.state_dict().keys()


def test_output_has_structure_and_follows_the_style(default_model):
    """The untrained network gave one flat colour (per-channel std < 0.02 of the range)."""
    hubble = stylize(default_model, "astronaut", "hubble_deep_field").astype(np.float32) / 255
    retina = stylize(default_model, "astronaut", "retina").astype(np.float32) / 255
    assert hubble.reshape(-1, 3).std(axis=0).min() > 0.05
    # Different styles give visibly different results (mean colour differs).
    assert np.abs(hubble.mean(axis=(0, 1)) - retina.mean(axis=(0, 1))).max() > 0.03


def test_resolve_network_choices(tmp_path):
    model, info = resolve_network(None)
    assert info == {"file": DEFAULT_CHECKPOINT.name, "sha256": file_sha256(DEFAULT_CHECKPOINT)}
    model, info = resolve_network("untrained", "aesfa", seed=3)
    assert model.variant == "aesfa" and info == {"file": None, "sha256": "untrained-seed-3"}
    seeded = build_model("aesfa", seed=3)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), seeded.state_dict().values()))
    with pytest.raises(CheckpointError, match="bundled default model is InfusionNet, not aesfa"):
        resolve_network(None, "aesfa")


def test_stylize_help_says_what_the_default_is(capsys):
    with pytest.raises(SystemExit):
        main(["stylize", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "bundled default model" in text and "HED's VGG16" in text and "'untrained'" in text


def _script(name: str):
    """One of scripts/*.py, imported as a module."""
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "scripts" / name
    spec = importlib.util.spec_from_file_location(path.stem.replace("-", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _evaluation_script():
    return _script("evaluate-default-model.py")


def test_evaluation_joins_the_losses_of_runs_that_follow_one_another(tmp_path):
    evaluate = _evaluation_script()
    for run, steps in (("first", (25, 50)), ("fine-tune", (25, 50))):
        (tmp_path / run).mkdir()
        (tmp_path / run / "metrics.csv").write_text("step,loss\n" + "".join(f"{s},1.5\n" for s in steps))
    rows = evaluate.joined_metrics([tmp_path / "first", tmp_path / "fine-tune"])
    assert [row["step"] for row in rows] == ["25", "50", "75", "100"]
    evaluate.write_metrics(rows, tmp_path / "joined.csv")
    assert (tmp_path / "joined.csv").read_text() == "step,loss\n25,1.5\n50,1.5\n75,1.5\n100,1.5\n"


def test_ship_script_counts_the_steps_of_the_weights_a_run_started_from(tmp_path):
    ship = _script("ship-default-model.py")
    shipped_steps = json.loads(DEFAULT_CHECKPOINT.with_suffix(".json").read_text())["trained_steps"]
    assert ship.steps_before({"init": str(DEFAULT_CHECKPOINT)}) == shipped_steps
    assert ship.steps_before({"init": None}) == 0
    authors = tmp_path / "main.pth"
    torch.save({"netE": {}}, authors)
    assert ship.steps_before({"init": str(authors)}) == 0  # no step count in that format
    with pytest.raises(CheckpointError, match="--init weights are gone"):
        ship.steps_before({"init": str(tmp_path / "moved.safetensors")})
    assert ship.steps_before({"init": str(tmp_path / "moved.safetensors"), "init_steps": 7}) == 7  # as recorded


def _square_samples(size: int, *names: str) -> list:
    """The built-in samples resized and centre-cropped to size x size, as the evaluation does."""
    square = images.parse_resize(f"square:{size}")
    return [images.prepare_image(samples.load_sample(name), square)[0] for name in names]


def test_held_out_metrics_of_the_evaluation_script():
    evaluate = _evaluation_script()
    photo, style = _square_samples(96, "astronaut", "retina")
    assert evaluate.colour_gap_closed(photo, style, style) == pytest.approx(1.0)
    assert evaluate.colour_gap_closed(photo, photo, style) == pytest.approx(0.0)
    halfway = ((photo.astype(np.float32) + style) / 2).astype(np.uint8)
    assert 0.2 < evaluate.colour_gap_closed(photo, halfway, style) < 0.8
    assert evaluate.structure_kept(photo, photo) == pytest.approx(1.0)
    noise = np.random.default_rng(0).integers(0, 256, photo.shape, dtype=np.uint8)
    assert abs(evaluate.structure_kept(photo, noise)) < 0.2
    table = evaluate.metrics_table([style], [[photo, photo]], ["retina"])
    assert "| retina | 0% | 0% | 1.00 |" in table
    # The colour transfer of --style-loss takes the style's colour moments and keeps the photo's edges.
    moved = evaluate.colour_transfer(photo, style)
    assert evaluate.colour_gap_closed(photo, moved, style) > 0.8 and evaluate.structure_kept(photo, moved) > 0.8


def test_texture_gap_closed_sees_detail_not_colour():
    evaluate = _evaluation_script()
    photo, stars = _square_samples(128, "astronaut", "hubble_deep_field")
    assert evaluate.texture_gap_closed(photo, stars, stars) == pytest.approx(1.0)
    # Colours and contrast alone do not count as texture...
    assert abs(evaluate.texture_gap_closed(photo, evaluate.colour_transfer(photo, stars), stars)) < 0.15
    # ...sparse bright points on the photo do, and a blurred photo moves away from the stars' detail.
    dotted = photo.copy()
    points = np.random.default_rng(0).integers(0, 128, (60, 2))
    dotted[points[:, 0], points[:, 1]] = 255
    assert evaluate.texture_gap_closed(photo, dotted, stars) > 0.05
    blurred = cv2.GaussianBlur(photo, (0, 0), 2.0)
    assert evaluate.texture_gap_closed(photo, blurred, stars) < 0
    flat = np.full_like(photo, 128)
    assert np.isfinite(evaluate.texture_signature(flat)).all()


def test_comparison_marks_every_fall_and_says_which_candidate_is_worse_nowhere():
    evaluate = _evaluation_script()
    baseline = [(0.84, 0.65, 0.52), (0.38, 0.34, 0.48)]
    candidates = {"better": [(0.84, 0.70, 0.52), (0.40, 0.34, 0.475)],   # a fall within rounding is no fall
                  "mixed": [(0.90, 0.80, 0.50), (0.10, 0.50, 0.48)],
                  "same": baseline}
    text = evaluate.comparison_table(["picabia", "retina"], baseline, candidates)
    assert "| picabia | texture | 65% | 70% | 80% | 65% |" in text
    assert "| retina | colour | 38% | 40% | 10% (worse) | 38% |" in text
    assert "| picabia | structure | 0.52 | 0.52 | 0.50 (worse) | 0.52 |" in text
    assert "better: worse nowhere, texture up" in text
    assert "mixed: worse on picabia structure, retina colour" in text
    assert "same: worse nowhere, texture not up" in text


def test_loss_optimum_script_moves_the_photo_only_as_the_objective_asks():
    """scripts/loss-optimum.py: with no style term the photo is the optimum and stays put; with
    the style terms alone the image takes the style's colours."""
    from infusionnet.models.train.losses import random_vgg
    optimum = _script("loss-optimum.py")
    evaluate = _evaluation_script()
    vgg = random_vgg(seed=1, taps="relu")
    photo, style = _square_samples(32, "astronaut", "retina")
    torch.manual_seed(0)
    kept = optimum.optimised_image(vgg, photo, style, content_weight=1.0, style_weight=0.0, pixel_weight=10.0,
                                   slices=8, steps=5, lr=0.02)
    np.testing.assert_array_equal(kept, photo)
    styled = optimum.optimised_image(vgg, photo, style, content_weight=0.0, style_weight=1.0, pixel_weight=10.0,
                                     slices=8, steps=60, lr=0.02)
    assert evaluate.colour_gap_closed(photo, styled, style) > 0.5


def test_comparison_grid_puts_each_models_results_under_the_bundled_ones():
    evaluate = _evaluation_script()
    assert evaluate.model_label("runs/x/checkpoints/step_00000500.pth") == "x step 500"
    assert evaluate.model_label("runs/x/final/model.safetensors") == "x"
    assert evaluate.model_label("/tmp/avg/A.safetensors") == "A"
    size, styles = 32, 2
    style_images = [np.full((size, size, 3), 10 * (i + 1), np.uint8) for i in range(styles)]
    photo_rows = lambda shade: [[np.full((size, size, 3), shade, np.uint8)] * (1 + styles)
                                for _ in evaluate.HELD_OUT_CONTENT]
    sheet = evaluate.comparison_sheet(style_images, ["a", "b"], {"bundled": photo_rows(100), "x": photo_rows(200)},
                                      size)
    rows = 1 + 2 * len(evaluate.HELD_OUT_CONTENT)  # the styles, then two models per photo
    strip, gap = 18, 8
    assert sheet.shape[0] == rows * (strip + size) + gap * (rows - 1)
    assert sheet.shape[1] == (1 + styles) * size + gap * styles
    # Row by row: bundled (100) then the candidate (200), the first result tile of each.
    tops = [(strip + size + gap) * row + strip for row in (1, 2)]
    assert [int(sheet[top + size // 2, size + gap + size // 2, 0]) for top in tops] == [100, 200]


def test_evaluation_reads_the_styles_at_style_size_and_measures_against_them_at_size(default_model):
    """--style-size changes what the network reads, not the style images the metrics compare with."""
    evaluate = _evaluation_script()
    styles = ["sample:hubble_deep_field"]
    same_images, same_rows = evaluate.held_out_results(default_model, styles, 96)
    larger_images, larger_rows = evaluate.held_out_results(default_model, styles, 96, style_size=192)
    np.testing.assert_array_equal(larger_images[0], same_images[0])
    assert larger_images[0].shape == (96, 96, 3) and larger_rows[0][1].shape == (96, 96, 3)
    np.testing.assert_array_equal(larger_rows[0][0], same_rows[0][0])  # the photo
    assert np.abs(larger_rows[0][1].astype(int) - same_rows[0][1]).mean() > 1  # another style code
