"""Encoders (architecture.md, "InfusionNet" and "AesFA").

``Encoder`` is netE of both networks (and netS of AesFA); AesFA's version adds two full 3x3
octave convolutions (``OctConv1_3``, ``OctConv2_3``). ``StyleEncoder`` is InfusionNet's netS,
applied to netE's output for the style image.
"""
from torch import Tensor, nn

from .blocks import LEAKY_SLOPE, Octave, OctConv, oct_leaky_relu


class Encoder(nn.Module):
    """RGB image (B,3,H,W) -> octave features hf (B,4nf/2,H/4,W/4), lf (B,4nf/2,H/8,W/8)."""

    def __init__(self, in_channels: int = 3, nf: int = 64, extra_convs: bool = False):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, nf, 7, padding=3)
        self.OctConv1_1 = OctConv(nf, nf, 3, 2, 1, kind="first")
        self.OctConv1_2 = OctConv(nf, 2 * nf, 1)
        if extra_convs:
            self.OctConv1_3 = OctConv(2 * nf, 2 * nf, 3, 1, 1)
        self.OctConv2_1 = OctConv(2 * nf, 2 * nf, 3, 2, 1, groups=2 * nf)
        self.OctConv2_2 = OctConv(2 * nf, 4 * nf, 1)
        if extra_convs:
            self.OctConv2_3 = OctConv(4 * nf, 4 * nf, 3, 1, 1)
        self.layer_names = [name for name in ("OctConv1_1", "OctConv1_2", "OctConv1_3", "OctConv2_1",
                                              "OctConv2_2", "OctConv2_3") if hasattr(self, name)]

    def forward(self, x: Tensor) -> Octave:
        out = self.conv(x)
        for name in self.layer_names:
            out = oct_leaky_relu(getattr(self, name)(out))
        return out


class StyleEncoder(nn.Module):
    """InfusionNet's netS: Encoder features (256 octave channels) -> style code, two
    (B, 512, 3, 3) tensors. Both halves end at 1/32 of the style image's size."""

    def __init__(self, in_channels: int = 256, style_channels: int = 512):
        super().__init__()
        half = in_channels // 2
        self.OctConv1_1 = OctConv(in_channels, in_channels, 3, 2, 1, groups=in_channels)
        self.OctConv1_2 = OctConv(in_channels, 2 * in_channels, 1)
        self.OctConv2_1 = OctConv(2 * in_channels, 2 * in_channels, 3, 2, 1, groups=2 * in_channels)
        self.OctConv2_2 = OctConv(2 * in_channels, 2 * in_channels, 1)
        self.OctConv3_1_high = nn.Conv2d(2 * half, 2 * half, 3, 2, 1, groups=2 * half,
                                         padding_mode="reflect")
        self.OctConv3_2_high = nn.Conv2d(2 * half, style_channels, 1)
        self.OctConv3_1_low = nn.Conv2d(2 * half, 2 * half, 3, 1, 1, groups=2 * half,
                                        padding_mode="reflect")
        self.OctConv3_2_low = nn.Conv2d(2 * half, style_channels, 1)
        # A module (not a function call) so that export can swap in static pooling windows.
        self.pool = nn.AdaptiveAvgPool2d(3)
        self.act = nn.LeakyReLU(LEAKY_SLOPE)

    def forward(self, features: Octave) -> Octave:
        out = features
        for layer in (self.OctConv1_1, self.OctConv1_2, self.OctConv2_1, self.OctConv2_2):
            out = oct_leaky_relu(layer(out))
        high = self.act(self.OctConv3_2_high(self.act(self.OctConv3_1_high(out[0]))))
        low = self.act(self.OctConv3_2_low(self.act(self.OctConv3_1_low(out[1]))))
        return self.pool(high), self.pool(low)
