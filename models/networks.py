"""The two full networks and their registry.

Both run the same pipeline in four stages, which export and the runtime reuse:

    content features = encode_content(content)        netE
    style code       = encode_style(style)            (high, low), each (B, C, 3, 3)
    kernels          = predict_kernels(style code)    named per-layer tensors
    stylized, hi, lo = decode(content features, kernels)

InfusionNet and AesFA differ in one place, ``encode_style``: InfusionNet runs netE then its
StyleEncoder netS; AesFA runs its own Encoder (netS) and pools each half to 3x3.
"""
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor, nn

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.sizes import MIN_SIZE as MIN_CONTENT_SIZE
from infusionnet.runtime.sizes import SIZE_MULTIPLE as CONTENT_SIZE_MULTIPLE
from infusionnet.runtime.sizes import size_problem

from .blocks import AdaConv2d, Octave
from .encoders import Encoder, StyleEncoder
from .generator import Decoder


class StyleTransferNetwork(nn.Module):
    variant = ""
    style_channels = 0

    def __init__(self, nf: int = 64):
        super().__init__()
        self.nf = nf

    @property
    def config(self) -> dict:
        return {"variant": self.variant, "nf": self.nf,
                "style_channels": [self.style_channels, self.style_channels]}

    def encode_content(self, content: Tensor) -> Octave:
        return self.netE(content)

    def encode_style(self, style: Tensor) -> Octave:
        raise NotImplementedError

    def predict_kernels(self, style_code: Octave) -> Dict[str, Tensor]:
        return self.netG.predict_kernels(style_code)

    def decode(self, content_features: Octave, kernels: Dict[str, Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        batch = content_features[0].shape[0]
        return self.netG(content_features, broadcast_kernels(kernels, batch))

    def style_kernels(self, style: Tensor, style_low: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """Kernels of a style image; with ``style_low``, the low-frequency half of the style code
        comes from that image instead (style mixing)."""
        code = self.encode_style(style)
        if style_low is not None:
            code = (code[0], self.encode_style(style_low)[1])
        return self.predict_kernels(code)

    def forward(self, content: Tensor, style: Tensor, style_low: Optional[Tensor] = None,
                return_frequencies: bool = False):
        """The official test path. A style batch of 1 is applied to every content sample."""
        out, high, low = self.decode(self.encode_content(content), self.style_kernels(style, style_low))
        return (out, high, low) if return_frequencies else out

    def use_reference_adaconv(self, enabled: bool = True) -> "StyleTransferNetwork":
        """Run AdaConv as the authors do (a Python loop over the batch) instead of batched."""
        for module in self.modules():
            if isinstance(module, AdaConv2d):
                module.loop_over_batch = enabled
        return self


def broadcast_kernels(kernels: Dict[str, Tensor], batch: int) -> Dict[str, Tensor]:
    """Repeat single-style kernels over a content batch; other batch sizes must match."""
    # int(): under ONNX tracing, shapes are traced values that never compare equal in a set; the
    # batch is fixed at export anyway.
    batch = int(batch)
    sizes = {int(tensor.shape[0]) for tensor in kernels.values()}
    if sizes == {batch}:
        return kernels
    if sizes == {1}:
        return {name: tensor.expand(batch, *tensor.shape[1:]) for name, tensor in kernels.items()}
    raise ValueError(f"style batch {sorted(sizes)} does not match content batch {batch} "
                     "(use one style, or one per content image)")


class InfusionNet(StyleTransferNetwork):
    variant = "infusionnet"
    style_channels = 512

    def __init__(self, nf: int = 64):
        super().__init__(nf)
        self.netE = Encoder(3, nf)
        self.netS = StyleEncoder(4 * nf, self.style_channels)
        self.netG = Decoder(nf, (self.style_channels,) * 2)

    def encode_style(self, style: Tensor) -> Octave:
        return self.netS(self.netE(style))


class AesFA(StyleTransferNetwork):
    variant = "aesfa"
    style_channels = 128

    def __init__(self, nf: int = 64):
        super().__init__(nf)
        self.netE = Encoder(3, nf, extra_convs=True)
        self.netS = Encoder(3, nf, extra_convs=True)
        self.netG = Decoder(nf, (self.style_channels,) * 2)
        self.pool = nn.AdaptiveAvgPool2d(3)

    def encode_style(self, style: Tensor) -> Octave:
        high, low = self.netS(style)
        return self.pool(high), self.pool(low)


VARIANTS = {cls.variant: cls for cls in (InfusionNet, AesFA)}
# Smallest square style image whose code still covers 3x3 after the encoders' striding.
MIN_STYLE_SIZE = {"infusionnet": 96, "aesfa": 24}
# The octave cross paths add up2(low) to high at every stride: each stride-2 stage needs an even
# size. InfusionNet's style path strides to 1/32 (netE then netS), AesFA's to 1/8, content to 1/8.
STYLE_SIZE_MULTIPLE = {"infusionnet": 32, "aesfa": 8}


def validate_style_size(variant: str, size: int) -> None:
    """Raise InfusionNetError unless a square style image of ``size`` px fits ``variant``."""
    minimum, multiple = MIN_STYLE_SIZE[variant], STYLE_SIZE_MULTIPLE[variant]
    if size < minimum or size % multiple:
        raise InfusionNetError(f"style size {size} does not fit {variant}: it must be a multiple of "
                               f"{multiple} and at least {minimum} px (e.g. 256)")


def validate_content_size(height: int, width: int) -> None:
    """Raise InfusionNetError unless a content image of height x width fits both networks
    (content strides to 1/8: ``runtime.sizes`` holds the rule, torch-free)."""
    problem = size_problem((height, width), CONTENT_SIZE_MULTIPLE, MIN_CONTENT_SIZE)
    if problem:
        raise InfusionNetError(f"content {problem}")


def build_model(variant: str = "infusionnet", seed: Optional[int] = None, nf: int = 64) -> StyleTransferNetwork:
    """A network in eval mode on CPU; with ``seed``, deterministically initialised (untrained)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
    if seed is None:
        return VARIANTS[variant](nf).eval()
    devices = []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return VARIANTS[variant](nf).eval()
