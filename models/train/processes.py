"""Processes and devices of a run: one CPU or GPU, or one process per GPU under ``torchrun``
(DistributedDataParallel; NCCL on GPUs, Gloo on CPUs), and the seeding that makes runs repeatable.
"""
import os
import random
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
import torch.distributed as dist

from ..device import torch_device
from .config import TrainingError


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
    if cuda:
        torch_device("cuda", TrainingError)  # refuses a machine where PyTorch sees no GPU
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
