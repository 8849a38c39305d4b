#!/usr/bin/env python3
"""Does the style loss tell palettes apart? EFDM style distances of held-out pairs, per tap.

    .venv/bin/python scripts/style-loss-diagnosis.py [--checkpoint CKPT] [--style PAINTING ...]

For each held-out style (the given paintings and the sample textures) and the held-out photos of
scripts/evaluate-default-model.py, three candidate images are scored against the style with the
training's EFDM loss on HED's VGG16 taps (relu1_2 .. relu4_3, normalized as in training) and on
the pixels themselves:

    photo            the content photo, unchanged
    colour transfer  the photo moved to the style's palette (per-channel mean and standard
                     deviation in CIELAB): the right colours, no brush work
    network          the model's result

A style loss that rewards the style's palette scores the colour transfer well below the photo and
a wrongly coloured result above it. Prints a Markdown table (mean over the photos).
"""
import argparse
import sys
import warnings

import numpy as np
import torch

from infusionnet.models.default_model import resolve_network
from infusionnet.models.train.hed_vgg import load_hed_vgg
from infusionnet.models.train.losses import efdm_loss
from infusionnet.runtime import images, samples

PHOTOS = ("astronaut", "coffee", "chelsea")
SAMPLE_STYLES = ("hubble_deep_field", "ihc", "retina")


def colour_transfer(photo: np.ndarray, style: np.ndarray) -> np.ndarray:
    from skimage.color import lab2rgb, rgb2lab
    source, target = rgb2lab(photo), rgb2lab(style)
    moved = (source - source.mean((0, 1))) / (source.std((0, 1)) + 1e-6) * target.std((0, 1)) + target.mean((0, 1))
    with warnings.catch_warnings():  # out-of-gamut colours are clipped, which is what we want
        warnings.simplefilter("ignore")
        return (np.clip(lab2rgb(moved), 0, 1) * 255).round().astype(np.uint8)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="default: the bundled default model")
    parser.add_argument("--style", nargs="*", default=[], help="held-out style images (paintings)")
    parser.add_argument("--size", type=int, default=256)
    args = parser.parse_args()
    model = resolve_network(args.checkpoint)[0]
    vgg = load_hed_vgg("hed")
    square = images.Resize.square(args.size)

    def load(argument: str) -> np.ndarray:
        return images.prepare_image(samples.load_image_arg(argument), square)[0]

    def tensor(rgb: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(images.normalize(rgb))

    print("| style | image | relu1_2 | relu2_2 | relu3_3 | relu4_3 | taps total | pixels |")
    print("|---|---|---|---|---|---|---|---|")
    for style_arg in list(args.style) + [f"sample:{name}" for name in SAMPLE_STYLES]:
        style = load(style_arg)
        scores = {}
        with torch.inference_mode():
            style_taps = vgg(tensor(style))
            for photo_name in PHOTOS:
                photo = load(f"sample:{photo_name}")
                result = images.denormalize(model(tensor(photo), tensor(style)).numpy())[0]
                for name, image in (("photo", photo), ("colour transfer", colour_transfer(photo, style)),
                                    ("network", result)):
                    taps = [float(efdm_loss(o, s)) for o, s in zip(vgg(tensor(image)), style_taps)]
                    scores.setdefault(name, []).append(taps + [float(efdm_loss(tensor(image), tensor(style)))])
        label = style_arg[len("sample:"):] if style_arg.startswith("sample:") else style_arg.rsplit("/", 1)[-1]
        for name, rows in scores.items():
            mean = np.mean(rows, axis=0)
            cells = " | ".join(f"{value:.2f}" for value in mean[:4])
            print(f"| {label} | {name} | {cells} | {mean[:4].sum():.1f} | {mean[4]:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
