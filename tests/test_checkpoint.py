"""Checkpoint loading and saving (models/checkpoint.py).

Official-format inputs are synthetic: seeded random weights laid out by official_reference.py
from architecture.md and saved the way the authors save theirs, so a naming mistake in the
project's model cannot produce a checkpoint that it then happily reads back."""
import hashlib
import json
import os
import pickle
import re
import zipfile
from pathlib import Path

import pytest
import torch

import official_reference as ref
from infusionnet.models import (CheckpointError, InfusionNet, build_model, detect_variant, file_sha256,
                                load_checkpoint, save_checkpoint, save_official_checkpoint)
from infusionnet.runtime.errors import InfusionNetError

VARIANTS = ref.VARIANTS
JPEG_BYTES = bytes.fromhex("ffd8ffe000104a46494600010101004800480000") + bytes(range(256)) * 4


def write_official(path: Path, state: dict, **options) -> Path:
    torch.save(ref.official_checkpoint(state, **options), path)
    return path


@pytest.fixture(scope="module")
def official_files(tmp_path_factory, official_states):
    """variant -> a synthetic official checkpoint (with optimizer states), written once."""
    folder = tmp_path_factory.mktemp("official")
    return {variant: write_official(folder / f"{variant}.pth", state) for variant, state in official_states.items()}


@pytest.fixture(scope="module")
def inputs():
    generator = torch.Generator().manual_seed(5)
    return torch.randn(1, 3, 32, 48, generator=generator), torch.randn(1, 3, 96, 96, generator=generator)


def model_with(variant, official_states):
    """A project model holding the synthetic official weights."""
    model = build_model(variant)
    model.load_state_dict(official_states[variant], strict=True)
    return model


def assert_same_weights(model, state):
    loaded = model.state_dict()
    assert set(loaded) == set(state)
    for key, tensor in state.items():
        assert torch.equal(loaded[key], tensor), key


def stylize(model, inputs):
    with torch.no_grad():
        return model(*inputs, return_frequencies=True)


def leftovers(folder: Path, expected) -> set:
    """Files in ``folder`` other than ``expected`` (temporary files of atomic writes start with '.')."""
    return {p.name for p in folder.iterdir()} - set(expected)


# ---------------------------------------------------------------------------------------------
# Official format

@pytest.mark.parametrize("variant", VARIANTS)
def test_official_checkpoint_loads_strictly_and_reproduces_reference(official_files, official_states, inputs,
                                                                      variant):
    model = load_checkpoint(official_files[variant])
    assert model.variant == variant and not model.training
    assert_same_weights(model, official_states[variant])
    expected = ref.stylize(official_states[variant], variant, *inputs)
    for actual, wanted in zip(stylize(model, inputs), expected):
        assert ref.relative_error(actual, wanted) < 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_is_detected_and_explicit_variant_is_checked(official_files, official_states, variant):
    other = next(v for v in VARIANTS if v != variant)
    assert detect_variant(official_states[variant]) == variant
    assert load_checkpoint(official_files[variant], variant=variant).variant == variant
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(official_files[variant], variant=other)
    message = str(caught.value)
    assert str(official_files[variant]) in message and other in message and variant in message


def test_dataparallel_module_prefix_is_tolerated(tmp_path, official_states):
    state = official_states["aesfa"]
    path = write_official(tmp_path / "dp.pth", state, module_prefix=True)
    assert next(iter(torch.load(path, weights_only=True)["netE"])).startswith("module.")
    model = load_checkpoint(path)
    assert_same_weights(model, state)


def test_legacy_serialization_and_flat_state_dict_load(tmp_path, official_states):
    state = official_states["aesfa"]
    legacy = tmp_path / "legacy.pth"
    torch.save(ref.official_checkpoint(state), legacy, _use_new_zipfile_serialization=False)
    assert_same_weights(load_checkpoint(legacy), state)
    flat = tmp_path / "flat.pth"
    torch.save(dict(state), flat)  # a whole-network state_dict: netE.* / netS.* / netG.* keys
    assert_same_weights(load_checkpoint(flat), state)


def test_save_official_checkpoint_round_trip(tmp_path, official_states):
    model = model_with("infusionnet", official_states)
    path = save_official_checkpoint(model, tmp_path / "out.pth", extra={"optim_E": ref.adam_state()})
    loaded = torch.load(path, weights_only=True)
    assert set(loaded) == {"netE", "netS", "netG", "optim_E"}
    assert_same_weights(load_checkpoint(path), official_states["infusionnet"])
    assert leftovers(tmp_path, ["out.pth"]) == set()


# ---------------------------------------------------------------------------------------------
# Project format (.safetensors + .json)

@pytest.mark.parametrize("variant", VARIANTS)
def test_project_format_round_trip(tmp_path, official_states, inputs, variant):
    model = model_with(variant, official_states)
    path = save_checkpoint(model, tmp_path / "model", extra={"trained_steps": 12})
    assert path == tmp_path / "model.safetensors"
    assert {p.name for p in tmp_path.iterdir()} == {"model.safetensors", "model.json"}
    config = json.loads((tmp_path / "model.json").read_text())
    assert config == {"variant": variant, "nf": 64, "style_channels": [ref.STYLE_CHANNELS[variant]] * 2,
                      "format": "infusionnet-edge/1", "trained_steps": 12}
    loaded = load_checkpoint(path)
    assert loaded.variant == variant
    assert_same_weights(loaded, official_states[variant])
    for a, b in zip(stylize(loaded, inputs), stylize(model, inputs)):
        assert torch.equal(a, b)


def test_project_format_without_json_uses_header_metadata(tmp_path, official_states):
    from safetensors import safe_open
    from safetensors.torch import save_file
    model = model_with("infusionnet", official_states)
    path = save_checkpoint(model, tmp_path / "model.safetensors")
    (tmp_path / "model.json").unlink()
    with safe_open(str(path), framework="pt") as f:
        assert json.loads(f.metadata()["infusionnet_config"])["variant"] == "infusionnet"
    assert_same_weights(load_checkpoint(path), official_states["infusionnet"])

    # Proof that the header is read: a header that contradicts the weights is reported...
    lying = tmp_path / "lying.safetensors"
    save_file(dict(official_states["infusionnet"]), str(lying),
              metadata={"infusionnet_config": json.dumps({"variant": "aesfa", "nf": 64})})
    with pytest.raises(CheckpointError, match="config says variant 'aesfa'") as caught:
        load_checkpoint(lying)
    assert str(lying) in str(caught.value)
    # ...and a .json beside the weights takes precedence over the header.
    (tmp_path / "lying.json").write_text(json.dumps({"variant": "infusionnet", "nf": 64}))
    assert load_checkpoint(lying).variant == "infusionnet"


def test_unreadable_json_sidecar_is_reported(tmp_path, official_states):
    model = model_with("aesfa", official_states)
    path = save_checkpoint(model, tmp_path / "model")
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config") as caught:
        load_checkpoint(path)
    assert str(tmp_path / "model.json") in str(caught.value)


def test_file_sha256(tmp_path):
    path = tmp_path / "blob.bin"
    path.write_bytes(JPEG_BYTES)
    assert file_sha256(path) == hashlib.sha256(JPEG_BYTES).hexdigest()


# ---------------------------------------------------------------------------------------------
# Every loader error: CheckpointError (an InfusionNetError), one line, naming the file

def _truncate(source: Path, target: Path) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[:len(data) // 2])
    return target


def _modified_state(official_states, change):
    state = dict(official_states["infusionnet"])
    change(state)
    return state


def make_bad_file(kind: str, folder: Path, official_files, official_states) -> Path:
    """Write one kind of broken checkpoint into ``folder`` and return its path."""
    if kind == "missing":
        return folder / "nothing-here.pth"
    if kind == "directory":
        (folder / "a-folder.pth").mkdir()
        return folder / "a-folder.pth"
    if kind == "empty":
        (folder / "empty.pth").touch()
        return folder / "empty.pth"
    if kind in ("jpeg", "jpeg-safetensors"):
        path = folder / ("photo.pth" if kind == "jpeg" else "photo.safetensors")
        path.write_bytes(JPEG_BYTES)
        return path
    if kind == "truncated-pth":
        return _truncate(official_files["aesfa"], folder / "half.pth")
    if kind == "truncated-legacy-pth":
        legacy = folder / "legacy-full.pth"
        torch.save(ref.official_checkpoint(official_states["aesfa"]), legacy, _use_new_zipfile_serialization=False)
        return _truncate(legacy, folder / "half-legacy.pth")
    if kind == "truncated-safetensors":
        model = model_with("aesfa", official_states)
        return _truncate(save_checkpoint(model, folder / "full"), folder / "half.safetensors")
    if kind == "no-parts":
        path = folder / "other.pth"
        torch.save({"model": {"w": torch.ones(1)}, "epoch": 3}, path)
        return path
    if kind == "zip-not-torch":
        path = folder / "archive.pth"
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("readme.txt", "not a model")
        return path
    if kind == "part-not-dict":
        path = folder / "part.pth"
        torch.save({"netE": torch.ones(1), "netS": {}, "netG": {}}, path)
        return path
    if kind == "not-a-dict":
        path = folder / "list.pth"
        torch.save([torch.ones(1)], path)
        return path
    states = {
        "missing-keys": lambda s: (s.pop("netG.conv4.bias"), s.pop("netE.OctConv1_2.H2L.weight")),
        "unexpected-keys": lambda s: s.update({"netG.conv5.weight": torch.ones(1), "netS.extra": torch.ones(2)}),
        "shape-mismatch": lambda s: s.update({"netG.conv4.weight": torch.ones(3, 16, 1, 1)}),
        "no-variant-marker": lambda s: [s.pop(k) for k in list(s) if k.startswith("netS.OctConv3_1_high.")],
    }
    return write_official(folder / f"{kind}.pth", _modified_state(official_states, states[kind]), optimizers=False)


# kind -> regular expressions that must all match the message (after the file name)
BAD_FILES = {
    "missing": ["not found"],
    "directory": ["is a directory"],
    "empty": ["empty"],
    "jpeg": ["not a PyTorch checkpoint"],
    "jpeg-safetensors": ["corrupt safetensors"],
    "truncated-pth": ["truncated or corrupt"],
    "truncated-legacy-pth": ["truncated or corrupt"],
    "truncated-safetensors": ["truncated or corrupt"],
    "zip-not-torch": ["truncated or corrupt|not a PyTorch checkpoint"],
    "no-parts": [r"expected keys netE, netS, netG; found model, epoch"],
    "part-not-dict": ["netE is a Tensor, expected a state dict"],
    "not-a-dict": ["holds a list"],
    "missing-keys": [r"missing keys: .*netE\.OctConv1_2\.H2L\.weight", r"missing keys: .*netG\.conv4\.bias"],
    "unexpected-keys": [r"unexpected keys: .*netG\.conv5\.weight", r"unexpected keys: .*netS\.extra"],
    "shape-mismatch": [r"netG\.conv4\.weight \(expected \(3, 32, 1, 1\), found \(3, 16, 1, 1\)\)"],
    "no-variant-marker": ["cannot tell the variant"],
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_loader_errors_name_the_file_and_the_problem(tmp_path, official_files, official_states, kind):
    path = make_bad_file(kind, tmp_path, official_files, official_states)
    with pytest.raises(CheckpointError) as caught:
        load_checkpoint(path)
    message = str(caught.value)
    assert isinstance(caught.value, InfusionNetError)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message, message
    for pattern in BAD_FILES[kind]:
        assert re.search(pattern, message), (pattern, message)


class WritesMarker:
    """Unpickling this object would run code: it writes a marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({str(self.marker)!r}, 'w').write('pwned')",)


@pytest.mark.parametrize("container", ["torch-zip", "raw-pickle"])
def test_malicious_pickle_is_refused_without_running_it(tmp_path, container):
    marker = tmp_path / "marker.txt"
    payload = {"netE": WritesMarker(marker), "netS": {}, "netG": {}}
    path = tmp_path / "evil.pth"
    if container == "torch-zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    with pytest.raises(CheckpointError, match="refusing") as caught:
        load_checkpoint(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert not marker.exists()
    # The file really is dangerous: a plain unpickler runs the payload.
    if container == "torch-zip":
        torch.load(path, weights_only=False)
    else:
        pickle.loads(path.read_bytes())
    assert marker.read_text() == "pwned"


# ---------------------------------------------------------------------------------------------
# Atomic saves

class WriterFailed(RuntimeError):
    pass


def half_writer(real_bytes: bytes):
    """A writer that leaves half a file at the path it was given, then fails (disk full)."""
    def write(_obj, target, *args, **kwargs):
        Path(target).write_bytes(real_bytes[:len(real_bytes) // 2])
        raise WriterFailed("simulated failure mid-save")
    return write


def test_failed_project_save_leaves_nothing_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch,
                                                                             official_states):
    import safetensors.torch
    model = model_with("aesfa", official_states)
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.setattr(safetensors.torch, "save_file", half_writer(b"x" * 1000))
    with pytest.raises(WriterFailed):
        save_checkpoint(model, fresh / "model")
    assert leftovers(fresh, []) == set()

    monkeypatch.undo()
    existing = tmp_path / "existing"
    path = save_checkpoint(model, existing / "model")
    before = {p.name: p.read_bytes() for p in existing.iterdir()}
    monkeypatch.setattr(safetensors.torch, "save_file", half_writer(path.read_bytes()))
    with pytest.raises(WriterFailed):
        save_checkpoint(model, existing / "model")
    assert {p.name: p.read_bytes() for p in existing.iterdir()} == before


def test_failed_json_write_leaves_no_temporary_file(tmp_path, monkeypatch, official_states):
    model = model_with("aesfa", official_states)
    real_write_text = Path.write_text

    def failing_write_text(self, *args, **kwargs):
        real_write_text(self, "{\"partial", **{k: v for k, v in kwargs.items() if k == "encoding"})
        raise WriterFailed("simulated failure writing the config")

    monkeypatch.setattr(Path, "write_text", failing_write_text)
    with pytest.raises(WriterFailed):
        save_checkpoint(model, tmp_path / "model")
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())
    assert not (tmp_path / "model.json").exists()


def test_failed_official_save_leaves_nothing(tmp_path, monkeypatch, official_states):
    model = model_with("aesfa", official_states)
    monkeypatch.setattr(torch, "save", half_writer(b"PK\x03\x04" + b"x" * 1000))
    with pytest.raises(WriterFailed):
        save_official_checkpoint(model, tmp_path / "model.pth")
    assert leftovers(tmp_path, []) == set()


def test_successful_saves_leave_only_their_outputs(tmp_path, official_states):
    model = model_with("infusionnet", official_states)
    assert isinstance(model, InfusionNet)
    save_checkpoint(model, tmp_path / "a")
    save_official_checkpoint(model, tmp_path / "b.pth")
    assert {p.name for p in tmp_path.iterdir()} == {"a.safetensors", "a.json", "b.pth"}
    assert os.path.getsize(tmp_path / "a.safetensors") > 4 * 5_447_395  # all float32 weights written
