"""A user's own images in class-per-subfolder layout: `<root>/<split>/<class>/<image>`.

Files are listed once per split and checked with PIL; a file that cannot be decoded at all is
skipped and counted (`FolderSplit.skipped`), everything else (grayscale, CMYK, PNG bytes in a
`.JPEG`, animated GIF) is decoded to 3 channels by the pipeline.
"""

from __future__ import annotations

import dataclasses
import os

from absl import logging

from inception_flax import paths

_EXTENSIONS = {".jpg", ".jpeg", ".png", ".gif", ".bmp"}


@dataclasses.dataclass(frozen=True)
class FolderSplit:
    files: list[str]
    labels: list[int]
    classes: list[str]
    skipped: list[str]


def _decodable(path: str) -> bool:
    from PIL import Image

    try:
        with paths.path(path).open("rb") as f, Image.open(f) as image:
            image.load()
        return True
    except Exception:
        return False


def scan(root: str | os.PathLike, split: str, classes: list[str] | None = None) -> FolderSplit:
    """Lists `<root>/<split>/<class>/*` in sorted order; classes default to the sorted subfolders."""
    split_dir = paths.path(root) / split
    if not split_dir.is_dir():
        raise FileNotFoundError(
            f"Image folder split {split_dir} does not exist (expected <root>/<split>/<class>/<image>)."
        )
    classes = classes or sorted(p.name for p in split_dir.iterdir() if p.is_dir())
    files, labels, skipped = [], [], []
    for label, name in enumerate(classes):
        for path in sorted((split_dir / name).iterdir()) if (split_dir / name).is_dir() else []:
            if os.path.splitext(path.name)[1].lower() not in _EXTENSIONS:
                continue
            if _decodable(str(path)):
                files.append(str(path))
                labels.append(label)
            else:
                skipped.append(str(path))
    if skipped:
        logging.warning("Skipping %d undecodable images in %s, e.g. %s", len(skipped), split_dir, skipped[0])
    if not files:
        raise FileNotFoundError(f"No decodable images under {split_dir}.")
    return FolderSplit(files, labels, classes, skipped)
