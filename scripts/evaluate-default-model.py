#!/usr/bin/env python3
"""The default model's held-out evaluation: a grid of pairs that were not in training, and the
training losses, written to docs/default-model/ (README shows them).

    .venv/bin/python scripts/evaluate-default-model.py --run runs/default \\
        --style ../shared/data/train/style/picabia_udnie_1913.jpg

Contents: scikit-image's astronaut, coffee and chelsea photographs (not in the recipe's training
set). Styles: the given held-out painting(s) and the sample textures hubble_deep_field, ihc and
retina (not in training either). Every image is resized and centre-cropped to --size, the
authors' test setting; the model is the bundled default unless --checkpoint is given.
"""
import argparse
import csv
import sys
from pathlib import Path

import numpy as np
import torch

from infusionnet.models.default_model import resolve_network
from infusionnet.runtime import images, samples

HELD_OUT_CONTENT = ("astronaut", "coffee", "chelsea")
HELD_OUT_SAMPLE_STYLES = ("hubble_deep_field", "ihc", "retina")


def held_out_grid(model, styles, size: int) -> np.ndarray:
    square = images.Resize.square(size)

    def load(argument):
        rgb, _ = images.prepare_image(samples.load_image_arg(argument), square)
        return rgb, torch.from_numpy(images.normalize(rgb))

    loaded_styles = [load(s) for s in styles]
    labels = [s[len("sample:"):] if s.startswith("sample:") else Path(s).stem.split("_")[0] for s in styles]
    rows = []
    with torch.inference_mode():
        kernels = [model.style_kernels(tensor) for _, tensor in loaded_styles]
        for name in HELD_OUT_CONTENT:
            rgb, tensor = load(f"sample:{name}")
            features = model.encode_content(tensor)
            rows.append([rgb] + [images.denormalize(model.decode(features, k)[0].numpy())[0] for k in kernels])
    return images.contact_sheet([rgb for rgb, _ in loaded_styles], labels, rows, height=size)


def plot_losses(metrics: Path, destination: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    with open(metrics, newline="") as f:
        rows = list(csv.DictReader(f))
    steps = [int(r["step"]) for r in rows]
    figure, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for axis, name in zip(axes, ("content", "style", "contrastive")):
        axis.plot(steps, [float(r[name]) for r in rows])
        axis.set_title(f"{name} loss")
        axis.set_xlabel("step")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(destination, dpi=90)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", help="default: the bundled default model")
    parser.add_argument("--style", nargs="*", default=[], help="held-out style images (paintings)")
    parser.add_argument("--run", help="the training run folder (its metrics.csv is plotted and copied)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("-o", "--output", default="docs/default-model")
    args = parser.parse_args()
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    model = resolve_network(args.checkpoint)[0]
    styles = list(args.style) + [f"sample:{name}" for name in HELD_OUT_SAMPLE_STYLES]
    grid = held_out_grid(model, styles, args.size)
    images.write_image(output / "held-out-grid.jpg", grid)
    print(f"wrote {output / 'held-out-grid.jpg'}")
    if args.run:
        metrics = Path(args.run) / "metrics.csv"
        (output / "metrics.csv").write_text(metrics.read_text())
        plot_losses(metrics, output / "losses.png")
        print(f"wrote {output / 'losses.png'} and {output / 'metrics.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
