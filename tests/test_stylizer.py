"""Stylizer over real exports: backends agree, styles switch, sizes and colours handled, errors clear."""
import json
import shutil

import numpy as np
import pytest
import torch

from infusionnet.models.torch_backend import reference_model
from infusionnet.runtime import images, samples
from infusionnet.runtime.backend import BackendError
from infusionnet.runtime.errors import InfusionNetError
from infusionnet.runtime.manifest import Manifest
from infusionnet.runtime.stylizer import StyleError, Stylizer
from runtime_exports import export


@pytest.fixture(scope="module")
def split():
    return export("split", dynamic=True)


@pytest.fixture(scope="module")
def frame():
    return np.ascontiguousarray(samples.load_sample("coffee")[:37, :45])  # odd size: padded, cropped back


@pytest.fixture(scope="module")
def styles():
    return samples.load_sample("hubble_deep_field"), samples.load_sample("gravel")


def test_onnxruntime_and_torch_stylizers_agree_with_the_model(split, frame, styles):
    outputs = {}
    for backend in ("onnxruntime", "torch"):
        with Stylizer(split, backend=backend) as stylizer:
            stylizer.set_style(styles[0])
            outputs[backend] = stylizer.stylize(frame)
    assert outputs["onnxruntime"].shape == frame.shape and outputs["onnxruntime"].dtype == np.uint8
    assert np.abs(outputs["onnxruntime"].astype(int) - outputs["torch"]).max() <= 1
    # The same pipeline by hand: pad to 40x48, model, crop back.
    model = reference_model(Manifest.load(split))
    content, restore = images.prepare_image(frame, "keep")
    style, _ = images.prepare_image(styles[0], "square:96")
    with torch.no_grad():
        out = model(torch.from_numpy(images.normalize(content)), torch.from_numpy(images.normalize(style)))
    expected = images.restore_image(images.denormalize(out.numpy())[0], restore)
    assert np.abs(outputs["onnxruntime"].astype(int) - expected).max() <= 1


def test_style_switching_and_bgr(split, frame, styles):
    stylizer = Stylizer(split)  # opens on first use, as the video pipeline (runtime/video/) uses it
    content = images.normalize(frame[:32, :40])

    def raw():  # the untrained net's uint8 output is nearly flat grey: compare the float output
        return stylizer.frames.run({"content": content})["stylized"]

    try:
        stylizer.set_style(styles[0])
        first, first_raw = stylizer.stylize(frame), raw()
        kernels = stylizer.style_kernels()["AdaOctConv1_1.h.spatial"]
        stylizer.set_style(styles[1])
        assert np.abs(raw() - first_raw).max() > 1e-6  # untrained: styles move the output by ~2e-5
        assert not np.allclose(stylizer.style_kernels()["AdaOctConv1_1.h.spatial"], kernels)
        stylizer.set_style(styles[0])  # back: exactly the first style again
        np.testing.assert_array_equal(raw(), first_raw)
        np.testing.assert_array_equal(stylizer.stylize(frame), first)
        bgr = stylizer.stylize(np.ascontiguousarray(frame[..., ::-1]), bgr=True)
        np.testing.assert_array_equal(bgr, first[..., ::-1])
    finally:
        stylizer.close()


def test_static_export_letterboxes_or_refuses_other_sizes(frame, styles):
    full = export("full", dynamic=False)
    with Stylizer(full) as stylizer:
        stylizer.set_style(styles[0])
        assert stylizer.stylize(frame).shape == frame.shape          # letterboxed into 32x32 and back
        assert stylizer.stylize(frame[:32, :32]).shape == (32, 32, 3)  # the export size as is
    with Stylizer(full, size_mismatch="error") as stylizer:
        stylizer.set_style(styles[0])
        with pytest.raises(images.ImageError, match=r"frame is 37x45 but .* exported for 32x32 \(static size\)"):
            stylizer.stylize(frame)


def test_baked_export_has_its_style_built_in(frame, styles):
    baked = export("baked", dynamic=False, style_image="sample:gravel")
    for backend in ("onnxruntime", "torch"):
        with Stylizer(baked, backend=backend) as stylizer:
            assert stylizer.stylize(frame).shape == frame.shape  # no set_style needed
            with pytest.raises(StyleError, match="baked into the graph.*--graph split"):
                stylizer.set_style(styles[0])


def test_frame_errors(split, frame, styles):
    with Stylizer(split) as stylizer:
        with pytest.raises(StyleError, match="call set_style"):
            stylizer.stylize(frame)
        stylizer.set_style(styles[0])
        with pytest.raises(images.ImageError, match="batch 1: pass 1 frames"):
            stylizer.stylize(np.stack([frame, frame]))
        with pytest.raises(images.ImageError, match="frame must be uint8"):
            stylizer.stylize(frame.astype(np.float32))


def test_model_directory_errors(tmp_path, split):
    with pytest.raises(BackendError, match="does not exist"):
        Stylizer(tmp_path / "nowhere")
    with pytest.raises(BackendError, match="neither an ONNX export .* nor a TensorRT engine directory"):
        Stylizer(tmp_path)
    with pytest.raises(BackendError, match="build engines first with `infusionnet export trt"):
        Stylizer(split, backend="tensorrt")
    with pytest.raises(BackendError, match="unknown backend 'coreml'"):
        Stylizer(split, backend="coreml")
    broken = tmp_path / "broken"
    shutil.copytree(split, broken)
    (broken / "content.onnx").unlink()
    with pytest.raises(InfusionNetError, match="content.onnx .* is missing"):
        Stylizer(broken)


def test_the_torch_backend_is_built_only_once_registered(split, monkeypatch):
    # The runtime imports nothing from models/: importing models.torch_backend registers it.
    from infusionnet.runtime import stylizer as stylizer_module
    monkeypatch.delitem(stylizer_module.REGISTERED_BACKENDS, "torch")
    with pytest.raises(BackendError, match="torch backend is not loaded.*import infusionnet.models.torch_backend"):
        Stylizer(split, backend="torch")
    with pytest.raises(ValueError, match="unknown backend 'coreml'"):
        stylizer_module.register_backend("coreml", lambda manifest, checkpoint, **options: {})


def test_torch_reference_needs_the_exported_checkpoint(split, tmp_path):
    data = json.loads((split / "manifest.json").read_text())
    data["checkpoint"] = {"file": None, "sha256": "untrained-seed-0"}
    with pytest.raises(BackendError, match="untrained network .* drop --checkpoint"):
        reference_model(Manifest(data, split), checkpoint=tmp_path / "main.pth")
    data["checkpoint"] = {"file": "main.pth", "sha256": "ab" * 32}
    with pytest.raises(BackendError, match=r"needs the checkpoint .* main.pth, which is not here; pass --checkpoint"):
        reference_model(Manifest(data, tmp_path))
    other = tmp_path / "other.pth"
    other.write_bytes(b"weights")
    with pytest.raises(BackendError, match=r"other.pth .* is not the one .* exported from"):
        reference_model(Manifest(data, tmp_path), checkpoint=other)
