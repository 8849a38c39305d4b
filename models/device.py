"""The torch device a ``--device`` option names, checked in one place for every command that
runs PyTorch (stylize, video, bench, train, the PyTorch backend)."""
import torch

from infusionnet.runtime.errors import InfusionNetError


def torch_device(name: str, error=InfusionNetError, option: str = "--device") -> torch.device:
    """``torch.device(name)`` for "cpu", "cuda" or "cuda:N". Raises ``error`` for anything else,
    and for CUDA when PyTorch sees no GPU: said before a model loads or any work starts."""
    if name != "cpu" and not name.startswith("cuda"):
        raise error(f"unknown torch device {name!r}: use cpu or cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise error(f"{option} {name} asked for, but PyTorch sees no CUDA GPU on this machine "
                    f"(use {option} cpu, or install a CUDA build of torch)")
    return torch.device(name)
