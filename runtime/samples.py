"""Built-in sample images: real photographs and textures that ship inside scikit-image's wheel.

They let every command run without the user supplying pictures (and the tests use real images,
not noise). Only the data folder is located; ``skimage`` itself is never imported, because
importing ``skimage.data`` is slow and pulls in scipy. Files are read with ``read_image``, so the
grey textures come back as RGB like everything else.
"""
import importlib.util
from pathlib import Path
from typing import Dict, Tuple

import numpy as np

from infusionnet.runtime.images import ImageError, read_image

SAMPLE_PREFIX = "sample:"

# name -> file in skimage/data. Content: photographs with people, objects and scenery.
CONTENT_SAMPLES: Dict[str, str] = {
    "astronaut": "astronaut.png",
    "coffee": "coffee.png",
    "chelsea": "chelsea.png",
    "rocket": "rocket.jpg",
    "motorcycle_left": "motorcycle_left.png",
}
# Style: colourful images and textures (gravel, brick and grass are greyscale).
STYLE_SAMPLES: Dict[str, str] = {
    "hubble_deep_field": "hubble_deep_field.jpg",
    "ihc": "ihc.png",
    "retina": "retina.jpg",
    "gravel": "gravel.png",
    "brick": "brick.png",
    "grass": "grass.png",
}
KINDS = ("content", "style", "all")


class SampleError(ImageError):
    """A sample name that does not exist, or no scikit-image to take samples from."""


def sample_names(kind: str = "all") -> Tuple[str, ...]:
    """Names of the "content", "style" or "all" samples, in a fixed order."""
    if kind == "content":
        return tuple(CONTENT_SAMPLES)
    if kind == "style":
        return tuple(STYLE_SAMPLES)
    if kind == "all":
        return tuple(CONTENT_SAMPLES) + tuple(STYLE_SAMPLES)
    raise SampleError(f"unknown sample kind {kind!r}: use one of {', '.join(KINDS)}")


def data_folder() -> Path:
    """scikit-image's bundled data folder (found without importing scikit-image)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise SampleError("the built-in sample images come from scikit-image, which is not installed: "
                          "pip install 'infusionnet-edge[samples]', or pass image paths instead")
    for location in spec.submodule_search_locations:
        folder = Path(location) / "data"
        if folder.is_dir():
            return folder
    raise SampleError(f"scikit-image at {list(spec.submodule_search_locations)[0]} has no data folder; "
                      "reinstall it (pip install --force-reinstall scikit-image) or pass image paths")


def sample_path(name: str) -> Path:
    """Path of a sample by name ("sample:" prefix optional); SampleError lists the valid names."""
    if name.startswith(SAMPLE_PREFIX):
        name = name[len(SAMPLE_PREFIX):]
    filename = CONTENT_SAMPLES.get(name) or STYLE_SAMPLES.get(name)
    if filename is None:
        raise SampleError(f"unknown sample {name!r}: content samples are {', '.join(CONTENT_SAMPLES)}; "
                          f"style samples are {', '.join(STYLE_SAMPLES)}")
    path = data_folder() / filename
    if not path.is_file():
        raise SampleError(f"sample {name!r} is missing from scikit-image's data folder ({path}); "
                          "this scikit-image release may not bundle it")
    return path


def load_sample(name: str) -> np.ndarray:
    """A sample as uint8 HxWx3 RGB."""
    return read_image(sample_path(name))


def resolve_image_arg(text: str) -> Path:
    """A command-line image argument: "sample:NAME" -> the sample's path, anything else a path.

    Paths are not checked here (read_image or list_images will say what is wrong). A real file
    whose name starts with "sample:" can be given as "./sample:...".
    """
    text = str(text)
    if text.startswith(SAMPLE_PREFIX):
        return sample_path(text)
    return Path(text)


def load_image_arg(text: str) -> np.ndarray:
    """Read a command-line image argument ("sample:NAME" or a path) as uint8 HxWx3 RGB."""
    return read_image(resolve_image_arg(text))
