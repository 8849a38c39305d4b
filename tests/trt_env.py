"""Is the real TensorRT here (and a GPU for it)? For the skip markers of TensorRT tests.

An importable ``tensorrt`` proves nothing: tensorrt-stubs (installed for the type check) puts a
``tensorrt`` folder of .pyi files on the path, which imports as an empty namespace package, and
PyPI's ``tensorrt`` placeholder fails on import. The runtime's own checks tell them apart."""
from typing import Optional

from infusionnet.runtime.backend import BackendError
from infusionnet.runtime.trt_backend import import_pycuda, import_tensorrt


def real_tensorrt() -> bool:
    try:
        import_tensorrt()
    except BackendError:
        return False
    return True


def tensorrt_gpu_missing() -> Optional[str]:
    """Why engines cannot be built and run here (None when they can)."""
    try:
        import_tensorrt()
        import_pycuda(0)
    except BackendError as error:
        return str(error)
    return None
