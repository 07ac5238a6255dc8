"""orbax checkpoints: training workdirs that never lose work, converted weights, and `load`.

Two kinds of directory hold a network, local or in a bucket (every path goes through `paths`):
- a training `--workdir`: `<workdir>/checkpoints/<step>/{state,meta}`;
- converted weights (`scripts/convert_weights.py`): `<dir>/variables/` plus `<dir>/inception_flax.json`.
Both record their metadata in one schema (`META_FORMAT`: model, options, and config/progress or
the weights' source), written and read only here; any other is refused in one line (`parse_meta`).
`load(path)` reads either and returns `(model, variables)`; nothing is ever unpickled.

Restoring walks the steps newest first, each with a fresh manager (orbax lists a step directory as
valid even when its files are truncated or missing). What a failure means decides what happens
(`classify`): a step whose files are recognisably incomplete or corrupt is skipped for an older
one and then moved (never deleted) to `<workdir>/checkpoints_unreadable/`; a transient read error
(a bucket under load) is retried with backoff; anything else, a state of another structure
included, stops with a `RestoreError` naming the step and the cause, and nothing is moved. When no
step restores, nothing is moved either unless the caller asks to start over.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from etils import epath

from inception_flax import models, paths, storage

WEIGHTS_META = "inception_flax.json"  # beside `variables/` in a converted-weights directory
# The one metadata schema of both kinds of directory (written by `make_meta`, read by `parse_meta`):
#   format    META_FORMAT
#   model     a name of models.MODELS
#   options   models.create's keyword arguments (num_classes, width, aux_logits, the variant's own)
#   config    training workdirs: the training config the run recorded
#   progress  training workdirs: the data position and rewinds (faults.Progress)
#   source, input, background_class, eval_defaults   converted weights: where they came from
META_FORMAT = "inception_flax/2"


def make_meta(model: str, options: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """Metadata in the one schema; `extra` holds the optional keys (config, progress, source, ...)."""
    return {"format": META_FORMAT, "model": model, "options": dict(options), **extra}


def parse_meta(meta: dict[str, Any], where: str = "the checkpoint") -> dict[str, Any]:
    """`meta` if it is in the schema; ValueError (one line) for anything else, such as the metadata of
    a version from before the schema, which this one does not read."""
    found = meta.get("format")
    if found != META_FORMAT:
        raise ValueError(
            f"{where} has metadata of format {found!r}, not {META_FORMAT!r}: it was written by an older "
            "version of inception_flax, which this one does not read. Train it again, or restore it with the "
            "version that wrote it."
        )
    return meta


def checkpoint_dir(workdir: str) -> str:
    return paths.join(workdir, "checkpoints")


def _manager(directory: str, max_to_keep: int | None = None, async_save: bool = False) -> ocp.CheckpointManager:
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save, cleanup_tmp_directories=True
    )
    return ocp.CheckpointManager(directory, options=options, item_names=("state", "meta"))


def _steps(directory: str) -> list[int]:
    folder = epath.Path(directory)
    if not folder.is_dir():
        return []
    return sorted((int(p.name) for p in folder.iterdir() if p.name.isdigit()), reverse=True)


def read_meta(workdir: str) -> tuple[int, dict[str, Any]] | None:
    """(step, metadata in the current schema) of the newest step whose metadata is readable; no arrays are touched.

    A step whose metadata is damaged is skipped; a read that keeps failing raises RestoreError;
    metadata of another format raises ValueError."""
    directory = checkpoint_dir(workdir)
    for step in _steps(directory):
        meta, error = storage.attempt_read(
            "Reading the metadata of checkpoint", step, lambda s=step: _read_raw_meta(directory, s)
        )
        if error is None:
            return step, parse_meta(meta, f"{directory}/{step}")
        logging.warning(
            "Checkpoint step %d has no readable metadata (%s); trying an older step.",
            step,
            storage.describe_error(error),
        )
    return None


class Checkpointer:
    """Saves every N steps / at the end / on preemption; restores the newest good step.

    Saves are asynchronous: a failed write surfaces at the next `check` (each step), `save` or
    `close`, as a `storage.StorageError` naming the step, the cause and the newest complete step;
    the half-written step (orbax's `<step>.orbax-checkpoint-tmp*`, which no restore ever takes)
    is removed to give its space back. Other errors propagate unchanged.
    """

    def __init__(self, workdir: str, max_to_keep: int = 3, async_save: bool = True, state_bytes: int | None = None):
        self.workdir = workdir
        self.directory = checkpoint_dir(workdir)
        self.max_to_keep = max_to_keep
        self.async_save = async_save
        self.state_bytes = state_bytes
        self.manager: ocp.CheckpointManager | None = None
        self.in_flight: int | None = None  # the step being written in the background
        # Storage faults of this workdir's writes (checkpoints here; metrics and summaries by the reporter).
        self.writes = storage.Writes(self.directory, lambda: max(_steps(self.directory), default=None))

    @property
    def failed(self) -> bool:
        return self.writes.failed

    def restore_latest(self, abstract_state: Any, start_over: bool = False) -> tuple[Any, int, dict[str, Any]] | None:
        """The newest restorable (state, step, meta), or None when the workdir has no checkpoint.

        Corrupt steps newer than the one restored are then set aside. When steps exist and none
        restores, RestoreError, nothing moved; with `start_over` they are set aside and None returned.
        For a dataclass state (TrainState), a field that the abstract state leaves None is not
        read; every other field must be there.
        """
        corrupt: list[tuple[int, BaseException]] = []
        for step in _steps(self.directory):
            restored, error = storage.attempt_read(
                "Restoring checkpoint", step, lambda s=step: self._restore(s, abstract_state)
            )
            if error is None:
                for bad, _ in corrupt:
                    self._set_aside(bad)
                return restored
            logging.warning("Checkpoint step %d is incomplete or corrupt: %s", step, storage.describe_error(error))
            corrupt.append((step, error))
        if corrupt and not start_over:
            causes = "; ".join(f"step {s}: {storage.describe_error(e)[:200]}" for s, e in corrupt)
            raise storage.RestoreError(
                f"No checkpoint in {self.directory} restores ({causes}). Nothing was moved. To train from "
                "scratch in this workdir, rerun with --start_over (the steps move to checkpoints_unreadable/, "
                "nothing is deleted); or use another --workdir."
            )
        for bad, _ in corrupt:
            self._set_aside(bad)
        return None

    def _restore(self, step: int, abstract_state: Any) -> tuple[Any, int, dict[str, Any]]:
        with _manager(self.directory) as manager:
            state_args = _restore_args(abstract_state)
            restored = manager.restore(step, args=ocp.args.Composite(state=state_args, meta=ocp.args.JsonRestore()))
        state = restored["state"]
        if dataclasses.is_dataclass(abstract_state):
            names = [f.name for f in dataclasses.fields(abstract_state)]
            state = abstract_state.replace(**{n: state.get(n) for n in names})
        return state, step, dict(restored["meta"] or {})  # its format was checked before training (preflight)

    def _set_aside(self, step: int) -> None:
        aside = epath.Path(self.directory).parent / "checkpoints_unreadable"
        aside.mkdir(parents=True, exist_ok=True)
        target = aside / f"{step}-{int(time.time())}"
        (epath.Path(self.directory) / str(step)).rename(target)
        logging.warning("Moved unreadable checkpoint step %d to %s (kept, not deleted).", step, target)

    def _open(self) -> ocp.CheckpointManager:
        if self.manager is None:  # opened after restore_latest has set bad steps aside
            try:
                self.manager = _manager(self.directory, self.max_to_keep, self.async_save)
            except Exception as e:
                raise self._failure("Opening the checkpoint directory", e) from e
        return self.manager

    def save(self, step: int, state: Any, meta: dict[str, Any]) -> None:
        manager = self._open()
        self._finish_in_flight()  # orbax would wait for it too; this names the step if it failed
        if step in manager.all_steps():
            return
        try:
            manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
        except Exception as e:
            raise self._failure(f"Saving checkpoint step {step}", e, step) from e
        self.in_flight = step if self.async_save else None

    def check(self) -> None:
        """Raises StorageError if the background save has failed; returns at once otherwise."""
        if self.in_flight is not None and not self.manager.is_saving_in_progress():
            self._finish_in_flight()

    def _finish_in_flight(self) -> None:
        step, self.in_flight = self.in_flight, None
        if step is not None:
            try:
                self.manager.wait_until_finished()
            except Exception as e:
                raise self._failure(f"Saving checkpoint step {step}", e, step) from e

    def _failure(self, operation: str, error: BaseException, step: int | None = None) -> BaseException:
        """The StorageError for `error` (the partial `step` removed), or `error` itself if not a storage fault."""
        partial = self._remove_partial(step) if step is not None else None
        found = self.writes.translate(operation, self.directory, error, needed_bytes=self.state_bytes, partial=partial)
        return error if found is None else found

    def _remove_partial(self, step: int) -> str | None:
        """Deletes orbax's temporary directory of `step` (process 0; several may share the directory)."""
        folder = epath.Path(self.directory)
        if jax.process_index() != 0 or not folder.is_dir():
            return None
        partial = [p.name for p in folder.iterdir() if p.name.startswith(f"{step}.orbax-checkpoint-tmp")]
        for name in partial:
            with contextlib.suppress(OSError):
                (folder / name).rmtree()
        left = [n for n in partial if (folder / n).exists()]
        if left:  # e.g. a read-only file system; its name keeps it from ever being restored
            return f"The partial step {step} could not be removed ({', '.join(left)}); no restore takes it."
        return f"Removed the partial step {step} ({', '.join(partial)})." if partial else None

    def reached_preemption(self, step: int) -> bool:
        return self._open().reached_preemption(step)

    def close(self) -> None:
        """Waits for the save in flight and closes; raises StorageError if it failed (unless one was raised already)."""
        if self.manager is None:
            return
        already_failed = self.failed
        try:
            self._finish_in_flight()
            self.manager.wait_until_finished()
        except Exception as e:
            if not already_failed:
                raise
            logging.warning("After the storage error, closing the checkpoints also failed: %s", str(e)[:300])
        finally:
            try:
                self.manager.close()
            except Exception as e:  # a manager that failed to save may fail to close too
                if not self.failed:
                    raise
                logging.warning("Closing the checkpoint manager failed: %s", str(e)[:300])
            self.manager = None


# ------------------------------------------------------------------------------- loading
@dataclasses.dataclass(frozen=True)
class CheckpointInfo:
    """What a directory holds, read from its metadata alone (no arrays)."""

    path: str
    kind: str  # "workdir" or "weights"
    model: str
    options: dict[str, Any]  # keyword arguments of models.create
    step: int | None = None  # workdirs: the step read
    config: dict[str, Any] | None = None  # workdirs: the training config the run recorded
    meta: dict[str, Any] = dataclasses.field(default_factory=dict)

    def create_model(self, **overrides) -> models.Inception:
        return models.create(self.model, **{**self.options, **overrides})


def _workdir_info(path: str, step: int, meta: dict[str, Any]) -> CheckpointInfo:
    return CheckpointInfo(path, "workdir", meta["model"], dict(meta["options"]), step, meta.get("config"), meta)


def _read_raw_meta(directory: str, step: int) -> dict[str, Any]:
    with _manager(directory) as manager:
        return dict(manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])


def _read_step_meta(directory: str, step: int) -> dict[str, Any]:
    return parse_meta(_read_raw_meta(directory, step), f"{directory}/{step}")


def steps(workdir: str) -> list[int]:
    """The checkpointed steps of a training workdir, oldest first."""
    return sorted(_steps(checkpoint_dir(workdir)))


def describe(path: str, step: int | None = None) -> CheckpointInfo:
    """CheckpointInfo of a training workdir (newest readable step, or `step`) or of converted weights."""
    path = paths.resolve(path)
    meta_file = paths.join(path, WEIGHTS_META)
    if epath.Path(meta_file).is_file():
        meta = parse_meta(json.loads(epath.Path(meta_file).read_text()), meta_file)
        return CheckpointInfo(path, "weights", meta["model"], dict(meta["options"]), meta=meta)
    directory = checkpoint_dir(path)
    available = _steps(directory)
    if not available:
        raise FileNotFoundError(
            f"{path} holds no checkpoint: neither a training workdir (no steps in {directory}) nor converted "
            f"weights (no {WEIGHTS_META}; make them with scripts/convert_weights.py)."
        )
    if step is not None:
        if step not in available:
            raise FileNotFoundError(f"{path} has no checkpoint step {step}; it has {sorted(available)}.")
        return _workdir_info(path, step, _read_step_meta(directory, step))
    found = read_meta(path)
    if found is None:
        raise FileNotFoundError(f"No checkpoint step in {directory} has readable metadata.")
    return _workdir_info(path, *found)


def saved_state_tree(workdir: str, step: int) -> dict[str, Any]:
    """The tree of a training checkpoint's saved state, leaves as orbax metadata (no arrays read)."""
    return _saved_fields(paths.join(checkpoint_dir(workdir), str(step), "state"))


def _saved_fields(state_dir: str) -> dict[str, Any]:
    """The saved state's top-level tree (metadata only, no arrays)."""
    return ocp.PyTreeCheckpointHandler().metadata(epath.Path(state_dir)).tree


def _restore_args(abstract_state: Any) -> ocp.args.CheckpointArgs:
    if not dataclasses.is_dataclass(abstract_state):
        return ocp.args.StandardRestore(abstract_state)
    # A field the config leaves None (ema_batch_stats when it keeps none) is neither saved nor read.
    fields = (f.name for f in dataclasses.fields(abstract_state))
    item = {name: getattr(abstract_state, name) for name in fields if getattr(abstract_state, name) is not None}
    restore_args = ocp.checkpoint_utils.construct_restore_args(item)
    return ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True)


def _restore_subtrees(state_dir: str, names: tuple[str, ...]) -> dict[str, Any]:
    """Only the named top-level subtrees of a saved state, as numpy arrays (partial restore)."""
    tree = _saved_fields(state_dir)
    missing = [n for n in names if n not in tree]
    if missing:
        raise ValueError(f"{state_dir} has no {missing}; it holds {sorted(tree)}.")
    item = {n: tree[n] for n in names}
    restore_args = {n: _as_numpy_args(tree[n]) for n in names}
    args = ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True)
    return ocp.PyTreeCheckpointer().restore(state_dir, args=args)


def _as_numpy_args(tree: Any) -> Any:
    return jax.tree.map(lambda _: ocp.RestoreArgs(restore_type=np.ndarray), tree)


def load_with_info(
    path: str, step: int | None = None, ema: bool = True
) -> tuple[models.Inception, dict[str, Any], CheckpointInfo]:
    """`load`, plus the CheckpointInfo of what was loaded.

    For a workdir without an explicit `step`, an unreadable newest step is skipped (with a warning)
    for the next older one; nothing in the workdir is moved or changed.
    """
    info = describe(path, step)
    if info.kind == "weights":
        restored = _restore_subtrees(paths.join(info.path, "variables"), ("params", "batch_stats"))
        return info.create_model(), restored, info
    directory = checkpoint_dir(info.path)
    candidates = [info.step] if step is not None else [s for s in _steps(directory) if s <= info.step]
    params_key = "ema_params" if ema else "params"
    for candidate in candidates:
        state_dir = paths.join(directory, str(candidate), "state")
        try:
            # The EMA parameters go with the averaged BatchNorm statistics where training kept them.
            averaged = ema and _saved_fields(state_dir).get("ema_batch_stats") is not None
            stats_key = "ema_batch_stats" if averaged else "batch_stats"
            restored = _restore_subtrees(state_dir, (params_key, stats_key))
        except Exception as e:
            if step is not None:
                raise
            logging.warning("Cannot read checkpoint step %d (%s); trying an older step.", candidate, e)
            continue
        if candidate != info.step:
            info = _workdir_info(info.path, candidate, _read_step_meta(directory, candidate))
        variables = {"params": restored[params_key], "batch_stats": restored[stats_key]}
        return info.create_model(), variables, info
    raise FileNotFoundError(f"No checkpoint step in {directory} could be read.")


def load(path: str, step: int | None = None, ema: bool = True) -> tuple[models.Inception, dict[str, Any]]:
    """(model, variables) from a training workdir or a converted-weights directory.

    The model and its options come from the checkpoint's metadata. For a workdir, `step` picks a
    checkpoint (default: the newest readable one) and `ema` chooses the moving-average parameters
    (the ones training evaluates) over the raw ones, with the averaged BatchNorm statistics where
    training kept them (`config.ema_batch_stats`). Variables are numpy arrays on the host.
    """
    model, variables, _ = load_with_info(path, step, ema)
    return model, variables


def save_weights(directory: str, variables: dict[str, Any], meta: dict[str, Any]) -> None:
    """Writes converted weights: `variables/` (orbax) and the metadata `load` reads.

    `meta` needs "model" and "options" (models.create's keyword arguments). The directory must not
    exist yet (or be empty). It counts as complete once its metadata file exists: locally the whole
    directory is written beside it and renamed; in a bucket (no atomic rename) the metadata is
    written last.
    """
    directory = paths.resolve(directory)
    target = epath.Path(directory)
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{directory} exists and is not empty; nothing was written.")
    models.create(meta["model"], **meta["options"])  # refuses unknown models and options
    extra = {k: v for k, v in meta.items() if k not in ("model", "options", "format")}
    text = json.dumps(make_meta(meta["model"], meta["options"], **extra), indent=2, sort_keys=True)
    remote = paths.is_url(directory)
    folder = target if remote else epath.Path(f"{directory}.partial-{os.getpid()}")
    if not remote and folder.exists():
        folder.rmtree()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        checkpointer = ocp.StandardCheckpointer()
        checkpointer.save(folder / "variables", variables)
        checkpointer.wait_until_finished()
        (folder / WEIGHTS_META).write_text(text)
        if not remote:
            if target.exists():
                target.rmdir()  # empty, checked above
            os.replace(folder, target)
    finally:
        if not remote and folder.exists():
            folder.rmtree()
