"""Storage faults: what a workdir must offer before training, one line when a write fails, and
what a failed read of a checkpoint means.

Training writes three things to its workdir: checkpoints (orbax, asynchronously), `metrics.jsonl`
and TensorBoard event files. Any of them can fail on a full, read-only or failing file system, and
the failure then surfaces as an `OSError`, as an orbax/TensorStore `ValueError` whose text holds
the OS error, or as clu's `AsyncError` wrapping either. `failure` recognises all of them and
turns them into one `StorageError` whose message names the operation, the path, the cause in words
and what a rerun will resume from. Reading back, `classify` tells a damaged step from a transient
error (retried by `attempt_read`) and from anything else (`RestoreError`, nothing moved). The
libraries report most of these only as text (TensorStore's status codes, TensorFlow's HTTP
errors), so text is what is matched. No jax, no TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from absl import logging

from inception_flax import paths

T = TypeVar("T")

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
    """Free bytes on the file system holding `path`; None in a bucket or when unknown."""
    if paths.is_url(path):
        return None
    try:
        return shutil.disk_usage(_existing_ancestor(path)).free
    except OSError:
        return None


def check_workdir(workdir: str, state_bytes: int, copies: int = 2) -> None:
    """Raises StorageError unless `workdir` can be created and written and, on a local file
    system, has room for `copies` checkpoints of a state of `state_bytes`. Writes nothing."""
    if paths.is_url(workdir):
        _check_bucket(workdir)
        return
    path = paths.resolve(workdir)
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


def _check_bucket(workdir: str) -> None:
    """A bucket's free space is not known; what can be checked is that the workdir takes a write."""
    scheme, rest = workdir.split("://", 1)
    bucket = f"{scheme}://{rest.split('/', 1)[0]}"
    # TensorFlow's makedirs loops forever on a bucket that does not exist: ask first. No folder is
    # made for the probe (a bucket has none to make).
    probe = paths.path(workdir) / f".write_check-{os.getpid()}"
    try:
        if not paths.path(bucket).exists():
            raise StorageError(
                f"Cannot write the workdir {workdir}: the bucket {bucket} does not exist or is not visible."
            )
        probe.write_text("inception_flax\n")
        probe.unlink()
    except StorageError:
        raise
    except Exception as e:
        raise StorageError(f"Cannot write the workdir {workdir}: {describe_error(e)}") from None


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


class Writes:
    """A workdir's writes: storage faults inside `writing` become one StorageError naming what a
    restart resumes from (the newest complete step of `checkpoint_dir`); `failed` remembers one."""

    def __init__(self, checkpoint_dir: str, newest_step: Callable[[], int | None]):
        self.checkpoint_dir, self.newest_step = checkpoint_dir, newest_step
        self.failed = False

    def translate(self, operation: str, path: str, error: BaseException, **details) -> StorageError | None:
        """`failure` for this workdir; None when `error` is not a storage fault."""
        found = failure(
            operation, path, error, newest_step=self.newest_step(), checkpoint_dir=self.checkpoint_dir, **details
        )
        self.failed = self.failed or found is not None
        return found

    @contextlib.contextmanager
    def writing(self, operation: str, path: str) -> Iterator[None]:
        """`with writes.writing("Writing metrics", path):` turns a storage fault inside into a StorageError."""
        try:
            yield
        except StorageError:
            raise
        except Exception as e:
            found = self.translate(operation, path, e)
            if found is None:
                raise
            raise found from e


# ------------------------------------------------------------------------------- reading back
class RestoreError(RuntimeError):
    """A workdir's checkpoints exist but cannot be restored now; nothing in it was moved."""


# Seconds between the attempts at a read that failed transiently (then RestoreError).
RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
# A failed read that retrying may cure: the service unavailable or slow (HTTP 429/5xx, gRPC codes).
_TRANSIENT = re.compile(
    r"UNAVAILABLE|DEADLINE_EXCEEDED|ABORTED|\b(429|500|502|503|504)\b|Too Many Requests|Service Unavailable|"
    r"Connection (reset|refused|timed out)|Operation timed out|Temporary failure|Couldn't connect",
    re.IGNORECASE,
)
# A step whose files are missing, empty or garbled (a save cut short, a damaged copy).
_CORRUPT_TYPES = (json.JSONDecodeError, UnicodeDecodeError, FileNotFoundError)
_CORRUPT = re.compile(
    r"DATA_LOSS|NOT_FOUND|not found|No such file|Expecting value|Unexpected end|truncated|corrupt|checksum|"
    r"Unterminated string|Invalid manifest|Error decoding",
    re.IGNORECASE,
)
_STRUCTURE = re.compile(r"Structure mismatch|tree structures do not match|Expected identical structures", re.I)


def classify(error: BaseException) -> str:
    """What a failed restore means: "structure" (another state), "transient", "corrupt" or "unknown"."""
    text = f"{type(error).__name__}: {error}"
    if _STRUCTURE.search(text):
        return "structure"
    if _TRANSIENT.search(text) or "Unavailable" in type(error).__name__:
        return "transient"
    if isinstance(error, _CORRUPT_TYPES) or "NotFound" in type(error).__name__ or _CORRUPT.search(text):
        return "corrupt"
    return "unknown"


def describe_error(error: BaseException) -> str:
    return f"{type(error).__name__}: {' '.join(str(error).split())[:400]}"


def attempt_read(operation: str, step: int, read: Callable[[], T]) -> tuple[T | None, BaseException | None]:
    """`(read(), None)`, or `(None, error)` when the step is corrupt; retries transient errors, then
    raises RestoreError (as for a structure mismatch or an error of unknown kind). Moves nothing."""
    for attempt, delay in enumerate((*RETRY_DELAYS, None)):
        try:
            return read(), None
        except Exception as e:
            kind = classify(e)
            if kind == "corrupt":
                return None, e
            if kind == "transient" and delay is not None:
                logging.warning(
                    "%s step %d failed (attempt %d): %s; retrying in %.0f s.",
                    operation,
                    step,
                    attempt + 1,
                    describe_error(e),
                    delay,
                )
                time.sleep(delay)
                continue
            if kind == "transient":
                what = f"still failing after {len(RETRY_DELAYS) + 1} attempts"
            elif kind == "structure":
                what = "the saved state has another structure than this config's"
            else:
                what = "an error that does not say the files are damaged"
            raise RestoreError(
                f"{operation} step {step} failed ({what}): {describe_error(e)}. Nothing was moved or deleted; "
                "rerun the same command once the cause is fixed."
            ) from e
    raise AssertionError  # unreachable
