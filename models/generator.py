"""The generator netG (architecture.md, "netG Decoder"), shared by both networks.

Decoding is split in two stages that export and the runtime reuse: ``predict_kernels`` turns a
style code into a named set of per-layer kernels, and ``forward`` decodes content features with
such a set. Kernel names are ``<layer>.<half>.<part>``, e.g. ``AdaOctConv2_1.l.pointwise``.
"""
from collections import OrderedDict
from typing import Dict, Tuple

from torch import Tensor, nn

from .blocks import AdaOctConv, Octave, OctConv, OctConvAfterUpsample, upsample2

ADAPTIVE_LAYERS = ("AdaOctConv1_1", "AdaOctConv2_1", "AdaOctConv3_1")


class Decoder(nn.Module):
    def __init__(self, nf: int = 64, style_channels=(512, 512)):
        super().__init__()
        self.AdaOctConv1_1 = AdaOctConv(4 * nf, 4 * nf, group_div=1, style_channels=style_channels)
        self.OctConv1_2 = OctConv(4 * nf, 2 * nf, 1)
        self.oct_conv_aftup_1 = OctConvAfterUpsample(2 * nf, 2 * nf)
        self.AdaOctConv2_1 = AdaOctConv(2 * nf, 2 * nf, group_div=2, style_channels=style_channels)
        self.OctConv2_2 = OctConv(2 * nf, nf, 1)
        self.oct_conv_aftup_2 = OctConvAfterUpsample(nf, nf)
        self.AdaOctConv3_1 = AdaOctConv(nf, nf, group_div=4, style_channels=style_channels)
        self.OctConv3_2 = OctConv(nf, nf // 2, 1, kind="last")
        self.conv4 = nn.Conv2d(nf // 2, 3, 1)

    def predict_kernels(self, style: Octave) -> Dict[str, Tensor]:
        kernels = OrderedDict()
        for layer in ADAPTIVE_LAYERS:
            for name, tensor in getattr(self, layer).predict_kernels(style).items():
                kernels[f"{layer}.{name}"] = tensor
        return kernels

    def forward(self, content: Octave, kernels: Dict[str, Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
        """Returns (stylized, high-frequency image, low-frequency image), normalized space."""
        out, out_high, out_low = self.OctConv3_2(self.features(content, kernels))
        return self.conv4(out), self.conv4(out_high), self.conv4(out_low)

    def features(self, content: Octave, kernels: Dict[str, Tensor]) -> Octave:
        """Everything before the last octave convolution: the (high, low) input of ``OctConv3_2``."""
        def layer_kernels(layer):
            prefix = layer + "."
            return {k[len(prefix):]: v for k, v in kernels.items() if k.startswith(prefix)}

        out = self.AdaOctConv1_1.apply_kernels(content, layer_kernels("AdaOctConv1_1"))
        out = self.OctConv1_2(out)
        out = self.oct_conv_aftup_1((upsample2(out[0]), upsample2(out[1])))
        out = self.AdaOctConv2_1.apply_kernels(out, layer_kernels("AdaOctConv2_1"))
        out = self.OctConv2_2(out)
        out = self.oct_conv_aftup_2((upsample2(out[0]), upsample2(out[1])))
        return self.AdaOctConv3_1.apply_kernels(out, layer_kernels("AdaOctConv3_1"))
