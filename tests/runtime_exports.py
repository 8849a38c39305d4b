"""Small ONNX exports shared by the runtime, check and TensorRT tests.

Each distinct export is built once per test session (``run_export`` on 32x32 content and 96 px
style takes about 3 s) into a temporary folder removed at exit. Tests must treat them as
read-only: copy one before changing it.
"""
import atexit
import functools
import io
import shutil
import tempfile
from pathlib import Path
from typing import Optional, Tuple

_ROOT = []


def _root() -> Path:
    if not _ROOT:
        _ROOT.append(Path(tempfile.mkdtemp(prefix="infusionnet-test-exports-")))
        atexit.register(shutil.rmtree, str(_ROOT[0]), True)
    return _ROOT[0]


@functools.lru_cache(maxsize=None)
def export(graph: str = "split", dynamic: bool = True, content: Tuple[int, int] = (32, 32), style: int = 96,
           style_image: Optional[str] = None, batch: int = 1, precision: str = "fp32",
           int8_target: Optional[str] = None) -> Path:
    """An export directory made by the real pipeline (verified in ONNX Runtime)."""
    import torch
    from rich.console import Console

    from infusionnet.export.pipeline import ExportConfig, run_export

    name = f"{graph}-{'dynamic' if dynamic else 'static'}-{content[0]}x{content[1]}-s{style}-b{batch}-{precision}"
    name += f"-{int8_target}" if int8_target else ""
    output = _root() / name
    # The export verifies against PyTorch on random images, where the untrained style path is
    # full of denormal floats that make CPU convolutions ~10x slower: flush them meanwhile.
    torch.set_flush_denormal(True)
    try:
        run_export(ExportConfig(output=output, graph=graph, dynamic_size=dynamic, content_size=content,
                                style_size=style, style_image=style_image, batch=batch, precision=precision,
                                int8_target=int8_target),
                   console=Console(file=io.StringIO()))
    finally:
        torch.set_flush_denormal(False)
    return output
