"""runtime/samples.py: the photographs and textures bundled in scikit-image's data folder."""
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from infusionnet.runtime import samples
from infusionnet.runtime.images import ImageError

# The samples come with the `samples` extra (scikit-image); the lean runtime install lacks them.
needs_samples = pytest.mark.skipif(importlib.util.find_spec("skimage") is None,
                                   reason="scikit-image is not installed (the samples extra)")


def test_names_by_kind():
    content, style = samples.sample_names("content"), samples.sample_names("style")
    assert content == ("astronaut", "coffee", "chelsea", "rocket", "motorcycle_left")
    assert {"hubble_deep_field", "ihc", "gravel", "brick", "grass"} <= set(style)
    assert samples.sample_names() == content + style
    assert not set(content) & set(style)
    with pytest.raises(ImageError, match="content, style, all"):
        samples.sample_names("textures")


@needs_samples
@pytest.mark.parametrize("name", samples.sample_names())
def test_every_sample_exists_and_loads_as_rgb(name):
    path = samples.sample_path(name)
    assert path.is_file() and path.parent.name == "data"
    rgb = samples.load_sample(name)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert min(rgb.shape[:2]) >= 256   # big enough for the official 256 px test and 96 px styles
    assert rgb.std() > 10               # real pictures, not blank files


@needs_samples
def test_grey_textures_become_rgb_and_photos_have_colour():
    brick = samples.load_sample("brick")
    np.testing.assert_array_equal(brick[..., 0], brick[..., 2])
    astronaut = samples.load_sample("astronaut")
    assert np.abs(astronaut[..., 0].astype(int) - astronaut[..., 2]).mean() > 5


@needs_samples
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
    with pytest.raises(samples.SampleError, match=r"scikit-image.*not installed.*infusionnet-edge\[samples\]"):
        samples.load_sample("astronaut")


def test_commands_without_the_samples_extra_say_which_extra_to_install(tmp_path):
    code = ("import sys\n"
            "sys.modules['skimage'] = None\n"  # as if scikit-image were not installed
            "from infusionnet.cli.main import main\n"
            "sys.exit(main(['stylize', '--output', sys.argv[1]]))\n")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: the built-in sample images come from scikit-image")
    assert "pip install 'infusionnet-edge[samples]'" in result.stderr and result.stderr.count("\n") == 1


@needs_samples
def test_samples_load_without_importing_scikit_image_or_torch():
    code = ("import sys\n"
            "sys.modules['torch'] = None\n"
            "from infusionnet.runtime import samples\n"
            "assert samples.load_sample('chelsea').shape == (300, 451, 3)\n"
            "print(sorted(m for m in ('skimage', 'scipy') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
