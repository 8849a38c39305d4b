"""ONNX Runtime backend: runs one ONNX graph of an export directory.

Execution providers are tried in the order TensorRT > CUDA > CPU among those the installed
onnxruntime build offers (the CPU wheel has only CPU; onnxruntime-gpu adds CUDA and TensorRT).
ONNX Runtime silently drops a provider that fails to load (missing CUDA libraries), so the
provider actually used is read back from the session and reported, never assumed.

Inputs and outputs go through I/O binding: on a GPU provider the outputs stay on the device
(``run_on_device`` returns OrtValues), and held inputs (a style's kernels) are copied to the
device once, not once per frame.
"""
from typing import Any, Dict, List, Mapping, Optional, Sequence, Union

import numpy as np

from .backend import Arrays, Backend, BackendError
from .lazy import INSTALL_HINTS, lazy_import, load

onnxruntime = lazy_import("onnxruntime")  # an extra, in one of two flavours: imported when a backend opens

PROVIDER_PREFERENCE = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_NAMES = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
                  "cpu": "CPUExecutionProvider"}
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")

# The session config entry that runs Q/DQ nodes as written (see fuses_qdq).
UNFUSED_QDQ = ("session.disable_quant_qdq", "1")


def fuses_qdq(int8_target: Optional[str]) -> bool:
    """Should ONNX Runtime fuse the Q/DQ nodes of a graph of this INT8 layout (manifest
    ``int8_target``; None for float graphs) into its integer kernels?

    Not the TensorRT layout's. Its weights use all 8 bits, and without VNNI (AVX2, AVX-512F)
    ONNX Runtime's u8 x s8 kernels add product pairs in int16, which such weights saturate, so
    its fused convolutions come out wrong there; run as written, the Q/DQ nodes give the values
    TensorRT computes. With Q/DQ on convolution inputs only, ONNX Runtime fuses few of its
    convolutions anyway. On a 2-core AVX2 AMD EPYC at 512x512, unfused: the keep-float export
    27.0 -> 44.2 dB worst pair in `check`, its content graph 489 -> 513 ms; fully quantized
    641 -> 588 ms. The CPU layout is built for the fusion, and its 7-bit weights cannot saturate
    (export/precision.py).
    (ONNX Runtime's own remedy, session.x64quantprecision, failed to load these graphs in 1.32.)
    """
    return int8_target != "tensorrt"


def choose_providers(available: Sequence[str], requested: str = "auto") -> List[str]:
    """Providers to ask for, best first: "auto" (best available), or "tensorrt", "cuda", "cpu"
    (that one, falling back only to the ones below it)."""
    if requested == "auto":
        chosen = [p for p in PROVIDER_PREFERENCE if p in available]
        return chosen or ["CPUExecutionProvider"]
    if requested not in PROVIDER_NAMES:
        raise BackendError(f"unknown ONNX Runtime provider {requested!r}: use auto, {', '.join(PROVIDER_NAMES)}")
    wanted = PROVIDER_NAMES[requested]
    if wanted not in available:
        # Both builds provide the same module: installing the GPU one beside the CPU one breaks both.
        hint = (" (this is the CPU build of onnxruntime: pip uninstall onnxruntime, then pip install "
                "onnxruntime-gpu)") if requested != "cpu" else ""
        raise BackendError(f"ONNX Runtime provider {wanted} is not available; installed providers: "
                           f"{', '.join(available) or 'none'}{hint}")
    start = PROVIDER_PREFERENCE.index(wanted)
    return [p for p in PROVIDER_PREFERENCE[start:] if p in available] or [wanted]


class OnnxRuntimeBackend(Backend):
    """``OnnxRuntimeBackend(path, inputs, outputs, role)``; inputs/outputs are the manifest's
    tensor specs (see ``from_graph``). ``provider``: auto | tensorrt | cuda | cpu. ``fuse_qdq``: see
    ``fuses_qdq``."""

    kind = "onnxruntime"

    def __init__(self, path, inputs: Sequence[Any], outputs: Sequence[Any], role: str = "graph",
                 provider: str = "auto", intra_op_threads: Optional[int] = None,
                 inter_op_threads: Optional[int] = None, device_id: int = 0,
                 provider_options: Optional[Mapping[str, Mapping[str, Any]]] = None, fuse_qdq: bool = True):
        super().__init__(role, inputs, outputs)
        self.path = str(path)
        self.requested = provider
        self.fuse_qdq = fuse_qdq  # see fuses_qdq
        self.intra_op_threads = intra_op_threads
        self.inter_op_threads = inter_op_threads
        self.device_id = device_id
        self.provider_options = dict(provider_options or {})
        self.session = None
        self.provider = ""
        self.device = "cpu"
        self._binding = None

    @classmethod
    def from_graph(cls, graph, **options) -> "OnnxRuntimeBackend":
        """From a manifest ``GraphEntry`` (role, path, inputs, outputs)."""
        return cls(graph.path, graph.inputs, graph.outputs, role=graph.role, **options)

    def _open(self) -> None:
        try:
            ort = load(onnxruntime)
        except ImportError:
            raise BackendError(f"onnxruntime is not installed: {INSTALL_HINTS['onnxruntime']}") from None
        providers = choose_providers(ort.get_available_providers(), self.requested)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # errors only: provider fallbacks are reported by us
        if not self.fuse_qdq:
            options.add_session_config_entry(*UNFUSED_QDQ)
        if self.intra_op_threads:
            options.intra_op_num_threads = int(self.intra_op_threads)
        if self.inter_op_threads:
            options.inter_op_num_threads = int(self.inter_op_threads)
        provider_list = []  # type: List[Union[str, tuple]]
        for name in providers:
            extra = dict(self.provider_options.get(name, {}))
            if name in GPU_PROVIDERS:
                extra.setdefault("device_id", self.device_id)
            provider_list.append((name, extra) if extra else name)
        try:
            self.session = ort.InferenceSession(self.path, sess_options=options, providers=provider_list)
        except Exception as error:  # ORT raises its own exception types (Fail, InvalidGraph, NoSuchFile...)
            raise BackendError(f"ONNX Runtime cannot load {self.path}: {str(error).strip().splitlines()[-1]}") from None
        active = self.session.get_providers()
        self.provider = active[0]
        if self.requested != "auto" and self.provider != PROVIDER_NAMES[self.requested]:
            raise BackendError(f"ONNX Runtime could not start {PROVIDER_NAMES[self.requested]} for {self.path} "
                               f"(it fell back to {self.provider}: are the CUDA/TensorRT libraries installed?)")
        self._check_graph_names(self.path, [i.name for i in self.session.get_inputs()],
                                [o.name for o in self.session.get_outputs()])
        self.device = "cuda" if self.provider in GPU_PROVIDERS else "cpu"
        self._binding = self.session.io_binding()
        self._ort = ort

    def _close(self) -> None:
        self._binding = None
        self.session = None

    @property
    def description(self) -> str:
        threads = f", {self.intra_op_threads} threads" if self.intra_op_threads else ""
        unfused = "" if self.fuse_qdq else ", Q/DQ unfused"
        return f"onnxruntime {self.provider or '(not open)'}{threads}{unfused}"

    def _hold(self, values: Dict[str, Any]) -> Dict[str, Any]:
        held = {}
        for name, value in values.items():
            if isinstance(value, np.ndarray):  # copied to the device once, here
                value = self._ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(value), self.device,
                                                               self.device_id)
            self._binding.bind_ortvalue_input(name, value)
            held[name] = value
        return held

    def _run(self, arrays: Arrays, to_host: bool) -> Dict[str, Any]:
        binding = self._binding
        for name, array in arrays.items():
            binding.bind_cpu_input(name, array)
        for name in self.output_names:
            binding.bind_output(name, self.device, self.device_id)
        self.session.run_with_iobinding(binding)
        if to_host:
            return dict(zip(self.output_names, binding.copy_outputs_to_cpu()))
        return dict(zip(self.output_names, binding.get_outputs()))
