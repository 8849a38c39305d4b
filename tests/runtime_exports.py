"""Small ONNX exports shared by the runtime, check and TensorRT tests.

Each distinct export is built once per test session (``run_export`` on 32x32 content and 96 px
style takes about 3 s) into a temporary folder removed at exit. Tests must treat them as
read-only: copy one before changing it.
"""
import atexit
import functools
import importlib.util
import io
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Optional, Tuple

_ROOT = []
PREBUILT_VARIABLE = "INFUSIONNET_TEST_EXPORTS"
# What the torch-free tests (scripts/test-py38.sh) use, built beforehand where torch is.
PREBUILT = ({"graph": "split", "dynamic": True},)


def _root() -> Path:
    if not _ROOT:
        _ROOT.append(Path(tempfile.mkdtemp(prefix="infusionnet-test-exports-")))
        atexit.register(shutil.rmtree, str(_ROOT[0]), True)
    return _ROOT[0]


@functools.lru_cache(maxsize=None)
def export(graph: str = "split", dynamic: bool = True, content: Tuple[int, int] = (32, 32), style: int = 96,
           style_image: Optional[str] = None, batch: int = 1, precision: str = "fp32",
           int8_target: Optional[str] = None, int8_min_psnr: Optional[float] = None) -> Path:
    """An export directory made by the real pipeline (verified in ONNX Runtime), or taken from
    INFUSIONNET_TEST_EXPORTS where this file's ``__main__`` built it (torch-free test runs)."""
    name = f"{graph}-{'dynamic' if dynamic else 'static'}-{content[0]}x{content[1]}-s{style}-b{batch}-{precision}"
    name += f"-{int8_target}" if int8_target else ""
    name += f"-min{int8_min_psnr:g}dB" if int8_min_psnr is not None else ""
    prebuilt = Path(os.environ.get(PREBUILT_VARIABLE, "")) / name
    if os.environ.get(PREBUILT_VARIABLE) and (prebuilt / "manifest.json").is_file():
        return prebuilt
    if importlib.util.find_spec("torch") is None:
        import pytest
        pytest.skip(f"needs torch to build the {name} export, or {PREBUILT_VARIABLE} with it prebuilt "
                    "(python tests/runtime_exports.py DIR)")
    import torch
    from rich.console import Console

    from infusionnet.export.pipeline import ExportConfig, run_export
    from infusionnet.export.verify import Tolerances

    output = _root() / name
    # The export verifies against PyTorch on random images, where the untrained style path is
    # full of denormal floats that make CPU convolutions ~10x slower: flush them meanwhile.
    torch.set_flush_denormal(True)
    try:
        run_export(ExportConfig(output=output, graph=graph, dynamic_size=dynamic, content_size=content,
                                style_size=style, style_image=style_image, batch=batch, precision=precision,
                                int8_target=int8_target,
                                tolerances=Tolerances() if int8_min_psnr is None else Tolerances(int8_min_psnr=int8_min_psnr)),
                   console=Console(file=io.StringIO()))
    finally:
        torch.set_flush_denormal(False)
    return output


if __name__ == "__main__":
    # python tests/runtime_exports.py DIR: build PREBUILT into DIR, for INFUSIONNET_TEST_EXPORTS.
    _ROOT.append(Path(sys.argv[1]))
    for options in PREBUILT:
        print(f"built {export(**options)}")
