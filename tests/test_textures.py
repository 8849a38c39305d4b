"""Procedural texture styles (models/train/textures.py, scripts/make-texture-styles.py)."""
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from infusionnet.models.train.textures import FAMILIES, texture, texture_specs
from infusionnet.runtime.images import read_image

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "make-texture-styles.py"


@pytest.mark.parametrize("family", list(FAMILIES))
def test_each_family_is_a_reproducible_non_flat_rgb_image(family):
    image = texture(family, seed=3, size=64)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert image.std() > 5  # a texture, not a plain colour
    assert np.array_equal(image, texture(family, seed=3, size=64))
    assert not np.array_equal(image, texture(family, seed=4, size=64))


def _detail_kurtosis(rgb: np.ndarray) -> float:
    """Kurtosis of the grey image's Laplacian: high for sparse detail (dots on a ground)."""
    detail = cv2.Laplacian(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).astype(np.float32), cv2.CV_32F).ravel()
    detail -= detail.mean()
    return float((detail ** 4).mean() / max((detail ** 2).mean() ** 2, 1e-12))


def test_dots_are_sparser_detail_than_waves():
    """The families differ in what they teach: dots on a plain ground are sparse detail, waves even."""
    dots = np.mean([_detail_kurtosis(texture("dots", seed, 128)) for seed in range(4)])
    waves = np.mean([_detail_kurtosis(texture("waves", seed, 128)) for seed in range(4)])
    assert dots > 3 * waves


def test_a_set_takes_the_families_in_turn_and_grows_without_changing():
    specs = texture_specs(7, seed=1)
    assert [family for _, family, _ in specs] == (list(FAMILIES) * 2)[:7]
    assert [name for name, _, _ in specs][:2] == [f"{list(FAMILIES)[0]}_000", f"{list(FAMILIES)[1]}_001"]
    assert texture_specs(3, seed=1) == specs[:3]
    assert len({seed for _, _, seed in specs + texture_specs(7, seed=2)}) == 14
    with pytest.raises(ValueError, match="texture family must be one of dots"):
        texture("plaid", seed=0)


def test_script_writes_the_set_and_refuses_an_unwritable_folder(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "styles"), "--count", "6", "--size", "32"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    written = sorted((tmp_path / "styles").glob("*.png"))
    assert [path.stem for path in written] == sorted(name for name, _, _ in texture_specs(6))
    name, family, seed = texture_specs(6)[2]
    assert np.array_equal(read_image(tmp_path / "styles" / f"{name}.png"), texture(family, seed, 32))

    (tmp_path / "file").write_text("in the way")
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "file" / "styles"), "--count", "2"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: cannot write") and "Traceback" not in result.stderr
