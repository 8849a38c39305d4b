"""runtime/samples.py: the photographs and textures bundled in scikit-image's data folder."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from infusionnet.runtime import samples
from infusionnet.runtime.images import ImageError


def test_names_by_kind():
    content, style = samples.sample_names("content"), samples.sample_names("style")
    assert content == ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")
    assert {"hubble_deep_field", "ihc", "gravel", "brick", "grass"} <= set(style)
    assert samples.sample_names() == content + style
    assert not set(content) & set(style)
    with pytest.raises(ImageError, match="content, style, all"):
        samples.sample_names("textures")


@pytest.mark.parametrize("name", samples.sample_names())
def test_every_sample_exists_and_loads_as_rgb(name):
    path = samples.sample_path(name)
    assert path.is_file() and path.parent.name == "data"
    rgb = samples.load_sample(name)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert min(rgb.shape[:2]) >= 256   # big enough for the official 256 px test and 96 px styles
    assert rgb.std() > 10               # real pictures, not blank files


def test_grey_textures_become_rgb_and_photos_have_colour():
    brick = samples.load_sample("brick")
    np.testing.assert_array_equal(brick[..., 0], brick[..., 2])
    astronaut = samples.load_sample("astronaut")
    assert np.abs(astronaut[..., 0].astype(int) - astronaut[..., 2]).mean() > 5


def test_prefix_and_paths_resolve():
    assert samples.sample_path("sample:coffee") == samples.sample_path("coffee")
    assert samples.resolve_image_arg("sample:hubble_deep_field").name == "hubble_deep_field.jpg"
    assert samples.resolve_image_arg("photos/cat.jpg") == Path("photos/cat.jpg")
    assert samples.resolve_image_arg("./sample:odd.png") == Path("./sample:odd.png")
    np.testing.assert_array_equal(samples.load_image_arg("sample:rocket"), samples.load_sample("rocket"))


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ImageError) as caught:
        samples.resolve_image_arg("sample:mona_lisa")
    message = str(caught.value)
    assert "'mona_lisa'" in message and "astronaut" in message and "hubble_deep_field" in message
    assert "\n" not in message


def test_missing_scikit_image_is_explained(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(samples.importlib.util, "find_spec",
                        lambda name, *args: None if name == "skimage" else real_find_spec(name, *args))
    with pytest.raises(samples.SampleError, match="scikit-image.*not installed"):
        samples.load_sample("astronaut")


def test_samples_load_without_importing_scikit_image_or_torch():
    code = ("import sys\n"
            "sys.modules['torch'] = None\n"
            "from infusionnet.runtime import samples\n"
            "assert samples.load_sample('chelsea').shape == (300, 451, 3)\n"
            "print(sorted(m for m in ('skimage', 'scipy') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
