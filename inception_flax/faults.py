"""What the training loop does about faults: preemption signals, non-finite steps, its data position.

A run's place in its input stream is `Progress.position`, the number of global batches consumed.
It equals the step until `config.nonfinite="rewind"` skips batches, and it is saved in every
checkpoint's metadata with the rewinds so far, so a resumed or replayed run reads the same batches.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging as py_logging
import os
import signal
import sys
import threading
import time
from typing import Any

import jax
from absl import logging

from inception_flax import jax_private

_barrier_ids = itertools.count()


def sync_processes(name: str, timeout_s: int = 3600) -> None:
    """Waits until every process gets here: a coordination-service barrier, not a collective.

    CPU (gloo) collectives wait only 30 s for a peer to join. A process that finds its programs in
    the persistent compilation cache (which only process 0 writes) reaches the first collective
    long before one that compiles, and both then crash. Calling this after compiling, with a
    timeout as long as a compile may take, absorbs the difference. No-op with one process.
    """
    if jax.process_count() > 1:
        from orbax.checkpoint import multihost  # its barrier function waits on the coordination service

        multihost.get_barrier_sync_fn()(key=f"inception_flax_{name}_{next(_barrier_ids)}", timeout_ms=timeout_s * 1000)


class NonFiniteError(FloatingPointError):
    """The loss or the gradients became NaN/Inf."""

    def __init__(self, message: str, step: int, position: int):
        super().__init__(message)
        self.step, self.position = step, position


@dataclasses.dataclass(frozen=True)
class Progress:
    position: int  # global batches consumed so far
    rewinds: int = 0  # rewinds in this run, over all restarts
    skipped: tuple[tuple[int, int], ...] = ()  # [first, end) batch positions that rewinds skipped

    def to_meta(self) -> dict[str, Any]:
        return {"progress": {"data_position": self.position, "rewinds": self.rewinds, "skipped": list(self.skipped)}}

    @classmethod
    def from_meta(cls, meta: dict[str, Any], step: int) -> Progress:
        """Checkpoints written before rewinds existed hold no position: there it is the step."""
        p = meta.get("progress", {})
        skipped = tuple(tuple(r) for r in p.get("skipped", ()))
        return cls(int(p.get("data_position", step)), int(p.get("rewinds", 0)), skipped)

    def after_rewind(self, restored: Progress, failed_position: int) -> Progress:
        """Back at `restored`'s step, past every batch from there to the one that failed."""
        skipped = (*self.skipped, (restored.position, failed_position))
        return Progress(failed_position, self.rewinds + 1, skipped)


def non_finite(step: int, position: int, directory: str) -> NonFiniteError:
    return NonFiniteError(
        f"Non-finite loss or gradients at step {step} (global batch {position - 1}); training halted. The "
        f"state of that step was discarded and not checkpointed; the last checkpoint in {directory} is intact.",
        step,
        position,
    )


def check_rewind(error: NonFiniteError, progress: Progress, mode: str, max_rewinds: int) -> None:
    """Returns if `config.nonfinite` allows another rewind; otherwise raises (halt, or gave up)."""
    if mode != "rewind":
        raise error
    if progress.rewinds >= max_rewinds:
        raise NonFiniteError(
            f"{error} Gave up after {progress.rewinds} rewinds (config.max_rewinds).", error.step, error.position
        )


def rewound(error: NonFiniteError, progress: Progress, restored: Progress, step: int, max_rewinds: int) -> Progress:
    """The progress after rewinding to checkpoint `step` (at `restored`), logged."""
    new = progress.after_rewind(restored, error.position)
    logging.warning(
        "Non-finite loss or gradients at step %d: rewound to step %d and skipped global batches [%d, %d) "
        "(rewind %d of at most %d).",
        error.step,
        step,
        restored.position,
        error.position,
        new.rewinds,
        max_rewinds,
    )
    return new


class Preemption:
    """SIGTERM sets a flag; the loop saves and stops at the next step boundary.

    Only for a lone process: with several, jax's preemption notifier (installed by
    `jax.distributed.initialize`) must keep SIGTERM, so that every process learns of it and orbax's
    `reached_preemption` makes all of them stop at the same step. A Python handler would replace it.
    """

    def __init__(self, install: bool = True):
        self.requested = False
        self._previous = signal.signal(signal.SIGTERM, self._handle) if install else None

    def _handle(self, signum, frame):
        del signum, frame
        logging.warning("SIGTERM received: saving a checkpoint and stopping.")
        self.requested = True

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


# ------------------------------------------------------------------------ failing peers
_FAILED = "inception_flax/failed/"  # coordination-service keys: one per process that failed


def announce_failure(message: str) -> None:
    """Multi-process: records in the coordination service that this process failed, and why."""
    if jax.process_count() > 1:
        jax_private.coordination_client().key_value_set(f"{_FAILED}{jax.process_index()}", message[:4000])


class PeerWatch:
    """Multi-process: stops this process within `poll_s` of another one announcing a failure.

    A process that raises cannot reach the others: they wait inside a collective for a peer that
    will never come, and its own exit would wait at jax's shutdown barrier for them
    (`--shutdown_timeout`). So the failing process announces the error (`announce_failure`) and
    exits at once; this thread in every other process reads it, prints one `error:` line naming
    that process, and exits the process non-zero. What was checkpointed stays: a rerun resumes.
    """

    def __init__(self, poll_s: float = 1.0):
        self.poll_s = poll_s
        self._stop = threading.Event()
        self._thread = None
        if jax.process_count() > 1:
            self._thread = threading.Thread(target=self._watch, name="peer_watch", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        me, client = jax.process_index(), jax_private.coordination_client()
        while not self._stop.wait(self.poll_s):
            try:
                entries = client.key_value_dir_get(_FAILED)
            except Exception:  # the service is gone (process 0 failed): jax's own error handling takes over
                return
            failed = sorted((int(k.rsplit("/", 1)[-1]), v) for k, v in entries if k.rsplit("/", 1)[-1] != str(me))
            if failed:
                index, message = failed[0]
                exit_now(
                    f"process {index} failed: {message} Stopping process {me} too; rerun the same command on "
                    "every process to resume from the newest complete checkpoint."
                )

    def stop(self) -> None:
        self._stop.set()


def exit_now(message: str | None, code: int = 1) -> None:
    """Prints `error: message` (if any), flushes the logs and ends the process without Python's shutdown.

    A normal exit would first wait at jax.distributed's shutdown barrier for peers that are stuck.
    """
    if message is not None:
        logging.error("%s", message)
        print(f"error: {message}", file=sys.stderr)
    for handler in py_logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def fail_processes(message: str, poll_s: float = 1.0) -> None:
    """Multi-process: prints the error line, tells the others (they stop within `poll_s`), exits at once.

    Process 0 hosts jax's coordination service and waits two polls before exiting, so that the
    others read its message before the service goes (without it they abort on a lost connection).
    """
    line = f"process {jax.process_index()} failed: {message}"
    logging.error("%s", line)
    print(f"error: {line}", file=sys.stderr, flush=True)
    announce_failure(message)
    if jax.process_index() == 0:
        time.sleep(2 * poll_s)
    exit_now(None)
