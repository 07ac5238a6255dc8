"""What the training loop does about faults: preemption signals, non-finite steps, its data position.

A run's place in its input stream is `Progress.position`, the number of global batches consumed.
It equals the step until `config.nonfinite="rewind"` skips batches, and it is saved in every
checkpoint's metadata with the rewinds so far, so a resumed or replayed run reads the same batches.
"""

from __future__ import annotations

import dataclasses
import itertools
import signal
from typing import Any

import jax
from absl import logging

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
