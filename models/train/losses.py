"""Training losses (architecture.md, "Training"), as the authors' released code computes them.

* A frozen VGG-19 encoder, the AdaIN family's ``vgg_normalised.pth``, up to relu4_1. The
  released code taps it at conv1_1, conv2_1, conv3_1 and conv4_1 *before* their ReLUs (its
  slices end on the convolutions: ``[:3]``, ``[3:10]``, ``[10:17]``, ``[17:30]``, although the
  comments say "relu"). ``taps="conv"`` (default) reproduces that; ``taps="relu"`` taps after
  the ReLUs, the AdaIN convention.
* Perceptual loss: content MSE at the third tap (conv3_1 / relu3_1) between the stylized image
  and the content image, plus the EFDM style loss summed over the four taps.
* Style contrastive loss: per sample, the EFDM distance between the style image's and the
  stylized image's *network* encoder features (positive) divided by the same distance towards
  the k nearest other style images of the batch (negatives); summed over the batch. "Nearest"
  is the VGG EFDM distance between the stylized image and the other style images.

EFDM (exact feature distribution matching) compares two feature maps channel by channel as
sorted value lists: the target of the output's k-th smallest value is the style's k-th smallest
value. When the two maps have different numbers of positions, the style's sorted values (its
quantile function) are linearly resampled to the output's length.
"""
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.images import MEAN, STD

from ..blocks import Octave, oct_leaky_relu
from ..checkpoint import torch_load_weights_only
from ..encoders import Encoder, StyleEncoder
from ..networks import AesFA, InfusionNet, StyleTransferNetwork

# The AdaIN "vgg_normalised" network up to relu4_1 as (in, out) 3x3 convolutions and "M" (max
# pooling). Its first layer, a 1x1 conv 3->3, comes before these.
_VGG_PLAN = ((3, 64), (64, 64), "M", (64, 128), (128, 128), "M", (128, 256), (256, 256), (256, 256),
             (256, 256), "M", (256, 512))
# nn.Sequential indices of the tapped layers: the convolutions (released code) or their ReLUs.
VGG_TAPS = {
    "conv": {"conv1_1": 2, "conv2_1": 9, "conv3_1": 16, "conv4_1": 29},
    "relu": {"relu1_1": 3, "relu2_1": 10, "relu3_1": 17, "relu4_1": 30},
}
CONTENT_TAP = 2  # the third tap: conv3_1 / relu3_1 (HED: relu3_3), the authors' content layer
# The taps the content loss may use, numbered from 1 as ``train --content-tap`` says them: the
# third, or the fourth (conv4_1 / relu4_1, HED's relu4_3: AdaIN's choice, which keeps the objects
# and leaves their fine texture to the style).
CONTENT_TAPS = (3, 4)

# Official loss weights (the authors' Config.py): (lambda_perc_cont, lambda_perc_style,
# lambda_const_style).
DEFAULT_LOSS_WEIGHTS = {"infusionnet": (1.0, 15.0, 15.0), "aesfa": (1.0, 10.0, 5.0)}
NEGATIVE_CHOICES = (1, 3, 7)  # the counts the paper compares; 3 is its choice
DEFAULT_NEGATIVES = 3


class VGGError(InfusionNetError, ValueError):
    """The VGG weights file cannot be used; the message names the file and the problem."""


def vgg_layers() -> List[nn.Module]:
    """The AdaIN ``vgg_normalised`` layers 0..30 (input to relu4_1), indexed as in its state dict."""
    layers: List[nn.Module] = [nn.Conv2d(3, 3, 1)]
    for item in _VGG_PLAN:
        if item == "M":
            layers.append(nn.MaxPool2d(2, 2, 0, ceil_mode=True))
        else:
            # Not in-place: the "conv" taps keep the pre-activation tensor.
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(item[0], item[1], 3), nn.ReLU()]
    return layers


class VGGEncoder(nn.Module):
    """Frozen VGG-19 features of images given in the networks' ImageNet-normalized space.

    ``forward(images, count=4)`` returns the first ``count`` taps. The images are first mapped
    back to [0, 1] RGB, which is what ``vgg_normalised`` expects (its 1x1 conv does the rest).
    """

    def __init__(self, taps: str = "conv"):
        super().__init__()
        if taps not in VGG_TAPS:
            raise ValueError(f"VGG taps must be one of {', '.join(VGG_TAPS)}, not {taps!r}")
        self.taps = taps
        self.tap_names = list(VGG_TAPS[taps])
        self.tap_indices = list(VGG_TAPS[taps].values())
        self.layers = nn.Sequential(*vgg_layers())
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "VGGEncoder":
        return super().train(False)  # frozen: always in eval mode

    def forward(self, images: Tensor, count: int = 4) -> List[Tensor]:
        x = images * self.std.to(images.dtype) + self.mean.to(images.dtype)
        features = []
        last = self.tap_indices[count - 1]
        for index, layer in enumerate(self.layers):
            x = layer(x)
            if index in self.tap_indices:
                features.append(x)
            if index == last:
                break
        return features


def random_vgg(seed: int = 0, taps: str = "conv") -> VGGEncoder:
    """An untrained VGG encoder, deterministically initialised (tests, smoke runs). He-normal
    weights keep the activations near unit scale, so its losses are not vanishingly small."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        encoder = VGGEncoder(taps)
        for layer in encoder.layers:
            if isinstance(layer, nn.Conv2d):
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                nn.init.zeros_(layer.bias)
        return encoder


def load_vgg(path: Union[str, Path], taps: str = "conv") -> VGGEncoder:
    """The VGG encoder with weights from an AdaIN-style ``vgg_normalised.pth`` (a state dict of
    the full ``nn.Sequential``; layers past relu4_1 are ignored). Loaded with
    ``weights_only=True``, so the file cannot run code; keys and shapes are checked."""
    path = Path(path)
    if not path.is_file():
        raise VGGError(f"{path}: VGG weights not found (pass the AdaIN 'vgg_normalised.pth')")
    state = torch_load_weights_only(path, VGGError, "VGG weights")
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VGGError(f"{path}: not a VGG state dict (expected a dict of tensors with keys like '0.weight')")
    encoder = VGGEncoder(taps)
    expected = encoder.layers.state_dict()
    problems = []
    missing = [k for k in expected if k not in state]
    if missing:
        problems.append(f"missing keys {_preview(missing)}")
    wrong = [f"{k} (expected {tuple(expected[k].shape)}, found {tuple(state[k].shape)})"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if wrong:
        problems.append(f"shape mismatches {_preview(wrong)}")
    # The full file continues past relu4_1 (up to index 52); anything else is not this network.
    unexpected = [k for k in state if k not in expected and not _is_deeper_layer(k)]
    if unexpected:
        problems.append(f"unexpected keys {_preview(unexpected)}")
    if problems:
        raise VGGError(f"{path}: not the AdaIN vgg_normalised network: " + "; ".join(problems))
    encoder.layers.load_state_dict({k: state[k].float() for k in expected}, strict=True)
    return encoder


def _is_deeper_layer(key: str) -> bool:
    index, _, name = key.partition(".")
    return index.isdigit() and int(index) > 30 and name in ("weight", "bias")


def _preview(items: Sequence[str], limit: int = 6) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


# --------------------------------------------------------------------------------------------
# EFDM
# --------------------------------------------------------------------------------------------

def sorted_channels(x: Tensor, length: Optional[int] = None) -> Tensor:
    """Each channel's values in ascending order, (B, C, N); with ``length``, the sorted values
    (a quantile function) linearly resampled to that many positions."""
    values = x.flatten(2).sort(dim=-1).values
    if length is not None and values.shape[-1] != length:
        if values.shape[-1] == 1:
            return values.expand(*values.shape[:2], length)
        batch, channels, count = values.shape
        values = F.interpolate(values.reshape(batch * channels, 1, count), size=length, mode="linear",
                               align_corners=True).reshape(batch, channels, length)
    return values


def channel_ranks(flat: Tensor) -> Tensor:
    """For (B, C, N) values, each value's position in its channel's ascending order."""
    order = flat.argsort(dim=-1)
    positions = torch.arange(flat.shape[-1], device=flat.device).expand_as(order)
    return torch.empty_like(order).scatter_(-1, order, positions)


def efdm_targets(output: Tensor, target: Tensor) -> Tuple[Tensor, Tensor]:
    """(output flattened to (B, C, N), EFDM target of the same shape): the target's sorted values
    placed at the output's sort order. Gradients reach ``target`` through its sorted values."""
    flat = output.flatten(2)
    placed = sorted_channels(target, flat.shape[-1]).gather(-1, channel_ranks(flat))
    return flat, placed


def efdm_loss(output: Tensor, target: Tensor) -> Tensor:
    """EFDM style loss between two (B, C, H, W) maps: mean over batch, channels and positions."""
    flat, placed = efdm_targets(output, target)
    return F.mse_loss(flat, placed)


def random_colour_directions(count: int, device=None) -> Tensor:
    """``count`` random unit vectors of RGB space, (count, 3), from torch's global generator."""
    directions = torch.randn(count, 3)
    return (directions / directions.norm(dim=1, keepdim=True)).to(device)


def colour_projections(images: Tensor, directions: Tensor) -> Tensor:
    """(B, 3, H, W) images seen along (K, 3) colour directions: (B, K, H, W) maps."""
    return torch.einsum("bchw,kc->bkhw", images, directions.to(images.dtype))


def efdm_distances(output: Tensor, target: Tensor) -> Tensor:
    """Per-sample EFDM loss, shape (B,): each sample's mean over channels and positions."""
    flat, placed = efdm_targets(output, target)
    return (flat - placed).pow(2).mean(dim=(1, 2))


# --------------------------------------------------------------------------------------------
# Negatives and the style contrastive loss
# --------------------------------------------------------------------------------------------

def effective_negatives(requested: int, batch: int) -> int:
    """The number of negatives a batch allows: the k nearest *other* styles, so at most B - 1.
    Asking for more uses all of them (the caller warns once)."""
    if batch < 2:
        raise ValueError("the style contrastive loss needs a batch of at least 2 (negatives are other "
                         "samples of the batch)")
    if requested < 1:
        raise ValueError(f"negatives must be at least 1, not {requested}")
    return min(requested, batch - 1)


@torch.no_grad()
def nearest_negatives(output_vgg: Sequence[Tensor], style_vgg: Sequence[Tensor], k: int) -> Tensor:
    """Indices (B, k) of each sample's k nearest *other* style images of the batch.

    Distance from sample a to style b: the EFDM loss between the stylized image a and the style
    image b, summed over the VGG taps (as the released code computes it). Ties go to the lower
    index. This fixes the released InfusionNet code, which appends its loop variable instead of
    the argmin and therefore always takes the last batch index (even for the last sample itself).
    """
    batch = output_vgg[0].shape[0]
    if not 1 <= k <= batch - 1:
        raise ValueError(f"cannot pick {k} negatives from a batch of {batch}")
    distance = output_vgg[0].new_zeros((batch, batch), dtype=torch.float32)
    for out_map, style_map in zip(output_vgg, style_vgg):
        out_sorted = sorted_channels(out_map.float())
        style_sorted = sorted_channels(style_map.float(), out_sorted.shape[-1])
        for a in range(batch):  # row by row: a (B, B, C, N) tensor would not fit at 256 px
            distance[a] += (out_sorted[a:a + 1] - style_sorted).pow(2).mean(dim=(1, 2))
    distance.fill_diagonal_(math.inf)
    return distance.argsort(dim=1, stable=True)[:, :k]


def style_contrastive_loss(style_features: Sequence[Octave], output_features: Sequence[Octave],
                           negatives: Tensor) -> Tensor:
    """sum over the batch of positive / negative EFDM distances of network features.

    ``style_features[i]`` and ``output_features[i]`` are matching (high, low) feature pairs of the
    style images and of the stylized images; ``negatives`` (B, k) from ``nearest_negatives``.
    For sample b: positive = sum over pairs and halves of EFDM(output b, style b); negative = the
    same towards each negative style n, summed over the k negatives (as the authors' AesFA code
    does). Gradients flow into both sides, as in the released code.
    """
    positive = negative = 0.0
    for style_pair, output_pair in zip(style_features, output_features):
        for style_map, output_map in zip(style_pair, output_pair):
            flat = output_map.float().flatten(2)  # (B, C, N)
            ranks = channel_ranks(flat)
            style_sorted = sorted_channels(style_map.float(), flat.shape[-1])  # (B, C, N)
            positive = positive + (flat - style_sorted.gather(-1, ranks)).pow(2).mean(dim=(1, 2))
            negative_sorted = style_sorted[negatives]  # (B, k, C, N)
            placed = negative_sorted.gather(-1, ranks.unsqueeze(1).expand_as(negative_sorted))
            negative = negative + (flat.unsqueeze(1) - placed).pow(2).mean(dim=(2, 3)).sum(dim=1)
    return (positive / negative).sum()


# --------------------------------------------------------------------------------------------
# Network features the contrastive loss compares
# --------------------------------------------------------------------------------------------

def encoder_taps(encoder: Encoder, images: Tensor) -> Tuple[Octave, List[Octave]]:
    """``encoder(images)`` and its features at the end of each of its two stages (after
    OctConv1_2 and OctConv2_2, or OctConv1_3 and OctConv2_3 in AesFA): the released ``enc_feat``."""
    out = encoder.conv(images)
    taps = []
    for position, name in enumerate(encoder.layer_names):
        out = oct_leaky_relu(getattr(encoder, name)(out))
        following = encoder.layer_names[position + 1] if position + 1 < len(encoder.layer_names) else None
        if following is None or following[:8] != name[:8]:  # "OctConv1" -> "OctConv2": stage ends
            taps.append(out)
    return out, taps


def style_encoder_taps(netS: StyleEncoder, features: Octave) -> Tuple[Octave, List[Octave]]:
    """InfusionNet's ``netS(features)`` (the style code) and its released ``sty_feat``: after
    OctConv1_2, after OctConv2_2, the two halves before pooling, and the pooled code."""
    out = features
    taps = []
    for name in ("OctConv1_1", "OctConv1_2", "OctConv2_1", "OctConv2_2"):
        out = oct_leaky_relu(getattr(netS, name)(out))
        if name.endswith("_2"):
            taps.append(out)
    high = netS.act(netS.OctConv3_2_high(netS.act(netS.OctConv3_1_high(out[0]))))
    low = netS.act(netS.OctConv3_2_low(netS.act(netS.OctConv3_1_low(out[1]))))
    code = (netS.pool(high), netS.pool(low))
    taps += [(high, low), code]
    return code, taps


def style_side(model: StyleTransferNetwork, style: Tensor) -> Tuple[Octave, List[Octave]]:
    """(style code, features compared by the contrastive loss) of the style images.

    InfusionNet: netE's stage outputs then netS's four taps. AesFA (its released code): netS's
    stage outputs, the same again, then the pooled code; the first copy is compared with netE's
    features of the stylized image, the second with netS's.
    """
    if isinstance(model, InfusionNet):
        encoded, encoder_features = encoder_taps(model.netE, style)
        code, style_features = style_encoder_taps(model.netS, encoded)
        return code, encoder_features + style_features
    if isinstance(model, AesFA):
        encoded, style_features = encoder_taps(model.netS, style)
        code = (model.pool(encoded[0]), model.pool(encoded[1]))
        return code, style_features + style_features + [code]
    raise TypeError(f"no contrastive features defined for {type(model).__name__}")


def output_side(model: StyleTransferNetwork, output: Tensor) -> List[Octave]:
    """The stylized images' features, aligned pair by pair with ``style_side``'s."""
    if isinstance(model, InfusionNet):
        encoded, encoder_features = encoder_taps(model.netE, output)
        _, style_features = style_encoder_taps(model.netS, encoded)
        return encoder_features + style_features
    if isinstance(model, AesFA):
        _, content_features = encoder_taps(model.netE, output)
        encoded, style_features = encoder_taps(model.netS, output)
        code = (model.pool(encoded[0]), model.pool(encoded[1]))
        return content_features + style_features + [code]
    raise TypeError(f"no contrastive features defined for {type(model).__name__}")


# --------------------------------------------------------------------------------------------
# The whole objective
# --------------------------------------------------------------------------------------------

@dataclass
class LossWeights:
    perc_cont: float = 1.0
    perc_style: float = 15.0
    const_style: float = 15.0

    @classmethod
    def official(cls, variant: str) -> "LossWeights":
        return cls(*DEFAULT_LOSS_WEIGHTS[variant])


class StyleTransferLoss(nn.Module):
    """The authors' generator objective:

        lambda_perc_cont * content + lambda_perc_style * EFDM style + lambda_const_style * contrastive

    ``forward`` returns (total, {"content", "style", "contrastive"}) as float32 tensors; the
    parts are unweighted. Losses are computed in float32 even under autocast.

    ``pixel_tap`` > 0 (not the authors'; off by default) adds the images themselves, in the
    network's normalized RGB, as one more tap of the EFDM style loss, times ``pixel_tap``: the
    exact per-channel colour histogram of the style. With HED's VGG16, tuned for edges, the feature
    taps alone barely tell palettes apart: on held-out pairs the default model's pink-and-green
    results scored a lower EFDM loss than a colour transfer of the photo to the style's palette,
    while on pixels their distances were 3.2 against 0.14 (Hubble's field) and 0.88 against 0.12
    (ihc).

    ``content_tap`` (numbered from 1, one of ``CONTENT_TAPS``) is the loss network tap of the
    content loss.

    ``pixel_slices`` = K > 0 compares the pixels along K random directions of RGB space, drawn
    anew each step, instead of along R, G and B: a sliced Wasserstein distance (Heitz et al.,
    CVPR 2021), which over the steps matches the joint distribution of the colours, not just
    each channel's histogram: per channel, an image whose channels were shuffled independently
    scores zero.
    """

    def __init__(self, vgg: VGGEncoder, weights: LossWeights, negatives: int = DEFAULT_NEGATIVES,
                 pixel_tap: float = 0.0, pixel_slices: int = 0, content_tap: int = CONTENT_TAP + 1):
        super().__init__()
        if content_tap not in CONTENT_TAPS:
            raise ValueError(f"content tap {content_tap} is not one of {CONTENT_TAPS}")
        self.content_index = content_tap - 1
        self.vgg = vgg
        self.weights = weights
        self.negatives = negatives
        self.pixel_tap = float(pixel_tap)
        self.pixel_slices = int(pixel_slices)
        self._warned = False

    def forward(self, content: Tensor, style: Tensor, output: Tensor, style_features: Sequence[Octave],
                output_features: Sequence[Octave]) -> Tuple[Tensor, Dict[str, Tensor]]:
        with torch.no_grad():
            content_vgg = self.vgg(content, count=self.content_index + 1)[self.content_index].float()
            style_vgg = [f.float() for f in self.vgg(style)]
        output_vgg = [f.float() for f in self.vgg(output)]

        content_loss = F.mse_loss(output_vgg[self.content_index], content_vgg)
        style_loss = self.style_distance(output.float(), output_vgg, style.float(), style_vgg)

        k = effective_negatives(self.negatives, output.shape[0])
        if k < self.negatives and not self._warned:
            warnings.warn(f"{self.negatives} negatives asked for but a batch of {output.shape[0]} has only "
                          f"{k} other styles: using {k}", stacklevel=2)
            self._warned = True
        negatives = nearest_negatives(output_vgg, style_vgg, k)
        contrastive = style_contrastive_loss(style_features, output_features, negatives)

        total = (self.weights.perc_cont * content_loss + self.weights.perc_style * style_loss
                 + self.weights.const_style * contrastive)
        return total, {"content": content_loss.detach(), "style": style_loss.detach(),
                       "contrastive": contrastive.detach()}

    def style_distance(self, output: Tensor, output_vgg: Sequence[Tensor], style: Tensor,
                       style_vgg: Sequence[Tensor]) -> Tensor:
        """The unweighted style loss: EFDM over the loss network's taps, plus the pixel tap."""
        distance = sum(efdm_loss(o, s) for o, s in zip(output_vgg, style_vgg))
        if self.pixel_tap:
            distance = distance + self.pixel_tap * self.pixel_distance(output, style)
        return distance

    def pixel_distance(self, output: Tensor, style: Tensor) -> Tensor:
        """The pixel tap's EFDM distance: per RGB channel, or along random colour directions."""
        if self.pixel_slices:
            directions = random_colour_directions(self.pixel_slices, output.device)
            output, style = colour_projections(output, directions), colour_projections(style, directions)
        return efdm_loss(output, style)
