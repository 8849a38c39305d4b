#!/usr/bin/env python3
"""How much brush work the training objective itself asks for: per held-out pair, an image
optimised directly for the default model's perceptual loss (no network), scored with
scripts/evaluate-default-model.py's metrics beside the bundled model's result.

    .venv/bin/python scripts/loss-optimum.py --style ../shared/data/train/style/picabia_udnie_1913.jpg

Each image starts from the photo and takes --steps Adam steps (in RGB, kept within [0, 1]) on

    content weight * MSE(relu3_3 of image, of photo)
    + style weight * (EFDM over relu1_2 .. relu4_3 + pixel weight * sliced EFDM of the pixels)

with the last training phase's weights by default (content 10, style 25, pixel tap 10 along 8
random colour directions drawn anew each step: scripts/default-model-data.sh), HED's VGG16 as in
training. The style contrastive loss is left out: it compares the network's own style features,
and an image has none (it is 0.5% of the training loss). If the optimum closes little more of a
style's texture gap than the network does, more training on this objective cannot bring that
style's brush work; only another objective could (a lower content weight, --content-weight,
shows the trade against structure). The optimised images go into a grid, --output.
"""
import argparse
import importlib.util
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from infusionnet.models.default_model import resolve_network
from infusionnet.models.train.hed_vgg import load_hed_vgg
from infusionnet.models.train.losses import LossWeights, StyleTransferLoss
from infusionnet.runtime import images
from infusionnet.runtime.images.normalization import MEAN, STD


def _evaluation_script():
    """scripts/evaluate-default-model.py (held-out pairs and metrics), imported as a module."""
    path = Path(__file__).resolve().parent / "evaluate-default-model.py"
    spec = importlib.util.spec_from_file_location("evaluate_default_model", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def to_vgg_input(rgb01: torch.Tensor) -> torch.Tensor:
    """[0, 1] RGB -> the networks' normalized input (runtime.images.normalize's mapping)."""
    mean = torch.tensor(MEAN, dtype=rgb01.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, dtype=rgb01.dtype).view(1, 3, 1, 1)
    return (rgb01 - mean) / std


def optimised_image(vgg, photo: np.ndarray, style: np.ndarray, content_weight: float, style_weight: float,
                    pixel_weight: float, slices: int, steps: int, lr: float) -> np.ndarray:
    """The photo moved by ``steps`` Adam steps down the perceptual loss towards ``style`` (uint8 RGB)."""
    # Training's own content tap and style distance; the two terms are weighted below, and the
    # contrastive term (forward's) is not used.
    objective = StyleTransferLoss(vgg, LossWeights(), pixel_tap=pixel_weight, pixel_slices=slices)
    tap = objective.content_index

    def rgb01(image):
        return torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.0

    with torch.no_grad():
        content_target = vgg(to_vgg_input(rgb01(photo)), count=tap + 1)[tap]
        style_normalized = to_vgg_input(rgb01(style))
        style_taps = vgg(style_normalized)
    image = rgb01(photo).requires_grad_(True)
    optimizer = torch.optim.Adam([image], lr=lr)
    for step in range(1, steps + 1):
        optimizer.zero_grad()
        normalized = to_vgg_input(image)
        taps = vgg(normalized)
        loss = (content_weight * F.mse_loss(taps[tap], content_target)
                + style_weight * objective.style_distance(normalized, taps, style_normalized, style_taps))
        loss.backward()
        optimizer.step()
        if step in (1, steps // 2, steps):  # the loss still falling at the end means more --steps
            print(f"  step {step}: loss {loss.item():.2f}", file=sys.stderr, flush=True)
        with torch.no_grad():
            image.clamp_(0.0, 1.0)
    return np.rint(image.detach()[0].permute(1, 2, 0).numpy() * 255.0).astype(np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--style", nargs="*", default=[], help="held-out style images (paintings)")
    parser.add_argument("--samples", nargs="*", default=None, metavar="NAME",
                        help="held-out sample styles (default: all of evaluate-default-model.py's)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--content-weight", type=float, nargs="+", default=[10.0],
                        help="one optimum per weight (default: the last training phase's 10)")
    parser.add_argument("--style-weight", type=float, default=25.0)
    parser.add_argument("--pixel-weight", type=float, default=10.0)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--lr", type=float, default=0.01, help="Adam's step in [0, 1] RGB units")
    parser.add_argument("-o", "--output", default="outputs/loss-optimum",
                        help="folder for the grid of optimised images (one per content weight)")
    args = parser.parse_args()
    evaluate = _evaluation_script()
    if args.samples is None:
        args.samples = list(evaluate.HELD_OUT_SAMPLE_STYLES)
    styles = list(args.style) + [f"sample:{name}" for name in args.samples]
    labels = [evaluate.style_label(s) for s in styles]
    torch.manual_seed(0)
    style_images, network_rows = evaluate.held_out_results(resolve_network(None)[0], styles, args.size)
    vgg = load_hed_vgg("hed")
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    candidates = {}
    for weight in args.content_weight:
        rows = []
        for row in network_rows:
            photo = row[0]
            rows.append([photo] + [optimised_image(vgg, photo, style, weight, args.style_weight, args.pixel_weight,
                                                   args.slices, args.steps, args.lr) for style in style_images])
            print(f"content weight {weight:g}: {len(rows)}/{len(network_rows)} photos", file=sys.stderr, flush=True)
        name = f"optimum, content weight {weight:g}"
        candidates[name] = evaluate.style_metrics(style_images, rows)
        grid = output / f"content-{weight:g}.jpg"
        images.write_image(grid, images.contact_sheet(style_images, labels, rows, height=args.size))
        print(f"wrote {grid}", file=sys.stderr)
    print(f"Baseline: the bundled default model. {args.steps} Adam steps at lr {args.lr}, style weight "
          f"{args.style_weight:g}, pixel weight {args.pixel_weight:g} along {args.slices} directions, {args.size} px.\n")
    print(evaluate.comparison_table(labels, evaluate.style_metrics(style_images, network_rows), candidates), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
