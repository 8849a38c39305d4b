"""The graphs `infusionnet export onnx` writes, as small nn.Modules over the model's stages.

    full     content (B,3,H,W), style (B,3,S,S)   -> stylized (B,3,H,W)
    style    style (B,3,S,S)                      -> 18 kernel tensors
    content  content, the 18 kernel tensors       -> stylized
    baked    content                              -> stylized, one style's kernels as constants

The stages themselves (``decode``, ``kernel_shapes``) are ``infusionnet.models.stages``, which
the PyTorch backend runs too. Kernel tensors keep the model's own names
(``AdaOctConv1_1.h.spatial`` ...): ONNX, ONNX Runtime and TensorRT take any string as a tensor
name, and the dots never clash with the exporter's parameter names (those end in
``.weight``/``.bias``). The style graph's outputs and the content graph's inputs use the same
names, so a runtime chains them by name.

Every graph has a fixed batch B: AdaConv folds the batch into the groups of one convolution
(``models.blocks.adaconv_batched``), and the number of groups is an attribute.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn

from infusionnet.models.stages import decode, kernel_shapes
from infusionnet.runtime.manifest import CONTENT, GRAPH_KINDS, HEIGHT, STYLE, STYLIZED, WIDTH


class FullGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        return decode(self.model, content, self.model.style_kernels(style))


class StyleGraph(nn.Module):
    """Style image -> the kernel tensors, in ``kernel_names`` order."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, style: Tensor) -> Tuple[Tensor, ...]:
        return tuple(self.model.style_kernels(style).values())


class ContentGraph(nn.Module):
    """Content image + kernel tensors (positional, in ``kernel_names`` order) -> stylized."""

    def __init__(self, model: nn.Module, names: List[str]):
        super().__init__()
        self.model = model
        self.names = list(names)

    def forward(self, content: Tensor, *kernels: Tensor) -> Tensor:
        return decode(self.model, content, dict(zip(self.names, kernels)))


class BakedGraph(nn.Module):
    """Content image -> stylized with one style's kernels held as buffers.

    The buffers are already repeated over the batch, so the exporter's constant folding turns
    each AdaConv's reshapes into initializers: plain grouped Convs with constant weights.
    """

    def __init__(self, model: nn.Module, kernels: Dict[str, Tensor], batch: int):
        super().__init__()
        self.model = model
        self.names = list(kernels)
        for index, name in enumerate(self.names):
            tensor = kernels[name].detach()
            if tensor.shape[0] == 1 and batch != 1:
                tensor = tensor.expand(batch, *tensor.shape[1:])
            self.register_buffer(f"kernel_{index}", tensor.contiguous().clone())

    def kernels(self) -> Dict[str, Tensor]:
        return {name: getattr(self, f"kernel_{index}") for index, name in enumerate(self.names)}

    def forward(self, content: Tensor) -> Tensor:
        return decode(self.model, content, self.kernels())


@dataclass
class GraphSpec:
    """What `trace` needs for one graph: the module, example inputs and the I/O names."""
    role: str
    module: nn.Module
    example_inputs: Tuple[Tensor, ...]
    input_names: List[str]
    output_names: List[str]
    # name -> {axis: symbolic name}, for torch.onnx.export's dynamic_axes
    dynamic_axes: Dict[str, Dict[int, str]] = field(default_factory=dict)
    # name -> the output's shape (ints, or the symbolic names of dynamic axes). The exporter
    # sometimes leaves a fixed dimension symbolic (the batch of a reshaped output); trace()
    # writes these onto the graph outputs.
    output_shapes: Dict[str, List] = field(default_factory=dict)

    @property
    def file_name(self) -> str:
        return f"{self.role}.onnx"


def build_graph_specs(model: nn.Module, graph_kind: str, batch: int, content_size: Tuple[int, int],
                      style_size: int, dynamic_size: bool = False,
                      baked_kernels: Optional[Dict[str, Tensor]] = None) -> List[GraphSpec]:
    """The graphs of one export kind ("full", "split" or "baked"), ready to trace."""
    if graph_kind not in GRAPH_KINDS:
        raise ValueError(f"unknown graph kind {graph_kind!r}; choose from {', '.join(GRAPH_KINDS)}")
    height, width = content_size
    content = torch.rand(batch, 3, height, width)
    style = torch.rand(batch, 3, style_size, style_size)
    shapes = kernel_shapes(model, batch)
    names = list(shapes)
    image_axes = {2: HEIGHT, 3: WIDTH} if dynamic_size else {}

    def axes(*tensor_names):
        return {name: dict(image_axes) for name in tensor_names} if image_axes else {}

    image_shape = [batch, 3, image_axes.get(2, height), image_axes.get(3, width)]
    stylized = {STYLIZED: image_shape}

    specs = []
    for role in GRAPH_KINDS[graph_kind]:
        if role == "full":
            specs.append(GraphSpec(role, FullGraph(model), (content, style), [CONTENT, STYLE], [STYLIZED],
                                   axes(CONTENT, STYLIZED), stylized))
        elif role == "style":
            specs.append(GraphSpec(role, StyleGraph(model), (style,), [STYLE], names,
                                   output_shapes={name: list(shape) for name, shape in shapes.items()}))
        elif role == "content":
            kernels = tuple(torch.randn(*shapes[name]) * 0.05 for name in names)
            specs.append(GraphSpec(role, ContentGraph(model, names), (content,) + kernels, [CONTENT] + names,
                                   [STYLIZED], axes(CONTENT, STYLIZED), stylized))
        else:
            if baked_kernels is None:
                raise ValueError("a baked graph needs the kernels of its style image")
            specs.append(GraphSpec(role, BakedGraph(model, baked_kernels, batch), (content,), [CONTENT],
                                   [STYLIZED], axes(CONTENT, STYLIZED), stylized))
    return specs
