"""A regular (non-editable) install: the folders land under the `infusionnet` namespace only."""
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                             str(ROOT), "-w", str(out)], capture_output=True, text=True)
    if result.returncode != 0 and "No module named" in result.stderr:
        pytest.skip(f"cannot build a wheel here: {result.stderr.strip().splitlines()[-1]}")
    assert result.returncode == 0, result.stderr
    return next(out.glob("*.whl"))


def test_wheel_installs_everything_under_the_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/")[0] for name in names}
    assert top == {"infusionnet", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    packages = {name.split("/")[1] for name in names if name.startswith("infusionnet/")}
    assert packages == {"models", "export", "runtime", "benchmarks", "cli"}
    assert "infusionnet/__init__.py" not in names  # PEP 420 namespace
    assert "infusionnet/export/trt_compat/trt_rules.json" in names  # package data the checker reads
    # Subpackages are listed in setup.cfg one by one: a missing one would be left out silently.
    assert {"infusionnet/runtime/images/read.py", "infusionnet/runtime/video/pipeline.py",
            "infusionnet/export/trt_compat/checker.py", "infusionnet/models/train/trainer.py"} <= set(names)
    # The bundled default model and its config.
    assert {"infusionnet/models/weights/infusionnet-default.safetensors",
            "infusionnet/models/weights/infusionnet-default.json"} <= set(names)


def test_installed_wheel_runs_from_another_folder(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "import infusionnet.runtime.images, infusionnet.export.trt_compat as c, infusionnet.models\n"
            "assert infusionnet.models.__file__.startswith(sys.argv[1]), infusionnet.models.__file__\n"
            "assert c.known_versions()\n"
            "from infusionnet.models.default_model import default_checkpoint\n"
            "assert str(default_checkpoint()).startswith(sys.argv[1])\n"
            "from infusionnet.cli.main import main; sys.exit(main(['--help']))")
    # Run outside the repository so the source folders cannot be picked up by accident.
    result = subprocess.run([sys.executable, "-c", code, str(target)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "stylize" in result.stdout and "bench" in result.stdout


def test_setup_cfg_lists_every_package():
    # setuptools installs only the packages setup.cfg names: a new subpackage left out of the list
    # works in an editable install and is missing from the wheel.
    import configparser
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    folders = {folder: f"infusionnet.{folder}" for folder in ("models", "export", "runtime", "benchmarks", "cli")}
    found = {".".join([folders[init.relative_to(ROOT).parts[0]]] + list(init.relative_to(ROOT).parts[1:-1]))
             for folder in folders for init in (ROOT / folder).rglob("__init__.py")}
    assert found - listed == set(), "add these to [options] packages in setup.cfg"
    assert listed - found == set(), "setup.cfg lists packages that no longer exist"
