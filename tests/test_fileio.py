import os
import stat

import pytest

from infusionnet.runtime.fileio import atomic_directory, atomic_path


def test_atomic_path_replaces_only_on_success_with_normal_permissions(tmp_path):
    target = tmp_path / "out" / "result.txt"
    with atomic_path(target) as tmp:
        assert tmp.suffix == ".txt" and tmp.parent == target.parent
        tmp.write_text("done")
    assert target.read_text() == "done"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("writer failed")
    assert target.read_text() == "done"
    assert sorted(p.name for p in target.parent.iterdir()) == ["result.txt"]


def test_atomic_directory_leaves_nothing_on_failure_and_refuses_to_overwrite(tmp_path):
    target = tmp_path / "export"
    with pytest.raises(ValueError):
        with atomic_directory(target) as tmp:
            (tmp / "a.onnx").write_text("x")
            raise ValueError("verification failed")
    assert list(tmp_path.iterdir()) == []
    with atomic_directory(target) as tmp:
        (tmp / "a.onnx").write_text("x")
    assert (target / "a.onnx").read_text() == "x"
    with pytest.raises(FileExistsError, match="--overwrite"):
        with atomic_directory(target):
            pass
    with atomic_directory(target, overwrite=True) as tmp:
        (tmp / "b.onnx").write_text("y")
    assert sorted(p.name for p in target.iterdir()) == ["b.onnx"]
