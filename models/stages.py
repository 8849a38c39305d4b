"""The network run in the stages an export splits it into: style -> kernels, content + kernels -> image.

    kernels  = model.style_kernels(style)          {name: tensor}, names like AdaOctConv1_1.h.spatial
    stylized = decode(model, content, kernels)     the image only

The ONNX graphs (``infusionnet.export.graphs``) and the PyTorch backend (``models.torch_backend``)
both run these functions, so tensor names, layouts and arithmetic cannot drift between them.
"""
from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .blocks import upsample2


def decode(model: nn.Module, content: Tensor, kernels: Dict[str, Tensor]) -> Tensor:
    """The stylized image only. Calls netG directly: the batch is fixed and equal for content and
    kernels here, and ``model.decode``'s broadcast check compares shape entries, which are
    tensors (never equal as set members) while the legacy exporter traces."""
    high, low = model.netG.features(model.encode_content(content), kernels)
    return stylized_image(model.netG, high, low)


def stylized_image(decoder: nn.Module, high: Tensor, low: Tensor) -> Tensor:
    """``conv4(OctConv3_2((high, low))[0])`` with the 2x upsampling moved to the 3-channel end.

    OctConv3_2 ("last") computes ``r_h * convh(high) + r_l * convl(up2(low))`` and conv4 follows;
    all three convolutions are 1x1, and nearest upsampling commutes with 1x1 convolutions and
    sums, so the image equals ``conv4(r_h * convh(high)) + up2(W4 * (r_l * convl(low)))`` (conv4's
    bias added once). The graph then upsamples 3 channels instead of 32 and runs convl on a
    quarter of the pixels: the full-resolution Resize was the slowest one (8 ms of ~170 at
    512x512 on ONNX Runtime's CPU INT8). Same arithmetic, summed in another order.
    """
    last, conv4 = decoder.OctConv3_2, decoder.conv4
    if not all(conv.kernel_size == (1, 1) for conv in (last.convh, last.convl, conv4)):
        out, _, _ = last((high, low))
        return conv4(out)
    r_high, r_low = last.freq_ratio
    high_image = conv4(last.convh(high) * r_high)
    low_image = F.conv2d(last.convl(low) * r_low, conv4.weight)
    return high_image + upsample2(low_image)


def kernel_names(model: nn.Module) -> List[str]:
    """The kernel tensor names, in the model's order (a cheap forward on a dummy code)."""
    return list(kernel_shapes(model, 1))


def kernel_shapes(model: nn.Module, batch: int) -> Dict[str, Tuple[int, ...]]:
    channels = model.style_channels
    code = torch.zeros(batch, channels, 3, 3)
    with torch.no_grad():
        kernels = model.predict_kernels((code, code))
    return {name: tuple(tensor.shape) for name, tensor in kernels.items()}
