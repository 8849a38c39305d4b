"""Loading the network a ``--checkpoint`` value selects (``runtime.model_choice`` has the facts).

The bundled default, ``weights/infusionnet-default.safetensors`` (+ ``.json``), is stored in
float16 and loaded into float32 parameters; ``scripts/train-default-model.sh`` rebuilds it.
"""
from pathlib import Path
from typing import Optional, Tuple

from infusionnet.runtime.fileio import file_sha256
from infusionnet.runtime.model_choice import DEFAULT_CHECKPOINT_NAME, UNTRAINED, is_untrained, untrained_sha

from .checkpoint import CheckpointError, load_checkpoint
from .networks import StyleTransferNetwork, build_model

DEFAULT_CHECKPOINT = Path(__file__).resolve().parent / "weights" / DEFAULT_CHECKPOINT_NAME


def default_checkpoint() -> Path:
    if not DEFAULT_CHECKPOINT.is_file():
        raise CheckpointError(f"{DEFAULT_CHECKPOINT}: the bundled default model is missing from this "
                              "installation; reinstall infusionnet-edge or pass --checkpoint")
    return DEFAULT_CHECKPOINT


def resolve_network(checkpoint: Optional[str], variant: Optional[str] = None,
                    seed: int = 0) -> Tuple[StyleTransferNetwork, dict]:
    """(network in eval mode, {"file", "sha256"} for manifests and results) for a ``--checkpoint``
    value: None -> the bundled default, "untrained" -> the seeded untrained network, else a file."""
    if is_untrained(checkpoint):
        return build_model(variant or "infusionnet", seed=seed), {"file": None, "sha256": untrained_sha(seed)}
    path = Path(checkpoint) if checkpoint else default_checkpoint()
    if not checkpoint and variant not in (None, "infusionnet"):
        raise CheckpointError(f"the bundled default model is InfusionNet, not {variant}: pass --checkpoint "
                              f"(for AesFA, the authors' main.pth) or --checkpoint {UNTRAINED}")
    model = load_checkpoint(path, variant=variant)
    return model, {"file": path.name, "sha256": file_sha256(path)}
