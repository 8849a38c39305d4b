"""Calibration batching: full fixed-size batches, wrap-around, both reader protocols."""
import numpy as np
import pytest

from infusionnet.runtime.calibration import CalibrationError, CalibrationFeed, batch_indices


def test_batch_indices_wrap_the_last_batch():
    assert batch_indices(5, 2) == [[0, 1], [2, 3], [4, 0]]
    assert batch_indices(4, 2) == [[0, 1], [2, 3]]
    assert batch_indices(1, 3) == [[0, 0, 0]]       # fewer images than one batch
    assert batch_indices(10, 2, limit=2) == [[0, 1], [2, 3]]


def test_batch_indices_refuse_nothing():
    with pytest.raises(CalibrationError, match="no calibration images"):
        batch_indices(0, 1)
    with pytest.raises(CalibrationError, match="at least 1"):
        batch_indices(3, 0)


def _arrays(count):
    # One distinct constant image per source, so batches show which images they hold.
    return [np.full((8, 8, 3), i, dtype=np.uint8) for i in range(count)]


def _loader(rgb):
    return rgb.transpose(2, 0, 1)[None].astype(np.float32)


def test_feed_dicts_for_iteration_and_the_onnxruntime_protocol():
    feed = CalibrationFeed(_arrays(3), "content", batch=2, size=(8, 8), loader=_loader)
    batches = list(feed)
    assert len(feed) == len(batches) == 2
    assert set(batches[0]) == {"content"}
    assert batches[0]["content"].shape == (2, 3, 8, 8) and batches[0]["content"].dtype == np.float32
    assert [b["content"][:, 0, 0, 0].tolist() for b in batches] == [[0, 1], [2, 0]]
    # get_next/rewind give the same batches, then None.
    pulled = [feed.get_next(), feed.get_next(), feed.get_next()]
    assert pulled[2] is None
    np.testing.assert_array_equal(pulled[1]["content"], batches[1]["content"])
    feed.rewind()
    np.testing.assert_array_equal(feed.get_next()["content"], batches[0]["content"])


def test_loader_shape_mismatch_is_reported():
    feed = CalibrationFeed(_arrays(2), "content", batch=1, size=(16, 16), loader=_loader)
    with pytest.raises(CalibrationError, match=r"\(1, 3, 8, 8\), expected \(1, 3, 16, 16\)"):
        next(iter(feed))
