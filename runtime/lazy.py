"""Optional packages, declared once at the top of the module that uses them and imported on first use.

Most of the project runs without torch, ONNX, ONNX Runtime, TensorRT or pycuda: the runtime on a
Jetson has no torch, and ``infusionnet --help`` must stay instant on a base install. A module that
needs one of them only in some functions declares it at its top, where the dependency is seen::

    torch = lazy_import("torch")

and uses ``torch.from_numpy(...)`` as usual: the first attribute access imports the package (as
Polygraphy's ``lazy_import`` does). Until then nothing is loaded. A package that is not installed
raises ``MissingDependency`` there, which says what to install (``INSTALL_HINTS``, the one home of
those hints). Project modules that pull in such a package are declared the same way
(``lazy_import("infusionnet.models.torch_backend")``); tests/test_layers.py counts these
declarations as imports of their layer.

Each access asks ``sys.modules`` first, as an ``import`` statement does, so the module seen is
always the one Python has (tests that replace or block a module in ``sys.modules`` see it too).
Nothing here imports anything beyond the standard library: Python 3.8, no torch.
"""
import importlib
import sys
from typing import Any, TypeVar, cast

from .errors import InfusionNetError

# How to install what only some commands need, by top-level module name.
INSTALL_HINTS = {
    "torch": "pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu (the CPU build; PyPI's "
             "is the CUDA one), then pip install 'infusionnet-edge[torch]'",
    "safetensors": "pip install 'infusionnet-edge[torch]'",
    "onnxslim": "pip install 'infusionnet-edge[torch]'",
    "onnx": "pip install 'infusionnet-edge[torch]'",
    "onnxruntime": "pip install 'infusionnet-edge[cpu]' or 'infusionnet-edge[gpu]' (one flavour, not both; "
                   "on a Jetson, JetPack's or NVIDIA's build)",
    "skimage": "pip install 'infusionnet-edge[samples]' (scikit-image)",
    "matplotlib": "pip install 'infusionnet-edge[plots]' (or pass --no-plots)",
    "tensorrt": "install TensorRT (JetPack on Jetson, or pip install 'infusionnet-edge[tensorrt]' on a GPU machine)",
    "pycuda": "pip install pycuda (needs the CUDA toolkit and an NVIDIA driver)",
    "openvino": "pip install 'infusionnet-edge[openvino]'",
    "nncf": "pip install 'infusionnet-edge[openvino]'",
}

Module = TypeVar("Module")


class MissingDependency(InfusionNetError, ModuleNotFoundError):
    """An optional package that is not installed; ``name`` is its module, ``hint`` how to get it.

    Also a ModuleNotFoundError, so code that handles a failed ``import`` handles this the same way."""

    def __init__(self, name: str, hint: str):
        super().__init__(f"{name} is not installed: {hint}", name=name)
        self.hint = hint

    def __reduce__(self):  # pickled across processes (DataLoader workers) with its own arguments
        return type(self), (self.name, self.hint)


class LazyModule(object):
    """Stands for module ``name`` until it is used: attribute access, assignment and deletion go
    to the real module, imported then (see ``load``)."""

    __slots__ = ("_lazy_name",)

    def __init__(self, name: str):
        object.__setattr__(self, "_lazy_name", name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(load(self), attribute)

    def __setattr__(self, attribute: str, value: Any) -> None:
        setattr(load(self), attribute, value)

    def __delattr__(self, attribute: str) -> None:
        delattr(load(self), attribute)

    def __dir__(self):
        return dir(load(self))

    def __repr__(self) -> str:
        return f"<lazily imported module {object.__getattribute__(self, '_lazy_name')!r}>"


def lazy_import(name: str) -> Any:
    """Module ``name``, imported when first used. Declare it once, at the top of the module."""
    return LazyModule(name)


def load(module: Module) -> Module:
    """The real module behind a ``lazy_import`` (imported now if it is not yet); other modules
    are returned as they are. A missing package that ``INSTALL_HINTS`` knows, the module itself
    or one it imports, raises ``MissingDependency``; other import errors propagate unchanged."""
    if not isinstance(module, LazyModule):
        return module
    name = object.__getattribute__(module, "_lazy_name")
    loaded = sys.modules.get(name)
    if loaded is not None:
        return cast(Module, loaded)
    try:
        imported = importlib.import_module(name)
    except ModuleNotFoundError as error:
        package = (error.name or "").partition(".")[0]
        if isinstance(error, MissingDependency) or package not in INSTALL_HINTS:
            raise
        raise MissingDependency(package, INSTALL_HINTS[package]) from None
    return cast(Module, imported)


def module_location(module: Any) -> str:
    """Where an imported module lives, for messages: its file, or for a namespace package (a
    folder of type stubs imports as one, with ``__file__`` None) its folders."""
    return getattr(module, "__file__", None) or ", ".join(getattr(module, "__path__", None) or ["?"])
