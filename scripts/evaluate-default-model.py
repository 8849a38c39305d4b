#!/usr/bin/env python3
"""The default model's held-out evaluation: a grid of pairs that were not in training, and the
training losses, written to docs/default-model/ (README shows them).

    .venv/bin/python scripts/evaluate-default-model.py --run runs/default runs/default-texture \\
        --style ../shared/data/train/style/picabia_udnie_1913.jpg

    .venv/bin/python scripts/evaluate-default-model.py --style ../shared/data/train/style/picabia_udnie_1913.jpg \\
        --compare runs/mine/checkpoints/step_00000500.pth runs/mine/checkpoints/step_00001000.pth

(--compare: the checkpoints' numbers beside the bundled model's, each fall marked; the recipe
ships a model only if it is worse nowhere and its texture rose. --grid FILE with it writes their
results under the bundled model's, a row per model and held-out photo, to judge by eye too.)

Contents: scikit-image's astronaut, coffee and chelsea photographs (not in the recipe's training
set). Styles: the given held-out painting(s) and the sample textures hubble_deep_field, ihc and
retina (not in training either). Every image is resized and centre-cropped to --size, the
authors' test setting; the model is the bundled default unless --checkpoint is given. With
--style-size S the network reads the styles at SxS instead (as ``stylize --style-size``), while
the metrics still compare with the styles at --size: how the style's scale moves the results.

Beside the grid, held-out-metrics.md puts three numbers on "takes the style's colours and brush
texture while the content stays recognisable", per style (mean over the photos):

    colour gap closed  1 - d(result, style) / d(photo, style), where d compares the per-channel
                       mean and standard deviation in CIELAB (Euclidean, L*a*b* units): 0% is a
                       result as far from the style's palette as the photo, 100% the style's own
                       mean colour and contrast
    texture gap closed the same for the texture signature: per band of a 4-level Laplacian pyramid of
                       the lightness L*, the log of the band's RMS relative to L*'s standard
                       deviation (how the detail is spread over scales) and the log of its
                       kurtosis (sparse detail, stars or cells, against even detail). Colour and
                       contrast do not move it (a colour transfer of the photo scores ~0%), and it
                       is not what training optimizes (HED's features), so it checks the brush work
                       independently
    structure kept     correlation of the luminance gradient magnitudes of result and photo
                       (edges where the photo has them: 1 for the photo itself, ~0 for noise)

--style-loss also asks whether the training's style loss tells palettes apart: for each style it
prints the EFDM distances (HED VGG16's taps relu1_2 .. relu4_3, normalized as in training; the
pixels per RGB channel; the pixels along 64 fixed random colour directions, as
``train --style-pixel-slices`` compares them) of three images to the style, mean over the photos:
the photo itself, the photo moved to the style's palette (``colour_transfer``: the right colours,
no brush work) and the network's result. A loss that rewards the palette scores the colour
transfer well below the photo, and a wrongly coloured result above it
(docs/default-model/style-loss-diagnosis.md).
"""
import argparse
import csv
import sys
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from infusionnet.models.default_model import resolve_network
from infusionnet.models.networks import validate_style_size
from infusionnet.runtime import images, samples
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import OutputLocationError, check_output_location

HELD_OUT_CONTENT = ("astronaut", "coffee", "chelsea")
HELD_OUT_SAMPLE_STYLES = ("hubble_deep_field", "ihc", "retina")


def style_label(style: str) -> str:
    return style[len("sample:"):] if style.startswith("sample:") else Path(style).stem.split("_")[0]


def held_out_results(model, styles, size: int, style_size: Optional[int] = None):
    """The style images, and per held-out photo a row [photo, result per style] (uint8 RGB). The
    network reads each style at ``style_size`` (default ``size``); the style images returned, which
    the metrics compare against and the grid shows, are at ``size`` whatever it read."""

    def prepared(rgb, side=size):
        rgb, _ = images.prepare_image(rgb, images.Resize.square(side))
        return rgb, torch.from_numpy(images.normalize(rgb))

    decoded_styles = [samples.load_image_arg(s) for s in styles]  # each file decoded once
    style_images = [prepared(rgb)[0] for rgb in decoded_styles]
    rows = []
    with torch.inference_mode():
        kernels = [model.style_kernels(prepared(rgb, style_size or size)[1]) for rgb in decoded_styles]
        for name in HELD_OUT_CONTENT:
            rgb, tensor = prepared(samples.load_image_arg(f"sample:{name}"))
            features = model.encode_content(tensor)
            rows.append([rgb] + [images.denormalize(model.decode(features, k)[0].numpy())[0] for k in kernels])
    return style_images, rows


def _lab_moments(rgb: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2lab
    lab = rgb2lab(rgb).reshape(-1, 3)
    return np.concatenate([lab.mean(axis=0), lab.std(axis=0)])


def gap_closed(signature, photo: np.ndarray, result: np.ndarray, style: np.ndarray) -> float:
    """1 - |signature(result) - signature(style)| / |signature(photo) - signature(style)|."""
    target = signature(style)
    before = np.linalg.norm(signature(photo) - target)
    return float(1.0 - np.linalg.norm(signature(result) - target) / before) if before > 0 else 0.0


def colour_gap_closed(photo: np.ndarray, result: np.ndarray, style: np.ndarray) -> float:
    return gap_closed(_lab_moments, photo, result, style)


TEXTURE_BANDS = 4


def texture_signature(rgb: np.ndarray) -> np.ndarray:
    """Per Laplacian band of L*: log relative RMS and log kurtosis (see the module docstring)."""
    import cv2
    from skimage.color import rgb2lab
    lightness = rgb2lab(rgb)[..., 0].astype(np.float32)
    scale = float(lightness.std()) + 1e-3
    signature, level = [], lightness
    for _ in range(TEXTURE_BANDS):
        coarser = cv2.pyrDown(level)
        band = level - cv2.pyrUp(coarser, dstsize=(level.shape[1], level.shape[0]))
        rms = float(np.sqrt(np.mean(band ** 2))) + 1e-3  # a flat image has no band: no log(0)
        signature += [np.log(rms / scale), np.log(np.mean(band ** 4) / rms ** 4 + 1e-6)]
        level = coarser
    return np.array(signature)


def texture_gap_closed(photo: np.ndarray, result: np.ndarray, style: np.ndarray) -> float:
    return gap_closed(texture_signature, photo, result, style)


def structure_kept(photo: np.ndarray, result: np.ndarray) -> float:
    from skimage.color import rgb2gray
    from skimage.filters import sobel
    a, b = (sobel(rgb2gray(image)).ravel() for image in (photo, result))
    return float(np.corrcoef(a, b)[0, 1])


def colour_transfer(photo: np.ndarray, style: np.ndarray) -> np.ndarray:
    """``photo`` with the per-channel CIELAB mean and standard deviation of ``style``."""
    import warnings
    from skimage.color import lab2rgb, rgb2lab
    source, target = rgb2lab(photo), rgb2lab(style)
    moved = (source - source.mean((0, 1))) / (source.std((0, 1)) + 1e-6) * target.std((0, 1)) + target.mean((0, 1))
    with warnings.catch_warnings():  # out-of-gamut colours are clipped, which is what we want
        warnings.simplefilter("ignore")
        return (np.clip(lab2rgb(moved), 0, 1) * 255).round().astype(np.uint8)


def style_loss_table(style_images, rows, labels) -> str:
    """EFDM distances to each style per tap and on pixels (see --style-loss), mean over the photos."""
    from infusionnet.models.train.hed_vgg import load_hed_vgg
    from infusionnet.models.train.losses import colour_projections, efdm_loss, random_colour_directions
    vgg = load_hed_vgg("hed")
    torch.manual_seed(0)  # one fixed set of directions, so the sliced column is repeatable
    directions = random_colour_directions(64)

    def views(rgb: np.ndarray) -> list:
        """The maps compared: the four taps, the pixels, the pixels along the fixed directions."""
        pixels = torch.from_numpy(images.normalize(rgb))
        return vgg(pixels) + [pixels, colour_projections(pixels, directions)]

    lines = ["| style | image | relu1_2 | relu2_2 | relu3_3 | relu4_3 | taps total | pixels | sliced pixels |",
             "|---|---|---|---|---|---|---|---|---|"]
    with torch.inference_mode():
        for index, (label, style) in enumerate(zip(labels, style_images), 1):
            style_views = views(style)
            scores = {}
            for row in rows:
                photo, result = row[0], row[index]
                for name, image in (("photo", photo), ("colour transfer", colour_transfer(photo, style)),
                                    ("network", result)):
                    scores.setdefault(name, []).append(
                        [float(efdm_loss(o, s)) for o, s in zip(views(image), style_views)])
            for name, values in scores.items():
                mean = np.mean(values, axis=0)
                cells = " | ".join(f"{value:.2f}" for value in mean[:4])
                lines.append(f"| {label} | {name} | {cells} | {mean[:4].sum():.1f} | {mean[4]:.2f} | {mean[5]:.2f} |")
    return "\n".join(lines) + "\n"


def style_metrics(style_images, rows) -> list:
    """Per style, (colour gap closed, texture gap closed, structure kept), mean over the photos."""
    return [(float(np.mean([colour_gap_closed(row[0], row[index], style) for row in rows])),
             float(np.mean([texture_gap_closed(row[0], row[index], style) for row in rows])),
             float(np.mean([structure_kept(row[0], row[index]) for row in rows])))
            for index, style in enumerate(style_images, 1)]


def metrics_table(style_images, rows, labels) -> str:
    lines = ["| style | colour gap closed | texture gap closed | structure kept |", "|---|---|---|---|"]
    for label, (colour, texture, structure) in zip(labels, style_metrics(style_images, rows)):
        lines.append(f"| {label} | {colour * 100:.0f}% | {texture * 100:.0f}% | {structure:.2f} |")
    return "\n".join(lines) + "\n"


# A candidate counts as worse than the bundled model on a metric when it falls by more than this
# (the tables' own rounding: 1 point of a gap closed, 0.01 of structure).
WORSE_BY = (0.01, 0.01, 0.01)
METRIC_NAMES = ("colour", "texture", "structure")


def comparison_table(labels, baseline: list, candidates: dict) -> str:
    """Each candidate's metrics against the baseline's, per style, with the falls marked, and per
    candidate whether it is worse nowhere (the recipe ships a model only then, and only if its
    texture rose somewhere)."""
    def cell(value: float, index: int) -> str:
        return f"{value:.2f}" if index == 2 else f"{value * 100:.0f}%"

    names = list(candidates)
    lines = ["| style | metric | bundled | " + " | ".join(names) + " |", "|---|---|---|" + "---|" * len(names)]
    falls = {name: [] for name in names}
    for position, label in enumerate(labels):
        for index, metric in enumerate(METRIC_NAMES):
            cells = []
            for name in names:
                value, before = candidates[name][position][index], baseline[position][index]
                worse = value < before - WORSE_BY[index]
                if worse:
                    falls[name].append(f"{label} {metric}")
                cells.append(cell(value, index) + (" (worse)" if worse else ""))
            lines.append(f"| {label} | {metric} | {cell(baseline[position][index], index)} | "
                         + " | ".join(cells) + " |")
    lines.append("")
    for name in names:
        rose = any(candidates[name][p][1] > baseline[p][1] + WORSE_BY[1] for p in range(len(labels)))
        verdict = (f"worse on {', '.join(falls[name])}" if falls[name]
                   else "worse nowhere" + (", texture up" if rose else ", texture not up"))
        lines.append(f"{name}: {verdict}")
    return "\n".join(lines) + "\n"


def model_label(checkpoint: str) -> str:
    """A short name for a comparison grid's row: ``runs/x/checkpoints/step_00000500.pth`` is
    "x step 500", ``runs/x/final/model.safetensors`` is "x", anything else its file name's stem."""
    path = Path(checkpoint)
    if path.parent.name == "checkpoints" and path.stem.startswith("step_") and path.stem[5:].isdigit():
        return f"{path.parent.parent.name} step {int(path.stem[5:])}"
    if path.parent.name == "final":
        return path.parent.parent.name
    return path.stem


def comparison_sheet(style_images, labels, results: dict, height: int) -> np.ndarray:
    """The styles in a header row, then per held-out photo one row per model (``results``: a
    label -> held_out_results rows, in order), the label over the photo that starts the row."""
    rows, row_labels = [], []
    for index in range(len(HELD_OUT_CONTENT)):
        for label, model_rows in results.items():
            rows.append(model_rows[index])
            row_labels.append(label)
    return images.contact_sheet(style_images, labels, rows, height=height, row_labels=row_labels)


def joined_metrics(runs: list) -> list:
    """The metrics.csv rows of runs that follow one another (a run started with --init from the
    one before), each run's steps counted on from the previous run's last step."""
    rows, offset = [], 0
    for run in runs:
        with open(Path(run) / "metrics.csv", newline="") as f:
            run_rows = list(csv.DictReader(f))
        for row in run_rows:
            row["step"] = str(int(row["step"]) + offset)
        rows += run_rows
        offset = int(rows[-1]["step"]) if rows else offset
    return rows


def write_metrics(rows: list, destination: Path) -> None:
    with open(destination, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)


def plot_losses(rows: list, destination: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
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
    parser.add_argument("--run", nargs="+", default=[],
                        help="the training run folder(s), in order: their metrics.csv, joined, is plotted and copied")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--style-size", type=int, metavar="S",
                        help="the size the network reads the styles at (default: --size; stylize's "
                             "--style-size); the metrics still compare against the styles at --size")
    parser.add_argument("--style-loss", action="store_true",
                        help="also print the style loss's distances per tap (needs the HED loss network)")
    parser.add_argument("-o", "--output", default="docs/default-model")
    parser.add_argument("--compare", nargs="+", metavar="CKPT",
                        help="only print these checkpoints' metrics against the bundled default model's, "
                             "per style, with every fall marked")
    parser.add_argument("--grid", metavar="FILE",
                        help="with --compare: also write the results as a picture, a row per model and photo")
    args = parser.parse_args()
    styles = list(args.style) + [f"sample:{name}" for name in HELD_OUT_SAMPLE_STYLES]
    labels = [style_label(s) for s in styles]
    if args.style_size is not None:
        try:
            validate_style_size("infusionnet", args.style_size)
        except InfusionNetError as error:
            parser.error(f"--style-size: {error}")
    if args.grid and not args.compare:
        parser.error("--grid goes with --compare (without it the grid is written to --output)")
    if args.grid:
        if Path(args.grid).suffix.lower() not in (".png", ".jpg", ".jpeg"):
            parser.error(f"--grid {args.grid}: name a .png or .jpg file")
        try:
            check_output_location(args.grid)  # before the minutes of inference, not after
        except OutputLocationError as error:
            parser.error(str(error))
    if args.compare:
        def results_of(checkpoint):
            return held_out_results(resolve_network(checkpoint)[0], styles, args.size, args.style_size)

        baseline_images, baseline_rows = results_of(None)
        results = {name: results_of(name)[1] for name in args.compare}
        candidates = {name: style_metrics(baseline_images, rows) for name, rows in results.items()}
        print(comparison_table(labels, style_metrics(baseline_images, baseline_rows), candidates), end="")
        if args.grid:
            rows_by_label = {"bundled": baseline_rows}
            for name, rows in results.items():  # two files of one stem keep their whole names
                rows_by_label[name if model_label(name) in rows_by_label else model_label(name)] = rows
            images.write_image(args.grid, comparison_sheet(baseline_images, labels, rows_by_label, args.size))
            print(f"wrote {args.grid}")
        return 0
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    model = resolve_network(args.checkpoint)[0]
    style_images, rows = held_out_results(model, styles, args.size, args.style_size)
    images.write_image(output / "held-out-grid.jpg", images.contact_sheet(style_images, labels, rows, height=args.size))
    table = metrics_table(style_images, rows, labels)
    read_at = f", styles read at {args.style_size}x{args.style_size}" if args.style_size else ""
    (output / "held-out-metrics.md").write_text(
        f"# Held-out pairs of {args.checkpoint or 'the bundled default model'} ({', '.join(HELD_OUT_CONTENT)}, "
        f"{args.size}x{args.size}{read_at}; scripts/evaluate-default-model.py says what the columns mean)\n\n"
        + table)
    print(table + f"wrote {output / 'held-out-grid.jpg'} and {output / 'held-out-metrics.md'}")
    if args.style_loss:
        print(style_loss_table(style_images, rows, labels))
    if args.run:
        rows = joined_metrics(args.run)
        write_metrics(rows, output / "metrics.csv")
        plot_losses(rows, output / "losses.png")
        print(f"wrote {output / 'losses.png'} and {output / 'metrics.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
