"""Loading and saving checkpoints.

Two formats are read:

* the authors' layout: a ``torch.save`` dict ``{'netE', 'netS', 'netG'}`` of state dicts
  (optimizer states ``optim_*`` ignored, a DataParallel ``module.`` prefix tolerated), read with
  ``torch.load(weights_only=True)`` so no pickled code ever runs;
* this project's layout: ``NAME.safetensors`` (flat ``netE.*``/``netS.*``/``netG.*`` tensors)
  plus ``NAME.json`` beside it with the network config. The config is also stored in the
  safetensors header, so the weights file alone is enough.

Every problem raises ``CheckpointError`` whose message names the file and what is wrong.
"""
import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Dict, Optional, Union

import torch

from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.fileio import atomic_path
from infusionnet.runtime.lazy import lazy_import

from .networks import StyleTransferNetwork, build_model

# The project format; the authors' .pth checkpoints load without safetensors installed.
safetensors = lazy_import("safetensors")
safetensors_torch = lazy_import("safetensors.torch")

PARTS = ("netE", "netS", "netG")
PROJECT_FORMAT = "infusionnet-edge/1"
# Keys only one variant has (architecture.md, "AesFA").
VARIANT_MARKERS = {"infusionnet": "netS.OctConv3_1_high.", "aesfa": "netE.OctConv1_3."}

PathLike = Union[str, os.PathLike]


class CheckpointError(InfusionNetError, ValueError):
    """A checkpoint could not be read; the message names the file and the problem."""


def load_checkpoint(path: PathLike, variant: Optional[str] = None) -> StyleTransferNetwork:
    """The full network of a checkpoint, in eval mode on CPU, loaded strictly."""
    path = Path(path)
    state = read_state_dict(path)
    detected = detect_variant(state, path)
    if variant is not None and variant != detected:
        raise CheckpointError(f"{path}: asked for variant {variant!r} but the checkpoint holds {detected!r}")
    config = read_project_config(path)
    if config.get("variant", detected) != detected:
        raise CheckpointError(f"{path}: its config says variant {config['variant']!r} but the weights "
                              f"are {detected!r}")
    model = build_model(detected, nf=int(config.get("nf", 64)))
    check_state_dict(model, state, path)
    model.load_state_dict(state, strict=True)
    return model.eval()


def read_state_dict(path: Path) -> Dict[str, torch.Tensor]:
    """Flat ``netE.*/netS.*/netG.*`` tensors from either format."""
    if path.is_dir():
        raise CheckpointError(f"{path}: is a directory, expected a checkpoint file (.pth or .safetensors)")
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: file is empty")
    if path.suffix == ".safetensors" or _starts_like_safetensors(path):
        return _read_safetensors(path)
    return _read_official(path)


def _read_official(path: Path) -> Dict[str, torch.Tensor]:
    with open(path, "rb") as f:
        head = f.read(4)
    is_zip, is_pickle = head.startswith(b"PK\x03\x04"), head[:1] == b"\x80"
    if not (is_zip or is_pickle):
        raise CheckpointError(f"{path}: not a PyTorch checkpoint (unrecognised file header {head!r})")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only" in str(error).lower():
            raise CheckpointError(
                f"{path}: contains pickled objects other than tensors and plain containers; "
                "refusing to load it (that would execute code from the file)") from None
        raise CheckpointError(f"{path}: truncated or corrupt ({_first_line(error)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(f"{path}: truncated or corrupt ({_first_line(error)})") from None
    if not isinstance(loaded, dict):
        raise CheckpointError(f"{path}: not an InfusionNet/AesFA checkpoint (holds a {type(loaded).__name__}, "
                              "expected a dict with netE, netS, netG)")
    if all(part in loaded for part in PARTS):
        state = {}
        for part in PARTS:
            if not isinstance(loaded[part], dict):
                raise CheckpointError(f"{path}: {part} is a {type(loaded[part]).__name__}, expected a state dict")
            for key, tensor in loaded[part].items():
                state[f"{part}.{_strip_module(key)}"] = tensor
        return state
    flat = {_strip_module(k): v for k, v in loaded.items() if isinstance(v, torch.Tensor)}
    if flat and all(k.split(".", 1)[0] in PARTS for k in flat):
        return flat  # already flat (a whole-network state_dict)
    raise CheckpointError(f"{path}: not an InfusionNet/AesFA checkpoint: expected keys netE, netS, netG; "
                          f"found {_preview(loaded.keys())}")


def torch_load_weights_only(path: Path, error: type, what: str):
    """``torch.load(weights_only=True)`` of ``path``; any failure becomes ``error`` with a one-line
    message naming the file (``what`` says what the file was meant to hold)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file; all mean "unusable"
        raise error(f"{path}: cannot read {what} ({_first_line(exc)[:200]})") from None


def _read_safetensors(path: Path) -> Dict[str, torch.Tensor]:
    try:
        return safetensors_torch.load_file(str(path))
    except (safetensors.SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(f"{path}: truncated or corrupt safetensors file ({_first_line(error)})") from None


def read_project_config(path: Path) -> dict:
    """The project format's config: ``NAME.json`` beside the weights, else the safetensors header.
    Empty for the authors' format."""
    sidecar = path.with_suffix(".json")
    if path.suffix == ".safetensors" and sidecar.is_file():
        try:
            return json.loads(sidecar.read_text())
        except (ValueError, OSError) as error:
            raise CheckpointError(f"{sidecar}: unreadable checkpoint config ({_first_line(error)})") from None
    if path.suffix == ".safetensors" or _starts_like_safetensors(path):
        with safetensors.safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        return json.loads(metadata.get("infusionnet_config", "{}"))
    return {}


def _starts_like_safetensors(path: Path) -> bool:
    # safetensors: 8-byte little-endian header length, then a JSON object.
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def detect_variant(state: Dict[str, torch.Tensor], path: Path = Path("<checkpoint>")) -> str:
    found = [name for name, marker in VARIANT_MARKERS.items() if any(k.startswith(marker) for k in state)]
    if len(found) != 1:
        markers = " or ".join(f"{m}*" for m in VARIANT_MARKERS.values())
        raise CheckpointError(f"{path}: cannot tell the variant (expected keys {markers}, "
                              f"found {'both' if found else 'neither'})")
    return found[0]


def check_state_dict(model: StyleTransferNetwork, state: Dict[str, torch.Tensor], path: Path) -> None:
    """Explain every mismatch before ``load_state_dict`` would fail on the first one."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    problems = []
    if missing:
        problems.append(f"missing keys: {_preview(missing)}")
    if unexpected:
        problems.append(f"unexpected keys: {_preview(unexpected)}")
    mismatched = [f"{k} (expected {tuple(expected[k].shape)}, found {tuple(state[k].shape)})"
                  for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if mismatched:
        problems.append(f"shape mismatches: {_preview(mismatched)}")
    if problems:
        raise CheckpointError(f"{path}: does not fit {model.variant}: " + "; ".join(problems))


def save_checkpoint(model: StyleTransferNetwork, path: PathLike, extra: Optional[dict] = None) -> Path:
    """Write the project format (``NAME.safetensors`` + ``NAME.json``) atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")  # "model.v2" -> "model.v2.safetensors"
    config = dict(model.config, format=PROJECT_FORMAT, **(extra or {}))
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    # Both files are written first and renamed only when both succeeded, so the weights and the
    # config beside them never come from different saves.
    with atomic_path(path) as weights_tmp, atomic_path(path.with_suffix(".json")) as config_tmp:
        safetensors_torch.save_file(tensors, str(weights_tmp), metadata={"infusionnet_config": json.dumps(config)})
        config_tmp.write_text(json.dumps(config, indent=2) + "\n")
    return path


def save_official_checkpoint(model: StyleTransferNetwork, path: PathLike, extra: Optional[dict] = None) -> Path:
    """Write the authors' layout ``{'netE','netS','netG', **extra}`` atomically."""
    path = Path(path)
    payload = {part: getattr(model, part).state_dict() for part in PARTS}
    payload.update(extra or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def _strip_module(key: str) -> str:
    return key[len("module."):] if key.startswith("module.") else key


def _first_line(error: BaseException) -> str:
    """The first sentence of an exception's message: enough to tell what failed."""
    text = str(error).strip().splitlines()
    return text[0].split(". ")[0].rstrip(".") if text else type(error).__name__


def _preview(items, limit: int = 8) -> str:
    items = [str(i) for i in items]
    shown = ", ".join(items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")
