"""orbax checkpoints under `<workdir>/checkpoints/` that never lose work.

orbax lists a step directory as valid even when its files are truncated or missing, and a
manager that has seen an empty step directory fails on later calls. Restoring therefore walks
the steps newest first, each with a fresh manager; a step that cannot be restored is moved (never
deleted) to `<workdir>/checkpoints_unreadable/` so training can save that step number again.
"""

from __future__ import annotations

import os
import shutil
import time
from typing import Any

import orbax.checkpoint as ocp
from absl import logging


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def _manager(directory: str, max_to_keep: int | None = None, async_save: bool = False) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save, cleanup_tmp_directories=True
    )
    return ocp.CheckpointManager(directory, options=options, item_names=("state", "meta"))


def _steps(directory: str) -> list[int]:
    if not os.path.isdir(directory):
        return []
    return sorted((int(n) for n in os.listdir(directory) if n.isdigit()), reverse=True)


def read_meta(workdir: str) -> tuple[int, dict[str, Any]] | None:
    """(step, metadata) of the newest step whose metadata is readable; no arrays are touched."""
    directory = checkpoint_dir(workdir)
    for step in _steps(directory):
        try:
            with _manager(directory) as manager:
                restored = manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
            return step, dict(restored["meta"])
        except Exception as e:
            logging.warning("Checkpoint step %d has no readable metadata (%s); trying an older step.", step, e)
    return None


class Checkpointer:
    """Saves every N steps / at the end / on preemption; restores the newest good step."""

    def __init__(self, workdir: str, max_to_keep: int = 3, async_save: bool = True):
        self.workdir = workdir
        self.directory = checkpoint_dir(workdir)
        self.max_to_keep = max_to_keep
        self.async_save = async_save
        self.manager: ocp.CheckpointManager | None = None

    def restore_latest(self, abstract_state: Any) -> tuple[Any, int] | None:
        """The newest restorable (state, step), or None when there is none."""
        for step in _steps(self.directory):
            try:
                with _manager(self.directory) as manager:
                    restored = manager.restore(
                        step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract_state))
                    )
                return restored["state"], step
            except Exception as e:
                logging.warning("Cannot restore checkpoint step %d (%s); falling back to an older step.", step, e)
                self._set_aside(step)
        return None

    def _set_aside(self, step: int) -> None:
        aside = os.path.join(os.path.dirname(self.directory), "checkpoints_unreadable")
        os.makedirs(aside, exist_ok=True)
        target = os.path.join(aside, f"{step}-{int(time.time())}")
        shutil.move(os.path.join(self.directory, str(step)), target)
        logging.warning("Moved unreadable checkpoint step %d to %s (kept, not deleted).", step, target)

    def _open(self) -> ocp.CheckpointManager:
        if self.manager is None:  # opened after restore_latest has set bad steps aside
            self.manager = _manager(self.directory, self.max_to_keep, self.async_save)
        return self.manager

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        manager = self._open()
        if step in manager.all_steps():
            return
        manager.save(
            step, args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True
        )

    def reached_preemption(self, step: int) -> bool:
        return self._open().reached_preemption(step)

    def close(self) -> None:
        if self.manager is not None:
            self.manager.wait_until_finished()
            self.manager.close()
            self.manager = None
