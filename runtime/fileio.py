"""Atomic file and directory writes: a reader never sees a half-written output."""
import errno
import hashlib
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Union

from .errors import InfusionNetError

PathLike = Union[str, "os.PathLike[str]"]


class OutputLocationError(InfusionNetError):
    """An output cannot be written where the user asked (message names the path and the reason)."""


def describe_os_error(error: OSError, path: Optional[PathLike] = None, action: Optional[str] = None) -> str:
    """One line for an OSError: the path it concerns and the reason in words ("Permission denied").

    ``path`` names the user's path when the error's own filename is a temporary one beside it;
    ``action`` ("write", "read") starts the line with "cannot ACTION".
    """
    where = path if path is not None else (error.filename if error.filename is not None else "a file")
    reason = error.strerror or str(error)
    hint = {errno.EACCES: "choose a folder you can write to", errno.EPERM: "choose a folder you can write to",
            errno.EROFS: "the file system is read-only; choose another location",
            errno.ENOSPC: "the disk is full; free space or choose another location",
            errno.ENOTDIR: "a part of this path is a file, not a folder",
            errno.EEXIST: "a file is in the way"}.get(error.errno or 0)
    text = f"{where}: {reason}" + (f" ({hint})" if hint else "")
    return f"cannot {action} {text}" if action else text


def check_output_location(path: PathLike, directory: bool = False) -> Path:
    """Fail now, before any work, if ``path`` (a file, or a folder with ``directory``) cannot be written.

    The nearest existing ancestor must be a writable folder: a regular file in the way, a
    read-only file system or /proc are refused with OutputLocationError naming the path. Nothing
    is created. Returns ``path`` as a Path.
    """
    path = Path(path)
    if directory and path.exists() and not path.is_dir():
        raise OutputLocationError(f"cannot write {path}: it exists and is not a folder")
    if not directory and path.is_dir():
        raise OutputLocationError(f"cannot write {path}: it is a folder (give a file name)")
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputLocationError(f"cannot write {path}: {ancestor} is a file, not a folder")
    # Atomic outputs are built beside the target; files of an output folder are written inside it.
    for folder in [ancestor] + ([path] if directory and path.is_dir() else []):
        _probe(folder, path)
    return path


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; it replaces ``path`` only if the block succeeds.

    The temporary name keeps the final suffix, so writers that pick a format from the file
    name (OpenCV, torch, onnx) still do.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=str(path.parent))
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        # mkstemp makes the file private (0600); give it the mode a plain open() would have.
        os.chmod(str(tmp), 0o666 & ~_current_umask())
        os.replace(str(tmp), str(path))
    finally:
        if tmp.exists():
            tmp.unlink()


def _probe(folder: Path, path: Path) -> None:
    """Create and remove a file in ``folder``: answers what access() cannot (read-only mounts,
    /proc, ACLs, quotas)."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".infusionnet-write-check.", dir=str(folder))
    except OSError as error:
        if error.errno == errno.ENOENT:  # the folder exists but refuses new files: /proc, /sys
            raise OutputLocationError(f"cannot write {path}: {folder} does not accept new files (a virtual "
                                      "file system such as /proc?); choose another location") from None
        raise OutputLocationError(describe_os_error(error, path, "write")) from None
    os.close(fd)
    os.unlink(probe)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_directory(path: PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that becomes ``path`` only if the block succeeds.

    On failure nothing is left behind; on success an existing ``path`` is replaced only when
    ``overwrite`` is set (otherwise FileExistsError is raised before any work starts).
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=str(path.parent)))
    try:
        yield tmp
        # mkdtemp makes the folder private (0700); give it the mode a plain mkdir() would have,
        # so other users, services and containers can read the export.
        os.chmod(str(tmp), 0o777 & ~_current_umask())
        if path.exists():
            shutil.rmtree(str(path))
        os.replace(str(tmp), str(path))
    finally:
        if tmp.exists():
            shutil.rmtree(str(tmp), ignore_errors=True)


def file_sha256(path: PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (checkpoints and engines can be large)."""
    digest = hashlib.sha256()
    with open(str(path), "rb") as handle:
        for block in iter(lambda: handle.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()
