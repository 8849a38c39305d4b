"""InfusionNet and AesFA in PyTorch, with the authors' state-dict names (architecture.md)."""
from infusionnet.runtime.fileio import file_sha256

from .blocks import AdaConv2d, AdaOctConv, KernelPredictor, OctConv, OctConvAfterUpsample
from .checkpoint import (CheckpointError, detect_variant, load_checkpoint,
                         save_checkpoint, save_official_checkpoint)
from .encoders import Encoder, StyleEncoder
from .generator import ADAPTIVE_LAYERS, Decoder
from .networks import (CONTENT_SIZE_MULTIPLE, MIN_CONTENT_SIZE, MIN_STYLE_SIZE, STYLE_SIZE_MULTIPLE, VARIANTS,
                       AesFA, InfusionNet, StyleTransferNetwork, build_model, validate_content_size,
                       validate_style_size)

__all__ = [
    "AdaConv2d", "AdaOctConv", "KernelPredictor", "OctConv", "OctConvAfterUpsample", "Encoder",
    "StyleEncoder", "Decoder", "ADAPTIVE_LAYERS", "InfusionNet", "AesFA", "StyleTransferNetwork",
    "VARIANTS", "MIN_STYLE_SIZE", "STYLE_SIZE_MULTIPLE", "CONTENT_SIZE_MULTIPLE", "MIN_CONTENT_SIZE",
    "validate_style_size", "validate_content_size", "build_model", "load_checkpoint", "save_checkpoint",
    "save_official_checkpoint", "detect_variant", "file_sha256", "CheckpointError",
]
