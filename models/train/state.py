"""The resume state in a training checkpoint, and reading it back for ``--resume``.

A checkpoint (``Trainer.state_dict``) holds the authors' layout ``{'netE','netS','netG',
'optim_E','optim_S','optim_G'}`` plus the schedulers, scaler, step, RNG states and the config,
all plain tensors and containers: ``torch.load(weights_only=True)`` reads it, and no class of
this project is pickled into it, so moving code never breaks resuming an older run.
"""
import random
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

from ..checkpoint import PARTS, torch_load_weights_only
from .config import REPRODUCIBILITY_KEYS, TrainConfig, TrainingError

STATE_FORMAT = "infusionnet-edge-train/1"
OPTIMIZER_KEYS = {"E": "optim_E", "S": "optim_S", "G": "optim_G"}
SCHEDULER_KEYS = {"E": "sched_E", "S": "sched_S", "G": "sched_G"}


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
        # A key the stored config predates has its default there (TrainConfig.from_dict).
        before = getattr(config, key, None)
        if (key in REPRODUCIBILITY_KEYS or schedule_follows) and hasattr(config, key) and before != value:
            notes.append(f"{key} changed from {before!r} to {value!r}: the resumed steps will not "
                         "reproduce the original run")
        setattr(config, key, value)
    return config, notes
