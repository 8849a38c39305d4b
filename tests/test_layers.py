"""The folders are layers, and each imports only the layers below it:

    cli          the commands (top: composes everything below)
    benchmarks   measurements
    export       ONNX / TensorRT exports
    models       the PyTorch networks, their checkpoints, training, the PyTorch backend
    runtime      torch-free inference (Jetson, Python 3.8): imports no other folder, and no torch

Checked on the parsed source (ast), not on text: imports inside functions count, relative
imports are resolved, and so are ``importlib.import_module("infusionnet....")``, ``__import__``
and ``lazy_import`` (runtime/lazy.py: a module imported on first use) calls whose module name
is written out (also as the fixed start of an f-string).
"""
import ast
import sys
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = "infusionnet"
LAYERS = ("runtime", "models", "export", "benchmarks", "cli")  # bottom to top
# Third-party packages a layer must never import (the runtime runs where torch is not installed).
FORBIDDEN_PACKAGES = {"runtime": ("torch",)}
# (file, package) pairs exempt from that: probes that only ask whether a package is installed.
PROBES = {("runtime/environment.py", "torch")}  # `infusionnet doctor` reports torch, or its absence
# Import statements allowed inside a function, (file, module) -> why. Everything else is imported
# at the top of its module, optional packages with ``lazy_import`` (runtime/lazy.py), so that the
# top of a module shows all it depends on.
IMPORTS_INSIDE_FUNCTIONS: Dict[Tuple[str, str], str] = {}

Import = Tuple[Path, int, str]  # file, line, absolute module name


def modules(folder: str) -> List[Path]:
    return sorted((ROOT / folder).rglob("*.py"))


def imported_names(path: Path) -> List[Tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, wherever it sits, in line order."""
    return sorted(_imports(path))


def _imports(path: Path) -> Iterator[Tuple[int, str]]:
    package = ".".join((NAMESPACE,) + path.relative_to(ROOT).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - (node.level - 1)] + ([base] if base else []))
            for alias in node.names:  # each name may be a module: `from infusionnet import models`
                yield node.lineno, base if alias.name == "*" else f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            name = _called_import(node)
            if name is not None:
                yield node.lineno, name


def _called_import(call: ast.Call) -> Optional[str]:
    """The module name of an ``import_module(...)``, ``__import__(...)`` or ``lazy_import(...)``
    call, if written out."""
    function = call.func
    called = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", None)
    if called not in ("import_module", "__import__", "lazy_import"):
        return None
    argument = call.args[0]
    if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
        return argument.value
    if isinstance(argument, ast.JoinedStr) and argument.values:  # f"infusionnet.cli.{name}"
        first = argument.values[0]
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            return first.value.rstrip(".")
    return None


def imports_inside_functions(path: Path) -> List[Tuple[int, str]]:
    """(line, module as written) of the import statements in ``path`` that sit inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Import):
                    found.update((inner.lineno, alias.name) for alias in inner.names)
                elif isinstance(inner, ast.ImportFrom):
                    found.add((inner.lineno, "." * inner.level + (inner.module or "")))
    return sorted(found)


def layer_of(module: str) -> Optional[str]:
    parts = module.split(".")
    if len(parts) > 1 and parts[0] == NAMESPACE and parts[1] in LAYERS:
        return parts[1]
    return None


def upward_imports(folder: str) -> List[Import]:
    """Imports in ``folder`` of a layer at its level's top or above it (other than itself)."""
    allowed = set(LAYERS[:LAYERS.index(folder) + 1])
    return [(path, line, name) for path in modules(folder) for line, name in imported_names(path)
            if layer_of(name) is not None and layer_of(name) not in allowed]


def describe(found: List[Import]) -> str:
    return "\n".join(f"  {path.relative_to(ROOT)}:{line}: imports {name}" for path, line, name in found)


@pytest.mark.parametrize("folder", LAYERS)
def test_each_layer_imports_only_the_layers_below_it(folder):
    assert modules(folder), f"no modules found in {folder}/"
    found = upward_imports(folder)
    below = LAYERS[:LAYERS.index(folder)]
    may = f"may import only {', '.join(below)}" if below else "may import no other folder"
    assert not found, (f"{folder}/ {may}; these imports reach a layer above it "
                       f"(move the code down, or compose it in a layer above):\n{describe(found)}")


@pytest.mark.parametrize("folder", sorted(FORBIDDEN_PACKAGES))
def test_layers_do_not_import_forbidden_packages(folder):
    forbidden = FORBIDDEN_PACKAGES[folder]
    found = [(path, line, name) for path in modules(folder) for line, name in imported_names(path)
             if name.split(".")[0] in forbidden
             and (path.relative_to(ROOT).as_posix(), name.split(".")[0]) not in PROBES]
    assert not found, (f"{folder}/ must run without {', '.join(forbidden)} (a Jetson has none), not even "
                       f"inside functions:\n{describe(found)}")


@pytest.mark.parametrize("folder", LAYERS)
def test_imports_sit_at_the_top_of_each_module(folder):
    found = [(path, line, name) for path in modules(folder) for line, name in imports_inside_functions(path)
             if (path.relative_to(ROOT).as_posix(), name) not in IMPORTS_INSIDE_FUNCTIONS]
    assert not found, (f"{folder}/: import at the top of the module, where the next reader sees what it depends "
                       "on; a package only some commands need is declared there with "
                       "`name = lazy_import(\"package\")` (runtime/lazy.py), imported on first use:\n"
                       f"{describe(found)}")


# --------------------------------------------------------------------------- the checker itself

def test_the_checker_sees_every_kind_of_import(tmp_path, monkeypatch):
    source = (
        "import os\n"
        "from . import images\n"
        "from ...models import networks\n"
        "def later():\n"
        "    import torch.nn\n"
        "    from infusionnet.export.graphs import decode\n"
        "    importlib.import_module('infusionnet.benchmarks.runner')\n"
        "    import_module(f'infusionnet.cli.{name}')\n"
        "    __import__('infusionnet.models')\n"
        "    importlib.import_module(name)\n"
        "from infusionnet import cli as commands, runtime\n"
        "torch = lazy_import('torch')\n"
        "pipeline = lazy.lazy_import('infusionnet.export.pipeline')\n")
    module = tmp_path / "runtime" / "sub" / "mod.py"
    module.parent.mkdir(parents=True)
    module.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imported_names(module) == [
        (1, "os"), (2, "infusionnet.runtime.sub.images"), (3, "infusionnet.models.networks"),
        (5, "torch.nn"), (6, "infusionnet.export.graphs.decode"), (7, "infusionnet.benchmarks.runner"),
        (8, "infusionnet.cli"), (9, "infusionnet.models"), (11, "infusionnet.cli"), (11, "infusionnet.runtime"),
        (12, "torch"), (13, "infusionnet.export.pipeline")]
    assert [(line, layer_of(name)) for _, line, name in upward_imports("runtime")] == [
        (3, "models"), (6, "export"), (7, "benchmarks"), (8, "cli"), (9, "models"), (11, "cli"), (13, "export")]
    assert imports_inside_functions(module) == [(5, "torch.nn"), (6, "infusionnet.export.graphs")]
    with pytest.raises(AssertionError, match=r"runtime/sub/mod.py:6: imports infusionnet.export.graphs.decode"):
        test_each_layer_imports_only_the_layers_below_it("runtime")
    with pytest.raises(AssertionError, match=r"(?s)runtime/sub/mod.py:5: imports torch.nn\n.*"
                                             r"mod.py:12: imports torch\n"):
        test_layers_do_not_import_forbidden_packages("runtime")
    with pytest.raises(AssertionError, match=r"runtime/sub/mod.py:5: imports torch.nn\n.*mod.py:6: imports "
                                             r"infusionnet.export.graphs\n"):
        test_imports_sit_at_the_top_of_each_module("runtime")
