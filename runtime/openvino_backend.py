"""OpenVINO backend: runs one graph of an ONNX export on an Intel CPU with OpenVINO Runtime.

OpenVINO reads the export's ONNX files directly (FP32, and the QDQ INT8 graphs of
``export onnx --precision int8 --int8-target openvino``, which it runs as INT8). What a CPU user
gets from ``pip install openvino`` is its default: on CPUs with BF16 (AVX-512 BF16 or AMX) it
computes FP32 graphs in BF16, about 3x faster than FP32 there and visibly less accurate. So the
precision is a choice here, and the precision that actually ran is read back from the compiled
model (``INFERENCE_PRECISION_HINT``) and reported, never assumed:

    precision="default"  OpenVINO's own choice for the device (BF16 where the CPU has it)
    precision="fp32"     force FP32 compute (``INFERENCE_PRECISION_HINT=f32``)
    precision="bf16"     ask for BF16; refused with the reason on CPUs without it

openvino is an optional extra (``pip install .[openvino]``): it is imported when a backend opens,
so importing this module never needs it.
"""
from typing import Any, Dict, Optional, Sequence

import numpy as np

from .backend import Arrays, Backend, BackendError
from .lazy import lazy_import, load

openvino = lazy_import("openvino")

OV_PRECISIONS = ("default", "fp32", "bf16")
# OpenVINO's element type names for the precision hint, and how this project names them.
HINT_VALUES = {"fp32": "f32", "bf16": "bf16"}
TYPE_NAMES = {"f32": "fp32", "float32": "fp32", "bf16": "bf16", "bfloat16": "bf16", "f16": "fp16",
              "float16": "fp16", "i8": "int8", "u8": "int8"}
INSTALL = "pip install openvino (or pip install .[openvino])"


def import_openvino():
    try:
        return load(openvino)
    except ImportError:
        raise BackendError(f"the openvino backend needs OpenVINO, which is not installed here: {INSTALL}") from None


def precision_name(value: Any) -> str:
    """'fp32' / 'bf16' / 'fp16' for an OpenVINO element type or its text (``<Type: 'bfloat16'>``)."""
    text = str(getattr(value, "type_name", None) or getattr(value, "get_type_name", lambda: value)())
    text = text.strip().lower()
    for key in sorted(TYPE_NAMES, key=len, reverse=True):
        if key == text or f"'{key}'" in text:
            return TYPE_NAMES[key]
    return text


def compile_config(precision: str, threads: Optional[int]) -> Dict[str, str]:
    """The ``compile_model`` properties for a requested precision and thread count."""
    if precision not in OV_PRECISIONS:
        raise BackendError(f"unknown OpenVINO precision {precision!r}: use one of {', '.join(OV_PRECISIONS)}")
    config = {}
    if precision in HINT_VALUES:
        config["INFERENCE_PRECISION_HINT"] = HINT_VALUES[precision]
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(int(threads))
    return config


class OpenVinoBackend(Backend):
    """``OpenVinoBackend(path, inputs, outputs, role)``; inputs/outputs are the manifest's tensor
    specs (see ``from_graph``). ``precision``: default | fp32 | bf16 (see the module docstring);
    ``threads``: inference threads (default: OpenVINO's, all cores); ``device``: an OpenVINO
    device name (CPU)."""

    kind = "openvino"

    def __init__(self, path, inputs: Sequence[Any], outputs: Sequence[Any], role: str = "graph",
                 precision: str = "default", threads: Optional[int] = None, device: str = "CPU"):
        super().__init__(role, inputs, outputs)
        compile_config(precision, threads)  # reject bad options before anything loads
        self.path = str(path)
        self.precision = precision
        self.threads = threads
        self.device = device
        self.inference_precision = ""
        self.graph_precision = "fp32"
        self._compiled = None
        self._request = None

    @classmethod
    def from_graph(cls, graph, **options) -> "OpenVinoBackend":
        """From a manifest ``GraphEntry`` (role, path, inputs, outputs)."""
        return cls(graph.path, graph.inputs, graph.outputs, role=graph.role, **options)

    def _open(self) -> None:
        ov = import_openvino()
        core = ov.Core()
        devices = core.available_devices
        if self.device not in devices:
            raise BackendError(f"OpenVINO device {self.device!r} is not available here (available: "
                               f"{', '.join(devices) or 'none'})")
        if self.precision == "bf16" and "BF16" not in core.get_property(self.device, "OPTIMIZATION_CAPABILITIES"):
            raise BackendError(f"this {self.device} has no BF16 support (no AVX-512 BF16 or AMX): use "
                               "--ov-precision fp32 or default")
        try:
            model = core.read_model(self.path)
            self._compiled = core.compile_model(model, self.device, compile_config(self.precision, self.threads))
        except RuntimeError as error:  # OpenVINO raises RuntimeError subclasses with multi-line text
            lines = [line for line in str(error).strip().splitlines() if line.strip()]
            raise BackendError(f"OpenVINO cannot load {self.path}: {lines[-1] if lines else error}") from None
        self._check_graph_names(self.path, [n for port in self._compiled.inputs for n in port.get_names()],
                                [n for port in self._compiled.outputs for n in port.get_names()])
        self.inference_precision = precision_name(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.graph_precision = "int8" if _is_quantized(model) else "fp32"
        self._request = self._compiled.create_infer_request()
        self._ov = ov

    def _close(self) -> None:
        self._request = None
        self._compiled = None

    @property
    def description(self) -> str:
        if not self.is_open:
            return "openvino (not open)"
        threads = f", {self.threads} threads" if self.threads else ""
        compute = "int8" if self.graph_precision == "int8" else self.inference_precision
        return f"openvino {self.device} {compute}{threads}"

    @property
    def compute_precision(self) -> str:
        """What the convolutions ran in: int8 for quantized graphs, else the inference precision."""
        return "int8" if self.graph_precision == "int8" else self.inference_precision

    def _hold(self, values: Dict[str, Any]) -> Dict[str, Any]:
        # Bound to the infer request once; OpenVINO keeps a tensor's data until it is replaced.
        held = {}
        for name, value in values.items():
            array = np.ascontiguousarray(self._to_host(value))
            self._request.set_tensor(name, self._ov.Tensor(array))
            held[name] = array
        return held

    def _run(self, arrays: Arrays, to_host: bool) -> Dict[str, Any]:
        request = self._request
        for name, array in arrays.items():
            request.set_tensor(name, self._ov.Tensor(array))
        request.infer()
        # The output tensors are reused by the next infer: copy them out.
        return {name: np.array(request.get_tensor(name).data, copy=True) for name in self.output_names}


def _is_quantized(model) -> bool:
    """True when the graph holds quantization (ONNX QDQ read as FakeQuantize/Convert to int8)."""
    return any(op.get_type_name() in ("FakeQuantize", "FakeConvert") or
               (op.get_type_name() == "Convert" and str(op.get_output_element_type(0)) in ("i8", "u8",
                                                                                            "<Type: 'int8_t'>",
                                                                                            "<Type: 'uint8_t'>"))
               for op in model.get_ops())
