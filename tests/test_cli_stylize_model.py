"""`infusionnet stylize --model DIR --backend ...`: the deployed path through the runtime Stylizer."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from infusionnet.cli.main import main
from infusionnet.runtime import images
from runtime_exports import export


@pytest.fixture
def content(tmp_path):
    path = tmp_path / "photo.png"
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (37, 45, 3), dtype=np.uint8))
    return path


def test_onnxruntime_and_torch_backends_write_the_same_images(content, tmp_path):
    model = export("split", dynamic=True)
    results = {}
    for backend in ("onnxruntime", "torch"):
        out = tmp_path / backend
        assert main(["stylize", "--model", str(model), "--backend", backend, "--content", str(content),
                     "--style", "sample:gravel", "sample:retina", "--resize", "keep", "--grid", "-o", str(out)]) == 0
        assert sorted(p.name for p in out.iterdir()) == sorted(
            f"photo__{s}{suffix}.png" for s in ("gravel", "retina") for suffix in ("", "_grid"))
        results[backend] = images.read_image(out / "photo__gravel.png")
    assert results["onnxruntime"].shape == (37, 45, 3)  # padded to 40x48 for the network, cropped back
    assert np.abs(results["onnxruntime"].astype(int) - results["torch"]).max() <= 1


def test_the_command_line_loads_the_torch_backend_it_is_asked_for(content, tmp_path):
    # A fresh process: the runtime does not know the PyTorch backend until the CLI loads it.
    code = ("import sys\nfrom infusionnet.cli.main import main\n"
            "assert 'infusionnet.models.torch_backend' not in sys.modules\n"
            "sys.exit(main(sys.argv[1:]))")
    out = tmp_path / "out"
    result = subprocess.run([sys.executable, "-c", code, "stylize", "--model", str(export("split", dynamic=True)),
                             "--backend", "torch", "--content", str(content), "--style", "sample:gravel",
                             "--size", "keep", "-o", str(out)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert [p.name for p in out.iterdir()] == ["photo__gravel.png"]


def test_baked_model_names_outputs_after_its_style(content, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["stylize", "--model", str(export("baked", dynamic=False, style_image="sample:gravel")),
                 "--content", str(content), "--resize", "keep", "-o", str(out)]) == 0
    assert "style baked in (gravel.png)" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["photo__gravel.png"]
    assert images.read_image(out / "photo__gravel.png").shape == (37, 45, 3)  # static 32x32: resized back


@pytest.mark.parametrize("extra, message", [
    (["--backend", "onnxruntime"], "--backend onnxruntime needs --model DIR"),
    (["--model", "MODEL", "--frequencies"], "--frequencies is not available with --model"),
    (["--model", "MODEL", "--style-low", "sample:gravel"], "--style-low is not available with --model"),
    (["--model", "MODEL", "--backend", "tensorrt"], "build engines first"),
    (["--model", "nowhere"], "does not exist"),
])
def test_model_path_errors(extra, message, content, tmp_path, capsys):
    extra = [str(export("split", dynamic=True)) if e == "MODEL" else e for e in extra]
    out = tmp_path / "out"
    assert main(["stylize", "--content", str(content), "-o", str(out)] + extra) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and message in err[-1]
    assert not out.exists()
