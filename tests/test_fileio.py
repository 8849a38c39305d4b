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


def test_atomic_directory_gets_the_mode_of_a_plain_mkdir(tmp_path):
    mask = os.umask(0o022)
    try:
        with atomic_directory(tmp_path / "export") as tmp:
            assert stat.S_IMODE(tmp.stat().st_mode) == 0o700  # private while it is being built
        assert stat.S_IMODE((tmp_path / "export").stat().st_mode) == 0o755
    finally:
        os.umask(mask)


def test_check_output_location_refuses_before_creating_anything(tmp_path):
    from infusionnet.runtime.fileio import OutputLocationError, check_output_location

    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(OutputLocationError, match=r"file\.txt is a file, not a folder"):
        check_output_location(blocker / "out", directory=True)
    with pytest.raises(OutputLocationError, match="exists and is not a folder"):
        check_output_location(blocker, directory=True)
    with pytest.raises(OutputLocationError, match="is a folder"):
        check_output_location(tmp_path)
    with pytest.raises(OutputLocationError, match="cannot write /proc/nowhere/x.mp4: "):
        check_output_location("/proc/nowhere/x.mp4")
    assert check_output_location(tmp_path / "a" / "b" / "out.png") == tmp_path / "a" / "b" / "out.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]  # nothing created, probe removed
