"""Sample grids: pictures of what the network does, for a person to look at during and after a run."""
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from infusionnet.runtime import images, samples

from ..networks import StyleTransferNetwork, validate_style_size


def write_batch_grid(path: Path, batch: Tuple[Tensor, Tensor, Tensor], step: int, rows: int = 4) -> None:
    """content | style | stylized for the first ``rows`` images of a training batch."""
    content, style, output = (images.denormalize(t[:rows].detach().float().cpu().numpy()) for t in batch)
    labels = ["content", "style", f"step {step}"]
    lines = [images.make_grid([c, s, o], labels=labels if i == 0 else None, height=min(256, c.shape[0]))
             for i, (c, s, o) in enumerate(zip(content, style, output))]
    images.write_image(path, images.stack_rows(lines))


@torch.no_grad()
def evaluate_samples(model: StyleTransferNetwork, path, size: int = 256, device="cpu",
                     content_names: Optional[Sequence[str]] = None,
                     style_names: Optional[Sequence[str]] = None) -> Path:
    """Stylize a fixed set of built-in sample pairs (``runtime.samples``) into one grid image:
    a header row of styles, then one row per content image (content, then its stylizations).
    Images are resized and centre-cropped to ``size`` as the authors' test does."""
    validate_style_size(model.variant, size)
    content_names = list(content_names or samples.sample_names("content"))
    style_names = list(style_names or samples.sample_names("style"))
    square = images.Resize.square(size)

    def load(name):
        rgb, _ = images.prepare_image(samples.load_sample(name), square)
        return rgb, torch.from_numpy(images.normalize(rgb)).to(device)

    was_training = model.training
    model.eval()
    try:
        styles = [load(name) for name in style_names]
        kernels = [model.style_kernels(tensor) for _, tensor in styles]
        blank = np.full((size, size, 3), 255, np.uint8)
        rows = [images.make_grid([blank] + [rgb for rgb, _ in styles], labels=[""] + style_names, height=size)]
        for name in content_names:
            rgb, tensor = load(name)
            features = model.encode_content(tensor)
            outputs = [images.denormalize(model.decode(features, k)[0].float().cpu().numpy())[0] for k in kernels]
            rows.append(images.make_grid([rgb] + outputs, height=size))
    finally:
        model.train(was_training)
    path = Path(path)
    images.write_image(path, images.stack_rows(rows))
    return path
