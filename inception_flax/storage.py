"""Storage faults: what a workdir must offer before training, and one line when a write fails.

Training writes three things to its workdir: checkpoints (orbax, asynchronously), `metrics.jsonl`
and TensorBoard event files. Any of them can fail on a full, read-only or failing file system, and
the failure then surfaces as an `OSError`, as an orbax/TensorStore `ValueError` whose text holds
the OS error, or as clu's `AsyncError` wrapping either. `failure` recognises all of them and
turns them into one `StorageError` whose message names the operation, the path, the cause in words
and what a rerun will resume from. Plain os/shutil only: no jax, no TensorFlow.
"""

from __future__ import annotations

import errno
import os
import re
import shutil

from absl import logging

# errno -> the cause in words. Anything else is not a storage fault and is re-raised unchanged.
CAUSES = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
}
# TensorStore (orbax's array writer) reports the OS error as text, e.g. "... No space left on
# device [os_error_code='28']"; TensorFlow's file writers as "... No space left on device".
_CODE = re.compile(r"os_error_code='?(\d+)")
_TEXTS = {os.strerror(code): code for code in CAUSES}


class StorageError(OSError):
    """The workdir cannot hold what training writes (not writable, too little space, failing)."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28]" prefix
        return self.strerror if self.strerror is not None else super().__str__()


def format_bytes(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError  # unreachable


def _existing_ancestor(path: str) -> str:
    path = os.path.abspath(os.path.expanduser(path))
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def free_bytes(path: str) -> int | None:
    try:
        return shutil.disk_usage(_existing_ancestor(path)).free
    except OSError:
        return None


def check_workdir(workdir: str, state_bytes: int, copies: int = 2) -> None:
    """Raises StorageError unless `workdir` can be created and written and, on a local file
    system, has room for `copies` checkpoints of a state of `state_bytes`. Writes nothing."""
    if "://" in workdir:
        logging.info("%s is remote storage: its free space is not checked.", workdir)
        return
    path = os.path.abspath(os.path.expanduser(workdir))
    existing = _existing_ancestor(path)
    if not os.path.isdir(existing):
        raise StorageError(f"Cannot create the workdir {path}: {existing} is a file, not a directory.")
    if not os.access(existing, os.W_OK | os.X_OK):
        why = "a read-only file system" if _read_only(existing) else "no write permission"
        raise StorageError(f"Cannot write the workdir {path}: {existing} allows no writing ({why}).")
    free, need = shutil.disk_usage(existing).free, copies * state_bytes
    if free < need:
        raise StorageError(
            f"No room for checkpoints in {path}: {free / 1e9:.2f} GB free on its file system, fewer than the "
            f"{need / 1e9:.2f} GB of {copies} checkpoints of this state ({state_bytes / 1e9:.2f} GB each). "
            "Free some space or use another --workdir."
        )


def _read_only(path: str) -> bool:
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY)


def os_error_code(error: BaseException) -> int | None:
    """The storage errno behind `error` or anything in its chain of causes, else None."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [error]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in CAUSES:
            return e.errno
        text = str(e)
        match = _CODE.search(text)
        if match and int(match.group(1)) in CAUSES:
            return int(match.group(1))
        for words, code in _TEXTS.items():
            if words in text:
                return code
        todo += [e.__cause__, e.__context__]
    return None


def failure(
    operation: str,
    path: str,
    error: BaseException,
    *,
    needed_bytes: int | None = None,
    newest_step: int | None = None,
    checkpoint_dir: str | None = None,
    partial: str | None = None,
) -> StorageError | None:
    """The StorageError to stop training with, or None when `error` is not a storage fault.

    `needed_bytes` (a checkpoint's size) is set against the free bytes when the disk is full;
    `newest_step` is the newest complete checkpoint in `checkpoint_dir`, the one a rerun resumes;
    `partial` says what became of the half-written step.
    """
    if isinstance(error, StorageError):
        return error
    code = os_error_code(error)
    if code is None:
        return None
    cause = CAUSES[code]
    if code in (errno.ENOSPC, errno.EDQUOT):
        free = free_bytes(path)
        room = "free space unknown" if free is None else f"{format_bytes(free)} free on its file system"
        if needed_bytes:
            room += f", a checkpoint of this state takes {format_bytes(needed_bytes)}"
        cause += f" ({room})"
    message = f"{operation} failed: {path}: {cause}."
    if partial:
        message += f" {partial}"
    if newest_step is not None:
        message += (
            f" The newest complete checkpoint is step {newest_step} in {checkpoint_dir}; "
            "rerunning the same command resumes from it."
        )
    elif checkpoint_dir is not None:
        message += f" There is no complete checkpoint in {checkpoint_dir}: a rerun starts from scratch."
    return StorageError(code, message)
