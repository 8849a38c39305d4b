"""`infusionnet stylize` end to end on small images, through the real console entry point."""
import subprocess
import sys

import cv2
import numpy as np
import pytest

from infusionnet.cli.main import main


def _write(path, height, width, seed=0):
    rng = np.random.default_rng(seed)
    cv2.imwrite(str(path), rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return path


@pytest.fixture
def pictures(tmp_path):
    folder = tmp_path / "content"
    folder.mkdir()
    _write(folder / "a.png", 37, 45, 1)      # odd sizes: padded to multiples of 8 and cropped back
    _write(folder / "b.jpg", 40, 32, 2)
    (folder / "notes.txt").write_text("not an image")
    style = _write(tmp_path / "style.png", 120, 140, 3)
    style2 = _write(tmp_path / "style2.png", 100, 100, 4)
    return folder, style, style2


def test_folder_times_styles_writes_every_pair_at_input_size(pictures, tmp_path, capsys):
    folder, style, style2 = pictures
    out = tmp_path / "out"
    code = main(["stylize", "--content", str(folder), "--style", str(style), str(style2),
                 "--resize", "keep", "--style-size", "96", "--grid", "--frequencies", "-o", str(out)])
    assert code == 0
    assert "UNTRAINED" not in capsys.readouterr().err  # the bundled default model runs
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(f"{c}__{s}{suffix}.png" for c in ("a", "b") for s in ("style", "style2")
                           for suffix in ("", "_high", "_low", "_grid"))
    assert cv2.imread(str(out / "a__style.png")).shape == (37, 45, 3)
    assert cv2.imread(str(out / "b__style2_high.png")).shape == (40, 32, 3)
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "temporary files left behind"


def test_output_matches_the_model_called_directly(pictures, tmp_path):
    import torch
    from infusionnet.models.default_model import resolve_network
    from infusionnet.runtime import images

    folder, style, _ = pictures
    out = tmp_path / "out"
    assert main(["stylize", "--content", str(folder / "b.jpg"), "--style", str(style), "--resize", "keep",
                 "--style-size", "96", "-o", str(out)]) == 0
    model = resolve_network(None)[0]  # no --checkpoint: the bundled default model
    content = images.normalize(images.read_image(folder / "b.jpg"))
    style_rgb, _ = images.prepare_image(images.read_image(style), images.parse_resize("square:96"))
    with torch.no_grad():
        expected = images.denormalize(model(torch.from_numpy(content),
                                            torch.from_numpy(images.normalize(style_rgb))).numpy())[0]
    written = images.read_image(out / "b__style.png")
    assert np.abs(written.astype(int) - expected.astype(int)).max() <= 1


def test_style_mixing_names_both_styles(pictures, tmp_path):
    folder, style, style2 = pictures
    out = tmp_path / "out"
    assert main(["stylize", "--content", str(folder / "a.png"), "--style", str(style), "--style-low",
                 str(style2), "--resize", "32x32", "--style-size", "96", "-o", str(out)]) == 0
    assert (out / "a__style+style2.png").is_file()


@pytest.mark.parametrize("extra, message", [
    (["--style-size", "100"], "multiple of 32"),
    (["--resize", "banana"], "banana"),
    (["--checkpoint", "missing.pth"], "missing.pth"),
    (["--device", "cuda"], "CUDA"),
])
def test_bad_arguments_give_one_line_errors_and_no_output(pictures, tmp_path, capsys, extra, message):
    folder, style, _ = pictures
    out = tmp_path / "out"
    if extra[:2] == ["--device", "cuda"]:
        import torch
        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA GPU")
    code = main(["stylize", "--content", str(folder / "a.png"), "--style", str(style), "-o", str(out)] + extra)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err[-1].startswith("error: ") and message in err[-1]
    assert "Traceback" not in "\n".join(err)
    assert not out.exists()


def test_corrupt_content_image_is_named(pictures, tmp_path, capsys):
    _, style, _ = pictures
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nthis is not really a png")
    code = main(["stylize", "--content", str(broken), "--style", str(style), "-o", str(tmp_path / "o")])
    assert code == 2
    assert "broken.png" in capsys.readouterr().err


def test_console_script_help_teaches_with_examples():
    result = subprocess.run([sys.executable, "-m", "infusionnet.cli.main", "stylize", "--help"],
                            capture_output=True, text=True, check=True)
    assert "examples:" in result.stdout and "square:256" in result.stdout


def test_sheet_puts_every_result_in_one_picture(pictures, tmp_path):
    folder, style, style2 = pictures
    out = tmp_path / "out"
    assert main(["stylize", "--content", str(folder), "--style", str(style), str(style2), "--style-size", "96",
                 "--resize", "keep", "--sheet", "-o", str(out)]) == 0
    sheet = cv2.imread(str(out / "sheet.png"))
    tile = 192
    # A header row and one row per content (2); a blank corner and 2 style columns + the content.
    assert sheet.shape[0] > 3 * tile and sheet.shape[1] >= 3 * tile + 2 * 8
    assert main(["stylize", "--model", str(tmp_path), "--sheet", "-o", str(out)]) == 2
