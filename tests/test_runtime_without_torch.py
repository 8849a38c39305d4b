"""The runtime must import and work on a machine without torch (Jetson, Python 3.8).

That no runtime source imports torch, not even inside a function, is checked on the parsed
sources with the other layer rules (test_layers.py)."""
import pkgutil
import subprocess
import sys

import infusionnet.runtime

BLOCK_TORCH = "import sys; sys.modules['torch'] = None\n"


def _runtime_modules():
    # Subpackages (images, video) and each of their modules, not only the top level.
    return sorted(m.name for m in pkgutil.walk_packages(infusionnet.runtime.__path__, "infusionnet.runtime."))


def test_every_runtime_module_imports_with_torch_unimportable():
    modules = _runtime_modules()
    assert {"infusionnet.runtime.images", "infusionnet.runtime.images.read"} <= set(modules)
    code = BLOCK_TORCH + "".join(f"import {m}\n" for m in modules) + "import infusionnet.runtime\nprint('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_blocking_torch_really_blocks_it():
    # Guard against the test above passing vacuously.
    result = subprocess.run([sys.executable, "-c", BLOCK_TORCH + "import torch"], capture_output=True, text=True)
    assert result.returncode != 0 and "torch" in result.stderr


def test_torch_commands_say_how_to_install_torch_when_it_is_missing(tmp_path):
    code = BLOCK_TORCH + ("import sys\nfrom infusionnet.cli.main import main\n"
                          f"sys.exit(main(['stylize', '-o', {str(tmp_path / 'out')!r}]))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 2
    assert "needs torch" in result.stderr and "pip install torch==2.13.0" in result.stderr
    assert "Traceback" not in result.stderr
