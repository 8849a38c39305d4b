"""Training data: folder listing, resize + crop, the deterministic pair stream, skipped files."""
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from infusionnet.models.train.data import (DataError, DrawSampler, PairStream, collate_pairs, list_images,
                                           make_loader, random_crop, resize_for_crop, usable_cpu_cores)
from infusionnet.runtime.images import denormalize


def write_images(folder: Path, count: int, seed: int, sizes=((40, 52), (48, 40))):
    """Small smooth random PNG/JPEG images, some in a subfolder."""
    rng = np.random.default_rng(seed)
    paths = []
    for index in range(count):
        height, width = sizes[index % len(sizes)]
        image = cv2.GaussianBlur((rng.random((height, width, 3)) * 255).astype(np.uint8), (5, 5), 0)
        sub = folder / ("nested" if index % 2 else "")
        sub.mkdir(parents=True, exist_ok=True)
        path = sub / f"img{index}.{'png' if index % 3 else 'jpg'}"
        cv2.imwrite(str(path), image)
        paths.append(path)
    return paths


@pytest.fixture
def folders(tmp_path):
    write_images(tmp_path / "content", 5, seed=0)
    write_images(tmp_path / "style", 3, seed=1)
    (tmp_path / "content" / "notes.txt").write_text("not an image")
    return tmp_path / "content", tmp_path / "style"


def test_list_images_is_recursive_and_sorted(folders):
    content, _ = folders
    files = list_images(content, "content")
    assert len(files) == 5
    assert any(p.parent.name == "nested" for p in files)
    assert all(p.suffix in (".png", ".jpg") for p in files)
    with pytest.raises(DataError, match="content folder"):
        list_images(content.parent / "absent", "content")


def test_resize_modes():
    image = np.zeros((40, 80, 3), np.uint8)
    assert resize_for_crop(image, 64, "short").shape == (64, 128, 3)   # aspect kept
    assert resize_for_crop(image, 64, "square").shape == (64, 64, 3)   # the authors' Resize([512, 512])
    with pytest.raises(ValueError):
        resize_for_crop(image, 64, "fit")
    crop = random_crop(np.arange(10 * 12 * 3, dtype=np.uint8).reshape(10, 12, 3), 4, np.random.default_rng(0))
    assert crop.shape == (4, 4, 3)


def test_stream_is_a_function_of_the_draw(folders):
    stream = PairStream.from_folders(*folders, crop=32, load_size=36, seed=7)
    first, again, other = stream[3], PairStream.from_folders(*folders, crop=32, load_size=36, seed=7)[3], stream[4]
    assert first["content"].shape == first["style"].shape == (3, 32, 32)
    assert first["content"].dtype == torch.float32
    assert torch.equal(first["content"], again["content"]) and torch.equal(first["style"], again["style"])
    assert not torch.equal(first["content"], other["content"])
    # ImageNet-normalized: denormalize gives back valid pixels, not a clipped mess.
    pixels = denormalize(first["content"].numpy())
    assert 10 < pixels.mean() < 245
    # Each pass over the content folder visits every image once, in a new order per pass.
    stream_paths = []
    for draw in range(10):
        epoch, position = divmod(draw, 5)
        stream_paths.append(stream.files[0][stream.permutation(0, epoch)[position]])
    assert sorted(map(str, stream_paths[:5])) == sorted(map(str, stream.files[0]))
    assert stream_paths[:5] != stream_paths[5:] or len(set(stream_paths)) == 5


def test_corrupt_image_is_skipped_and_reported(folders):
    content, style = folders
    bad = content / "nested" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 this is not a JPEG")
    (content / "empty.png").write_bytes(b"")
    stream = PairStream.from_folders(content, style, crop=32, load_size=36)
    skipped = set()
    for draw in range(14):  # two passes over the 7 content files
        sample = stream[draw]
        assert sample["content"].shape == (3, 32, 32)
        skipped.update(sample["skipped"])
    assert skipped == {str(bad), str(content / "empty.png")}


def test_no_readable_image_is_an_error(tmp_path):
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "a.png").write_bytes(b"junk")
    write_images(tmp_path / "style", 1, seed=0)
    stream = PairStream.from_folders(tmp_path / "content", tmp_path / "style", crop=32, load_size=36)
    with pytest.raises(DataError, match="none of the 1 content images can be read"):
        stream[0]


def test_sampler_splits_steps_the_same_for_processes_and_accumulation():
    ranks = [list(DrawSampler(2, 3, start_step=1, rank=r, world_size=2)) for r in range(2)]
    accumulated = list(DrawSampler(2, 3, start_step=1, accumulate=2))
    assert accumulated == [ranks[0][0], ranks[1][0], ranks[0][1], ranks[1][1]]
    assert accumulated[0] == [4, 5] and accumulated[-1] == [10, 11]
    assert len(DrawSampler(2, 3, start_step=1, accumulate=2)) == 4


def test_loader_workers_give_the_same_batches(folders):
    stream = PairStream.from_folders(*folders, crop=32, load_size=36)
    sampler = DrawSampler(2, 2)
    main = list(make_loader(stream, sampler, workers=0))
    workers = list(make_loader(stream, sampler, workers=2))
    assert len(main) == len(workers) == 2
    for a, b in zip(main, workers):
        assert torch.equal(a["content"], b["content"]) and torch.equal(a["style"], b["style"])
    batch = collate_pairs([stream[0], stream[1]])
    assert batch["content"].shape == (2, 3, 32, 32) and batch["skipped"] == []


def test_loader_starts_no_more_workers_than_usable_cores(folders):
    stream = PairStream.from_folders(*folders, crop=32, load_size=36)
    assert make_loader(stream, DrawSampler(2, 2), workers=1000).num_workers == usable_cpu_cores()
    assert make_loader(stream, DrawSampler(2, 2), workers=0).num_workers == 0


def test_usable_cores_fall_back_to_the_machines_count_where_affinity_is_unknown(monkeypatch):
    from infusionnet.models.train import data
    monkeypatch.setattr(data, "cpu_affinity", lambda: None)
    assert usable_cpu_cores() == (os.cpu_count() or 1)
    monkeypatch.setattr(data, "cpu_affinity", lambda: 1)
    assert usable_cpu_cores() == 1


def test_stream_rejects_bad_settings(folders):
    with pytest.raises(DataError, match="smaller than the crop"):
        PairStream.from_folders(*folders, crop=64, load_size=32)


def test_sources_mix_folders_files_and_samples(folders):
    from infusionnet.models.train.data import collect_images
    content, style = folders
    single = sorted(style.rglob("*.png"))[0]
    found = collect_images([str(content), str(single), "sample:rocket", str(single)], "content")
    assert len(found) == 5 + 1 + 1  # duplicates dropped, order kept
    assert found[-1].name == "rocket.jpg" and found[5] == single
    with pytest.raises(DataError, match="unknown sample"):
        collect_images(["sample:nope"], "style")
    with pytest.raises(DataError, match="not an image file"):
        collect_images([str(content / "notes.txt")], "content")


def test_augmentation_is_deterministic_and_varies_scale_flip_and_hue(folders):
    from infusionnet.models.train.data import rotate_hue
    stream = PairStream.from_folders(*folders, crop=32, load_size=48, seed=2, augment=True)
    again = PairStream.from_folders(*folders, crop=32, load_size=48, seed=2, augment=True)
    for draw in (0, 5, 11):
        assert torch.equal(stream[draw]["style"], again[draw]["style"])
        assert stream[draw]["content"].shape == (3, 32, 32)
    plain = PairStream.from_folders(*folders, crop=32, load_size=48, seed=2)
    assert any(not torch.equal(stream[d]["style"], plain[d]["style"]) for d in range(6))
    # Hue rotation turns red into green and keeps grey grey.
    red = np.zeros((4, 4, 3), np.uint8)
    red[..., 0] = 200
    green = rotate_hue(red, 120)
    assert green[0, 0, 1] > 150 and green[0, 0, 0] < 40
    grey = np.full((4, 4, 3), 128, np.uint8)
    assert np.array_equal(rotate_hue(grey, 90), grey)


def test_tone_jitter_darkens_brightens_and_desaturates():
    from infusionnet.models.train.data import jitter_tone
    rgb = np.random.default_rng(0).integers(0, 256, (8, 8, 3), dtype=np.uint8)
    assert np.array_equal(jitter_tone(rgb, 1.0, 1.0), rgb)
    assert jitter_tone(rgb, 2.5, 1.0).mean() < rgb.mean() - 30 < jitter_tone(rgb, 0.4, 1.0).mean() - 60
    grey = jitter_tone(rgb, 1.0, 0.0).astype(int)
    assert np.abs(grey - grey[..., :1]).max() <= 1  # no colour left


def test_tone_augmentation_changes_style_crops_only(folders):
    plain = PairStream.from_folders(*folders, crop=32, load_size=48, seed=2, augment=True)
    toned = PairStream.from_folders(*folders, crop=32, load_size=48, seed=2, augment=True, augment_tone=True)
    draws = range(12)
    assert all(torch.equal(plain[d]["content"], toned[d]["content"]) for d in draws)
    changed = [not torch.equal(plain[d]["style"], toned[d]["style"]) for d in draws]
    assert any(changed) and not all(changed)  # about half the style crops


def test_tone_augmentation_needs_augment():
    from infusionnet.models.train.config import TrainConfig, TrainingError
    with pytest.raises(TrainingError, match="--augment-tone"):
        TrainConfig(augment_tone=True, vgg_seed=0, content_dir="x", style_dir="y").validate()
