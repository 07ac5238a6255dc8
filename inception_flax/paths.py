"""Every path the project reads or writes, local or in a bucket, through one layer (etils.epath).

Workdirs, checkpoints, metrics, TensorBoard logs, study workdirs, `init_from`, `data_dir` and the
inputs and outputs of the scripts may be local paths or `gs://bucket/...` URLs. `resolve` is the
one place a user's path is interpreted: a local path becomes absolute (`~` expanded), a URL stays
as given, and a URL this stack cannot write is refused with one line, never turned into a local
path. Everything then goes through `epath.Path`, which hands `gs://` to TensorFlow's GCS file
system (or gcsfs without TensorFlow); orbax writes array data through tensorstore, which reads
`gs://` itself. No `os.path` call sees a URL.
"""

from __future__ import annotations

import os

from etils import epath

# Schemes every part of the stack reads and writes: orbax/tensorstore, TensorFlow's file system
# (TensorBoard, TFDS) and etils. s3:// and others lack one of them (TensorFlow dropped S3).
SCHEMES = ("gs",)


def is_url(path: str | os.PathLike) -> bool:
    return "://" in os.fspath(path)


def resolve(path: str | os.PathLike) -> str:
    """The canonical form of a user's path; ValueError for a URL of an unsupported scheme or without a bucket."""
    text = os.fspath(path)
    if not is_url(text):
        return os.path.abspath(os.path.expanduser(text))
    scheme, rest = text.split("://", 1)
    if scheme not in SCHEMES:
        raise ValueError(
            f"{text}: {scheme}:// is not supported; use a local path or gs://bucket/... (what orbax, "
            "TensorFlow and TFDS all read and write)."
        )
    if not rest.strip("/"):
        raise ValueError(f"{text}: name a bucket, e.g. gs://my-bucket/run.")
    return f"{scheme}://{rest.rstrip('/')}"


def path(p: str | os.PathLike) -> epath.Path:
    """`resolve(p)` as an epath.Path (local or gs://)."""
    return epath.Path(resolve(p))


def join(base: str | os.PathLike, *parts: str) -> str:
    return os.fspath(path(base).joinpath(*parts))


def read_text(p: str | os.PathLike) -> str:
    return path(p).read_text()


def write_text(p: str | os.PathLike, text: str) -> None:
    """Writes `p` whole, creating its parent folders."""
    target = path(p)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)


def append_text(p: str | os.PathLike, text: str) -> None:
    """Appends to `p` (a bucket object is rewritten whole: objects cannot grow in place)."""
    target = path(p)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as f:
        f.write(text)
