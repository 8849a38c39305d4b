"""PyTorch backend: the reference every exported form is checked against, and the fallback.

It runs the model's stages under the ONNX graphs' roles and tensor names, so any caller can swap
it for the ONNX Runtime or TensorRT backend:

    full     content, style            -> stylized
    style    style                     -> the kernel tensors (AdaOctConv1_1.h.spatial, ...)
    content  content + kernel tensors  -> stylized
    baked    content                   -> stylized (one style's kernels, computed at construction)

The stages are the export's own (``models.stages.decode``, ``model.style_kernels``), so names and
layouts cannot drift from the ONNX graphs.

It speaks the runtime's ``Backend`` interface but lives with the networks it runs: the runtime
stays torch-free and imports nothing above it. Importing this module registers the backend
under the name "torch" (``runtime.stylizer.register_backend``), so that ``Stylizer(...,
backend="torch")`` and ``make_backends`` build it like the runtime's own backends.
"""
import copy
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from infusionnet.runtime import images, samples
from infusionnet.runtime.backend import Arrays, Backend, BackendError
from infusionnet.runtime.fileio import file_sha256
from infusionnet.runtime.limits import MAX_WORK_PIXELS
from infusionnet.runtime.manifest import (CONTENT, GRAPH_KINDS, HEIGHT, ROLES, STYLE, STYLIZED, WIDTH, Manifest,
                                          TensorSpec)
from infusionnet.runtime.model_choice import untrained_seed
from infusionnet.runtime.sizes import MIN_SIZE
from infusionnet.runtime.stylizer import Stylizer, register_backend

from .checkpoint import load_checkpoint
from .default_model import DEFAULT_CHECKPOINT
from .device import torch_device
from .networks import StyleTransferNetwork, build_model
from .stages import decode, kernel_shapes


def role_specs(model, role: str, batch: int, content_size: Optional[Tuple[int, int]], style_size: int,
               ) -> Tuple[List[Any], List[Any]]:
    """(inputs, outputs) of a role as the export would write them; ``content_size`` None = dynamic."""
    height, width = content_size if content_size else (HEIGHT, WIDTH)
    content = TensorSpec(CONTENT, (batch, 3, height, width), "float32")
    style = TensorSpec(STYLE, (batch, 3, style_size, style_size), "float32")
    stylized = TensorSpec(STYLIZED, (batch, 3, height, width), "float32")
    kernels = [TensorSpec(name, shape, "float32") for name, shape in kernel_shapes(model, batch).items()]
    table = {"full": ([content, style], [stylized]), "style": ([style], kernels),
             "content": ([content] + kernels, [stylized]), "baked": ([content], [stylized])}
    if role not in table:
        raise BackendError(f"unknown graph role {role!r}: use one of {', '.join(table)}")
    return table[role]


class TorchBackend(Backend):
    """``TorchBackend(model, role, inputs, outputs)`` runs ``model`` (a StyleTransferNetwork).

    device: "cpu" or "cuda"; fp16 computes in half precision (inputs and host outputs stay
    float32, like the ONNX graphs'); channels_last uses NHWC memory for the convolutions;
    compile wraps the stage in ``torch.compile`` (backend ``compile_backend``). A baked role
    needs ``baked_style``: the style image as a normalized float32 (1|B, 3, S, S) array.
    The given model is never modified: conversions happen on a copy.
    """

    kind = "torch"

    def __init__(self, model, role: str, inputs: Sequence[Any], outputs: Sequence[Any], device: str = "cpu",
                 fp16: bool = False, channels_last: bool = False, compile: bool = False,
                 compile_backend: str = "inductor", baked_style: Optional[np.ndarray] = None):
        super().__init__(role, inputs, outputs)
        if role not in ROLES:
            raise BackendError(f"unknown graph role {role!r}: use {', '.join(ROLES)}")
        if role == "baked" and baked_style is None:
            raise BackendError("a baked torch graph needs the style image it was baked with (baked_style)")
        self.model = model
        self.device_name = device
        self.fp16 = fp16
        self.channels_last = channels_last
        self.compile = compile
        self.compile_backend = compile_backend
        self.baked_style = baked_style
        torch_device(device, BackendError)

    @classmethod
    def from_graph(cls, graph, model, **options) -> "TorchBackend":
        """Mirror a manifest ``GraphEntry``: same role and tensor specs."""
        return cls(model, graph.role, graph.inputs, graph.outputs, **options)

    @classmethod
    def for_role(cls, model, role: str, batch: int = 1, content_size: Optional[Tuple[int, int]] = None,
                 style_size: int = 256, **options) -> "TorchBackend":
        inputs, outputs = role_specs(model, role, batch, content_size, style_size)
        return cls(model, role, inputs, outputs, **options)

    @property
    def description(self) -> str:
        extras = [x for x, on in (("fp16", self.fp16), ("channels-last", self.channels_last),
                                  (f"compiled:{self.compile_backend}", self.compile)) if on]
        return f"torch {torch.__version__} {self.device_name}" + (f" ({', '.join(extras)})" if extras else "")

    # -- lifecycle ---------------------------------------------------------------------------
    def _open(self) -> None:
        self.device = torch.device(self.device_name)
        self.dtype = torch.float16 if self.fp16 else torch.float32
        model = self.model
        if self.fp16 or self.channels_last or self._model_device(model) != self.device:
            model = copy.deepcopy(model)
        model = model.to(self.device, self.dtype).eval()
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self._model = model
        self._baked = None
        if self.role == "baked":
            with torch.inference_mode():
                style = np.asarray(self.baked_style, np.float32)
                batch = self.inputs[0].shape[0]  # the content input's fixed batch
                if style.shape[0] != batch:
                    style = np.repeat(style[:1], batch, axis=0)
                style = self._tensor(style)
                self._baked = model.style_kernels(style)
        stage = self._stage
        self._call = torch.compile(stage, backend=self.compile_backend) if self.compile else stage

    def _close(self) -> None:
        self._model = self._call = self._baked = None

    @staticmethod
    def _model_device(model):
        for parameter in model.parameters():
            return parameter.device
        return None

    # -- running -----------------------------------------------------------------------------
    def _tensor(self, value):
        tensor = value if isinstance(value, torch.Tensor) else torch.from_numpy(value)
        tensor = tensor.to(self.device, self.dtype)
        if self.channels_last and tensor.dim() == 4:
            tensor = tensor.contiguous(memory_format=torch.channels_last)
        return tensor

    def _stage(self, inputs: Dict[str, Any]) -> Dict[str, Any]:
        model = self._model
        if self.role == "style":
            kernels = model.style_kernels(inputs[STYLE])
            return {name: kernels[name] for name in self.output_names}
        if self.role == "full":
            kernels = model.style_kernels(inputs[STYLE])
        elif self.role == "baked":
            kernels = self._baked
        else:
            kernels = {name: inputs[name] for name in self.input_names if name != CONTENT}
        return {STYLIZED: decode(model, inputs[CONTENT], kernels)}

    def _hold(self, values: Dict[str, Any]) -> Dict[str, Any]:
        return {name: self._tensor(value) for name, value in values.items()}

    def _to_host(self, value: Any) -> np.ndarray:
        if isinstance(value, torch.Tensor):
            return value.detach().float().cpu().numpy()
        return super()._to_host(value)

    def _run(self, arrays: Arrays, to_host: bool) -> Dict[str, Any]:
        inputs = dict(self.held)
        inputs.update((name, self._tensor(array)) for name, array in arrays.items())
        # Denormal floats (an untrained network's style path on noise is full of them) make CPU
        # convolutions ~10x slower; values below 1e-38 change no result, so flush them while
        # running and restore PyTorch's default afterwards.
        flush = self.device.type == "cpu" and torch.set_flush_denormal(True)
        try:
            with torch.inference_mode():
                outputs = self._call(inputs)
                if not to_host:
                    return outputs
                return {name: tensor.float().cpu().numpy() for name, tensor in outputs.items()}
        finally:
            if flush:
                torch.set_flush_denormal(False)


def reference_model(manifest: Manifest, checkpoint=None) -> StyleTransferNetwork:
    """The PyTorch network an export was made from, found through its manifest.

    Untrained exports (checkpoint sha256 ``untrained-seed-N``) are rebuilt from the seed. Otherwise
    the checkpoint is ``checkpoint`` or the file the manifest names (as given, beside the manifest,
    or the bundled default model of that name), and its sha256 must match the manifest's:
    comparing against other weights would make every accuracy number meaningless.
    """
    recorded = manifest.data["checkpoint"]
    sha256 = recorded["sha256"]
    seed = untrained_seed(sha256)
    if seed is not None:
        if checkpoint is not None:
            raise BackendError(f"{manifest.location} was exported from an untrained network ({sha256}), not "
                               f"from {checkpoint}: drop --checkpoint")
        return build_model(manifest.variant, seed=seed)
    candidates = [Path(checkpoint)] if checkpoint is not None else []
    if checkpoint is None and recorded.get("file"):
        named = Path(recorded["file"])
        candidates += [named] + ([manifest.directory / named.name] if manifest.directory else [])
        if named.name == DEFAULT_CHECKPOINT.name:
            candidates.append(DEFAULT_CHECKPOINT)
    found = next((p for p in candidates if p.is_file()), None)
    if found is None:
        where = f"{checkpoint} does not exist" if checkpoint is not None else \
            f"the manifest names {recorded.get('file') or 'no file'}, which is not here"
        raise BackendError(f"the torch backend needs the checkpoint {manifest.location} was exported from "
                           f"(sha256 {sha256[:12]}...): {where}; pass --checkpoint CKPT")
    actual = file_sha256(found)
    if actual != sha256:
        raise BackendError(f"checkpoint {found} (sha256 {actual[:12]}...) is not the one {manifest.location} was "
                           f"exported from (sha256 {sha256[:12]}...)")
    return load_checkpoint(found, variant=manifest.variant)


def baked_style(manifest: Manifest) -> np.ndarray:
    """The normalized style image a baked export was made with, found through its manifest
    (the export's --style-image argument, or the file beside the manifest) and checked by sha256."""
    info = manifest.data.get("style_image") or {}
    candidates = []
    if info.get("argument"):
        candidates.append(samples.resolve_image_arg(info["argument"]))
    if info.get("file") and manifest.directory is not None:
        candidates.append(manifest.directory / info["file"])
    found = next((Path(p) for p in candidates if Path(p).is_file()), None)
    if found is None:
        raise BackendError(f"the torch backend needs the style image baked into {manifest.location} "
                           f"({info.get('argument') or info.get('file') or 'not recorded'}), and it is not here")
    if info.get("sha256") and file_sha256(found) != info["sha256"]:
        raise BackendError(f"style image {found} is not the one baked into {manifest.location} (sha256 differs)")
    rgb = images.read_image(found)
    prepared, _ = images.prepare_image(rgb, images.Resize.square(manifest.style_size))
    return images.normalize(prepared)


def network_stylizer(model, style_size: int, bgr: bool = False, max_pixels: Optional[int] = MAX_WORK_PIXELS,
                     **options):
    """The runtime ``Stylizer`` over ``model`` itself, without an export: the roles of a split,
    dynamic-size export as TorchBackends (the style encoded once per ``set_style``, frames of any
    size reflect-padded to multiples of 8 and cropped back). ``options`` go to the backends
    (device, fp16, channels_last, compile)."""
    backends = {role: TorchBackend.for_role(model, role, style_size=style_size, **options)
                for role in GRAPH_KINDS["split"]}
    # What the Stylizer reads of a manifest; a dynamic size takes any frame, so content_size
    # (an export's trace size) is only the smallest one.
    manifest = Manifest({"graph_kind": "split", "variant": model.variant, "batch": 1, "style_size": style_size,
                         "dynamic_size": True, "content_size": [MIN_SIZE, MIN_SIZE],
                         "precision": "fp16" if options.get("fp16") else "fp32"})
    return Stylizer.from_backends(backends, manifest, "the PyTorch model", TorchBackend.kind, bgr=bgr,
                                  max_pixels=max_pixels)


def torch_backends(manifest: Manifest, checkpoint=None, **options) -> Dict[str, Backend]:
    """role -> an unopened TorchBackend for every graph of an export: the network it was exported
    from (``reference_model``), under each graph's role and tensor specs."""
    model = reference_model(manifest, checkpoint)
    backends = {}  # type: Dict[str, Backend]
    for role, graph in manifest.graphs.items():
        extra = {"baked_style": baked_style(manifest)} if role == "baked" else {}
        backends[role] = TorchBackend.from_graph(graph, model, **dict(options, **extra))
    return backends


register_backend(TorchBackend.kind, torch_backends)
