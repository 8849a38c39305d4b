"""Which files in a folder are images (by suffix)."""
from pathlib import Path
from typing import List

from infusionnet.runtime.fileio import PathLike

from .errors import ImageError

# Suffixes treated as images when listing folders (all decoded by the opencv-python wheels).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff",
                  ".ppm", ".pgm", ".pbm", ".pnm", ".gif", ".avif", ".jp2")


def is_image_file(path: PathLike) -> bool:
    """Whether the name has an image suffix (the contents are not looked at)."""
    return Path(path).suffix.lower() in IMAGE_SUFFIXES


def list_images(folder: PathLike, recursive: bool = False) -> List[Path]:
    """Image files in ``folder`` (sorted; hidden files skipped); ImageError if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImageError(f"cannot list images in {folder}: " +
                         ("not a folder" if folder.exists() else "no such folder"))
    candidates = folder.rglob("*") if recursive else folder.iterdir()
    # Hidden names include macOS "._photo.jpg" resource forks, which are not images.
    found = sorted((p for p in candidates if p.is_file() and is_image_file(p)
                    and not any(part.startswith(".") for part in p.relative_to(folder).parts)),
                   key=lambda p: str(p.relative_to(folder)))
    if not found:
        raise ImageError(f"no images in {folder}{' (searched recursively)' if recursive else ''}; "
                         f"looked for {', '.join(IMAGE_SUFFIXES)}")
    return found
