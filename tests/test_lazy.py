"""Optional packages declared with ``runtime.lazy.lazy_import``: imported on first use, a clear
error naming what to install when missing, and `infusionnet --help` without any of them."""
import pickle
import subprocess
import sys

import pytest

from infusionnet.cli.main import main
from infusionnet.runtime import environment
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.lazy import INSTALL_HINTS, MissingDependency, lazy_import, load, module_location

# What only some commands need: none of it may load for `infusionnet --help`.
HEAVY = ("torch", "onnx", "onnxruntime", "onnxslim", "safetensors", "tensorrt", "pycuda", "openvino", "nncf",
         "skimage", "matplotlib", "polygraphy", "infusionnet.models", "infusionnet.export.pipeline")
# What only running a command needs: about 0.2 s of imports together, declared with lazy_import in
# the modules the parsers load, so that --help stays instant.
RUN_ONLY = ("rich.console", "importlib.metadata", "infusionnet.runtime.environment",
            "infusionnet.runtime.video.stylize", "infusionnet.benchmarks.report", "infusionnet.export.trt_build")


@pytest.fixture
def module_dir(tmp_path, monkeypatch):
    """A folder on sys.path for throwaway modules; they are forgotten afterwards."""
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in [n for n in sys.modules if n.startswith("lazy_probe")]:
        del sys.modules[name]


def test_the_module_is_imported_on_first_use_only(module_dir):
    (module_dir / "lazy_probe_a.py").write_text("VALUE = 42\n")
    proxy = lazy_import("lazy_probe_a")
    assert "lazy_probe_a" not in sys.modules and "lazy_probe_a" in repr(proxy)
    assert proxy.VALUE == 42 and "lazy_probe_a" in sys.modules
    assert load(proxy) is sys.modules["lazy_probe_a"] and "VALUE" in dir(proxy)


def test_assignment_and_deletion_reach_the_real_module(module_dir, monkeypatch):
    (module_dir / "lazy_probe_b.py").write_text("def f():\n    return 1\n")
    proxy = lazy_import("lazy_probe_b")
    monkeypatch.setattr(proxy, "f", lambda: 2)  # as tests patch a module through its user
    assert sys.modules["lazy_probe_b"].f() == 2
    monkeypatch.undo()
    assert proxy.f() == 1
    proxy.extra = 3
    del proxy.extra
    assert not hasattr(sys.modules["lazy_probe_b"], "extra")


def test_each_use_sees_the_module_python_has_now(monkeypatch):
    proxy = lazy_import("onnxslim")
    fake = type(sys)("onnxslim")
    fake.marker = "fake"
    monkeypatch.setitem(sys.modules, "onnxslim", fake)
    assert proxy.marker == "fake"
    monkeypatch.setitem(sys.modules, "onnxslim", None)  # blocked: as if not installed
    with pytest.raises(MissingDependency):
        proxy.slim


def test_a_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxslim", None)
    with pytest.raises(MissingDependency) as caught:
        lazy_import("onnxslim").slim
    error = caught.value
    assert str(error) == f"onnxslim is not installed: {INSTALL_HINTS['onnxslim']}"
    assert error.name == "onnxslim" and error.hint == INSTALL_HINTS["onnxslim"]
    # Both the project's one-line error and what a failed `import` raised before.
    assert isinstance(error, InfusionNetError) and isinstance(error, ModuleNotFoundError)
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.name) == (MissingDependency, str(error), "onnxslim")


def test_a_module_that_needs_a_missing_package_names_the_package(module_dir, monkeypatch):
    (module_dir / "lazy_probe_c.py").write_text("import onnxslim.sub\n")
    monkeypatch.setitem(sys.modules, "onnxslim", None)
    with pytest.raises(MissingDependency, match=r"^onnxslim is not installed: pip install"):
        lazy_import("lazy_probe_c").anything


def test_packages_without_a_hint_fail_as_imports_do(module_dir):
    with pytest.raises(ModuleNotFoundError) as caught:
        lazy_import("lazy_probe_no_such_module").anything
    assert type(caught.value) is ModuleNotFoundError and caught.value.name == "lazy_probe_no_such_module"
    (module_dir / "lazy_probe_d.py").write_text("raise ImportError('libfoo.so: cannot open shared object file')\n")
    with pytest.raises(ImportError, match="libfoo.so") as caught:
        lazy_import("lazy_probe_d").anything
    assert type(caught.value) is ImportError  # a broken install is not a missing package


def test_load_returns_other_modules_as_they_are():
    assert load(sys) is sys


def test_the_command_line_prints_the_install_hint_on_one_line(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxslim", None)
    monkeypatch.setattr(environment, "gather", lambda with_torch: lazy_import("onnxslim").slim)
    assert main(["doctor"]) == 2
    assert capsys.readouterr().err == (f"error: `infusionnet doctor` needs onnxslim, which is not installed: "
                                       f"{INSTALL_HINTS['onnxslim']}\n")


def test_help_imports_no_optional_package():
    code = ("import sys\n"
            "from infusionnet.cli.main import build_parser\n"
            "parser = build_parser()\n"
            f"print(sorted(name for name in {HEAVY + RUN_ONLY!r} if name in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_help_works_with_every_optional_package_missing():
    blocked = [name for name in HEAVY if not name.startswith("infusionnet")]
    code = (f"import sys\nfor name in {blocked!r}:\n    sys.modules[name] = None\n"
            "from infusionnet.cli.main import main\n"
            "for command in ([], ['stylize'], ['video'], ['bench'], ['check'], ['train'], ['export', 'onnx'],\n"
            "                ['export', 'trt'], ['export', 'check-trt'], ['doctor']):\n"
            "    try:\n"
            "        main(command + ['--help'])\n"
            "    except SystemExit as done:\n"
            "        assert done.code == 0, (command, done.code)\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "infusionnet stylize" in result.stdout and "Traceback" not in result.stderr


def test_module_location_names_a_namespace_packages_folder(tmp_path, monkeypatch):
    """A folder of type stubs (tensorrt-stubs) imports as a namespace package whose __file__ is
    None: the doctor said "no: None is not TensorRT's Python API"."""
    (tmp_path / "stubs_only_probe").mkdir()
    (tmp_path / "stubs_only_probe" / "__init__.pyi").write_text("def f() -> int: ...\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    namespace = __import__("stubs_only_probe")
    monkeypatch.delitem(sys.modules, "stubs_only_probe")
    assert namespace.__file__ is None
    assert module_location(namespace) == str(tmp_path / "stubs_only_probe")
    assert module_location(pickle) == pickle.__file__
