"""Training InfusionNet / AesFA (architecture.md "Training"; docs/training.md).

``Trainer`` runs the authors' recipe on one CPU or GPU, or on several processes launched by
``torchrun`` (DistributedDataParallel; NCCL on GPUs, Gloo on CPUs):

* objective: ``losses.StyleTransferLoss`` (content + EFDM style + style contrastive);
* one Adam per network, as the released code (``optim_E``, ``optim_S``, ``optim_G``), each with
  a per-iteration LR schedule;
* optional gradient clipping, bf16/fp16 autocast (a GradScaler for fp16), gradient accumulation;
* checkpoints in the authors' layout plus the resume state (``state``), so that
  ``load_checkpoint`` / ``infusionnet export`` take the file directly (they ignore the extra keys);
* rank 0 alone logs (``reporting``: progress bar, ``metrics.csv``, optional TensorBoard), writes
  sample grids (``sample_grids``) and checkpoints.

``--batch-size`` is per process, as in the released code; the contrastive loss picks its
negatives inside each process's batch. Data are a deterministic function of the step
(``data.PairStream``), so a resumed run continues exactly where the interrupted one was.
"""
import json
import math
import signal
import sys
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Dict, Optional, Sequence

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from infusionnet.runtime.fileio import atomic_path

from ..checkpoint import (PARTS, detect_variant, load_checkpoint, read_project_config, save_checkpoint,
                          save_official_checkpoint)
from ..networks import StyleTransferNetwork, build_model
from .config import TrainConfig, TrainingError, lr_factor
from .data import DrawSampler, PairStream, make_loader
from .hed_vgg import is_hed_spec, load_hed_vgg
from .losses import StyleTransferLoss, VGGEncoder, load_vgg, output_side, random_vgg, style_side
from .processes import make_deterministic, seed_everything, setup_processes
from .reporting import METRICS, MetricsLogger, TrainingProgress
from .sample_grids import evaluate_samples, write_batch_grid
from .state import OPTIMIZER_KEYS, SCHEDULER_KEYS, STATE_FORMAT, read_training_state, rng_state, set_rng_state


def loss_network(config: TrainConfig) -> nn.Module:
    """The frozen perceptual network ``config.vgg`` names: AdaIN's vgg_normalised.pth (VGG-19), the
    HED VGG16 ("hed", a HED .h5 or its converted .safetensors), or a seeded random VGG-19 (tests)."""
    if config.vgg is None:
        return random_vgg(config.vgg_seed, config.vgg_taps)
    if is_hed_spec(config.vgg):
        return load_hed_vgg(config.vgg)
    return load_vgg(config.vgg, config.vgg_taps)


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
        self.memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
        self.model = initial.to(self.device, memory_format=self.memory_format).train()
        vgg = vgg if vgg is not None else loss_network(config)
        vgg = vgg.to(self.device, memory_format=self.memory_format)
        self.loss = StyleTransferLoss(vgg, config.loss_weights(), config.negatives,
                                      pixel_tap=config.style_pixel_tap,
                                      pixel_slices=config.style_pixel_slices,
                                      content_tap=config.content_tap)
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
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.network = DistributedDataParallel(self.network, device_ids=ids, broadcast_buffers=False)

        self.step = 0
        self.skipped_files: set = set()
        if resume is not None:
            self.load_state(resume)
        self.dataset = PairStream.from_folders(config.content_dir, config.style_dir, crop=config.crop,
                                               load_size=config.load_size, resize_mode=config.resize_mode,
                                               seed=config.seed, augment=config.augment,
                                               augment_tone=config.augment_tone)
        self._stop = False
        self._last_batch = None

    def _initial_model(self) -> StyleTransferNetwork:
        if self.config.init is None:
            return build_model(self.config.variant, seed=self.config.seed)
        model = load_checkpoint(self.config.init)
        if model.variant != self.config.variant:
            raise TrainingError(f"{self.config.init}: holds {model.variant} weights, but --variant is "
                                f"{self.config.variant}")
        # Kept in the run's config, so the final weights count their whole training even when a
        # resumed run no longer finds these (the authors' format records no steps: 0).
        self.config.init_steps = int(read_project_config(Path(self.config.init)).get("trained_steps", 0))
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
            content = batch["content"].to(self.device, non_blocking=True, memory_format=self.memory_format)
            style = batch["style"].to(self.device, non_blocking=True, memory_format=self.memory_format)
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
        window_start = time.perf_counter()  # it_per_s: steps over wall time between logged steps
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
                            # Logging reads the losses, so the device has finished the window's steps.
                            speed = since_log / max(time.perf_counter() - window_start, 1e-9)
                            logger.write(self.step, means, lr, speed, skipped)
                            progress.show(means, skipped)
                        running = {name: torch.zeros((), device=self.device) for name in METRICS}
                        since_log = 0
                        window_start = time.perf_counter()
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
                                    extra={"trained_steps": config.init_steps + self.step})
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
        if self._last_batch is not None:
            write_batch_grid(path, self._last_batch, self.step, rows)


def train(config: TrainConfig, resume: Optional[str] = None, overwrite: bool = False,
          vgg: Optional[VGGEncoder] = None) -> dict:
    """Build a trainer, run it, leave the process group; returns the summary."""
    trainer = Trainer(config, vgg=vgg, resume=resume, overwrite=overwrite)
    try:
        return trainer.train()
    finally:
        trainer.close()
