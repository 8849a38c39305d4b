"""What this CPU can do at most, and how much of it each benchmark row uses.

A speed-up over the authors' path says little on its own: the same ratio can be near the
hardware's limit on one CPU and far from it on another. So the benchmark measures the machine's
matrix-multiply throughput per precision with short GEMM micro-benchmarks, through the same
libraries the rows use, and reports each row's share of it:

    fp32  numpy's SGEMM (its BLAS: FMA on AVX2/AVX-512)
    int8  ONNX Runtime's MatMulInteger, uint8 x int8 -> int32 (MLAS: VNNI, AMX where present)
    bf16  OpenVINO's MatMul compiled with the BF16 precision hint (AVX-512 BF16 / AMX), when
          OpenVINO is installed and the CPU has BF16

A GEMM of this size is the best case a convolution can hope for (im2col or direct kernels reach
less), so a row's share is an upper-bound-honest figure: 50% means within 2x of this CPU.
Throughput is in G multiply-accumulates per second; a row's work is the content path's MACs,
counted once per size from the PyTorch model (``content_macs``).

A shared VM's speed drifts: one measurement of the peak can land in a slow minute (on the 2-core
Xeon here, back-to-back measurements gave 100 or 150 G MAC/s FP32, 650 or 1040 INT8). With
interleaved rounds the bench therefore measures the peaks in every round, beside the rows: each
row's share is the median of its per-round shares (same minutes, like the speed-ups), and the
machine's peak is the best round (``best_peaks``).
"""
import time
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from infusionnet.runtime.lazy import lazy_import, load

# Each measurement's library, imported when it runs: bf16 is skipped without OpenVINO.
onnx = lazy_import("onnx")
onnxruntime = lazy_import("onnxruntime")
openvino = lazy_import("openvino")
openvino_opset13 = lazy_import("openvino.opset13")
torch = lazy_import("torch")
torch_flop_counter = lazy_import("torch.utils.flop_counter")

GEMM_SIZE = 1024
# Which measured peak a row is held against, by the precision its convolutions ran in.
PEAK_FOR_PRECISION = {"fp32": "fp32", "fp16": "fp32", "bf16": "bf16", "int8": "int8"}


def _best_seconds(step: Callable[[], object], seconds: float, min_runs: int = 3) -> float:
    """Fastest single run of ``step`` within about ``seconds`` (after one warm-up)."""
    step()
    best = float("inf")
    runs = 0
    deadline = time.perf_counter() + seconds
    while runs < min_runs or time.perf_counter() < deadline:
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
        runs += 1
    return best


def gemm_fp32(n: int = GEMM_SIZE, seconds: float = 0.5) -> dict:
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((n, n)).astype(np.float32) for _ in range(2))
    out = np.empty((n, n), np.float32)
    best = _best_seconds(lambda: np.matmul(a, b, out=out), seconds)
    return {"gmacs": n ** 3 / best / 1e9, "how": f"numpy SGEMM {n}x{n}x{n}, best run"}


def _matmul_integer_model(n: int):
    helper, TensorProto = onnx.helper, onnx.TensorProto
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "b"], ["c"])], "gemm_int8",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [n, n]),
         helper.make_tensor_value_info("b", TensorProto.INT8, [n, n])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, [n, n])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                             ir_version=min(onnx.IR_VERSION, 8))


def gemm_int8(n: int = GEMM_SIZE, seconds: float = 0.5, threads: Optional[int] = None) -> dict:
    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    session = onnxruntime.InferenceSession(_matmul_integer_model(n).SerializeToString(), options,
                                   providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feeds = {"a": rng.integers(0, 256, (n, n), dtype=np.uint8), "b": rng.integers(-128, 128, (n, n), dtype=np.int8)}
    best = _best_seconds(lambda: session.run(None, feeds), seconds)
    return {"gmacs": n ** 3 / best / 1e9, "how": f"ONNX Runtime MatMulInteger u8 x s8 {n}x{n}x{n}, best run"}


def gemm_bf16(n: int = GEMM_SIZE, seconds: float = 0.5, threads: Optional[int] = None) -> Optional[dict]:
    """None when OpenVINO is missing or the CPU has no BF16 (then nothing runs in BF16 here)."""
    try:
        ov, ops = load(openvino), load(openvino_opset13)
    except ImportError:
        return None
    core = ov.Core()
    if "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return None
    a = ops.parameter([n, n], np.float32, name="a")
    b = ops.constant(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
    model = ov.Model([ops.matmul(a, b, False, False)], [a], "gemm_bf16")
    config = {"INFERENCE_PRECISION_HINT": "bf16"}
    if threads:
        config["INFERENCE_NUM_THREADS"] = str(int(threads))
    request = core.compile_model(model, "CPU", config).create_infer_request()
    feed = {0: np.random.default_rng(1).standard_normal((n, n)).astype(np.float32)}
    best = _best_seconds(lambda: request.infer(feed), seconds)
    return {"gmacs": n ** 3 / best / 1e9, "how": f"OpenVINO MatMul, BF16 hint, {n}x{n}x{n}, best run"}


def measure_peaks(threads: Optional[int] = None, seconds: float = 0.5) -> Dict[str, dict]:
    """Measured GEMM throughput per precision (G MAC/s); precisions that cannot run are left out."""
    peaks = {"fp32": gemm_fp32(seconds=seconds), "int8": gemm_int8(seconds=seconds, threads=threads)}
    bf16 = gemm_bf16(seconds=seconds, threads=threads)
    if bf16 is not None:
        peaks["bf16"] = bf16
    return peaks


def best_peaks(measurements: Sequence[Dict[str, dict]]) -> Dict[str, dict]:
    """Per precision, the highest of several ``measure_peaks`` results (the machine at its least
    disturbed), saying how many measurements it is the best of."""
    best = {}  # type: Dict[str, dict]
    for peaks in measurements:
        for name, peak in peaks.items():
            if name not in best or peak["gmacs"] > best[name]["gmacs"]:
                best[name] = dict(peak)
    if len(measurements) > 1:
        for name, peak in best.items():
            peak["how"] += f", best of {sum(name in m for m in measurements)} rounds"
    return best


def content_macs(model, size, batch: int = 1) -> int:
    """Multiply-accumulates of the content path (encoder + decoder with cached kernels) at
    ``size``, counted by PyTorch's FLOP counter on the model this project exports."""
    height, width = size
    style = torch.zeros(1, 3, 256, 256)
    with torch.inference_mode():
        kernels = model.style_kernels(style)
        content = torch.zeros(batch, 3, height, width)
        with torch_flop_counter.FlopCounterMode(display=False) as counter:
            model.decode(model.encode_content(content), kernels)
    return int(counter.get_total_flops() // 2)


def peak_share(row: dict, macs: Optional[int], peaks: Dict[str, dict]) -> Optional[dict]:
    """{"gmacs", "peak", "peak_gmacs", "share"} of a measured row: its content path's throughput
    (``macs`` for the row's whole batch) against the peak of the precision it ran in (FP32 where
    that precision has no measured peak). A row timed in rounds with the peaks measured in each
    (``round_medians_ms``, ``round_peaks_gmacs``) gets the median of its per-round shares and
    their spread (``share_rounds``); otherwise its median against ``peaks``. Rows that also
    encode the style every frame (the reference, --mode full) spend part of their time on it, so
    their share reads a little low."""
    if row.get("status") != "ok" or not macs:
        return None
    precision = row.get("compute_precision") or row["precision"]
    key = PEAK_FOR_PRECISION.get(precision, "fp32")
    if key not in peaks:
        key = "fp32"
    achieved = macs / (row["latency"]["median_ms"] / 1000.0) / 1e9
    share = {"gmacs": achieved, "peak": key, "peak_gmacs": peaks[key]["gmacs"], "share": achieved / peaks[key]["gmacs"]}
    shares = _round_shares(macs, row.get("round_medians_ms"), (row.get("round_peaks_gmacs") or {}).get(key))
    if shares:
        share["share"] = float(np.median(shares))
        share["share_rounds"] = {"shares": shares, "min": min(shares), "max": max(shares)}
    return share


def _round_shares(macs: int, round_ms: Optional[Sequence[float]], round_peaks: Optional[Sequence[float]]) -> List[float]:
    """The row's throughput in each round over the peak measured in that round; empty unless
    both cover the same rounds."""
    if not round_ms or not round_peaks or len(round_ms) != len(round_peaks):
        return []
    return [float(macs / (ms / 1000.0) / 1e9 / peak) for ms, peak in zip(round_ms, round_peaks) if ms > 0 and peak > 0]
