"""The main job: data-parallel training with the paper's recipe, evaluation and checkpoints (the loop).

One jitted step over a `jax.sharding.Mesh` with a single `data` axis: the global batch is sharded
over every device of every host, the state is replicated. Because the batch is one global array,
BatchNorm's batch statistics inside the jitted step are computed over the *global* batch (XLA
inserts the cross-device reductions), as in synchronous replicated training.
"""

import dataclasses
import gc
import json
import time
from collections.abc import Callable
from typing import Any

import jax
import ml_collections
import optax
from absl import logging
from jax.sharding import NamedSharding

from inception_flax import (
    checkpoint,
    data,
    evaluation,
    faults,
    finetune,
    mesh,
    models,
    optim,
    paths,
    reporting,
    runtime,
    storage,
)
from inception_flax import recipe as recipe_lib
from inception_flax.faults import NonFiniteError, Progress
from inception_flax.preflight import Plan, pipeline_config, validate
from inception_flax.step import TrainState, abstract_state, architecture, init_state, jit_train_step

# A periodic evaluation reads a split this small (per process) once and keeps it in memory: the
# study's 300 validation digits (20 MB) cost more to decode than to evaluate; ImageNet's are read each time.
EVAL_CACHE_BYTES = 256 << 20


def _init_from(state: TrainState, path: str, sharding: NamedSharding) -> TrainState:
    """Fine-tuning: every pretrained tensor that fits; the classifier heads re-initialised if they differ."""
    _, pretrained = checkpoint.load(path)
    variables, kept, fresh = finetune.merge({"params": state.params, "batch_stats": state.batch_stats}, pretrained)
    logging.info("init_from %s: kept %d tensors, re-initialised %d: %s", path, len(kept), len(fresh), fresh or "none")
    variables = jax.device_get(variables)  # host copies: params and EMA must not share buffers (both are donated)
    params, ema, stats = (jax.device_put(variables[k], sharding) for k in ("params", "params", "batch_stats"))
    ema_stats = None if state.ema_batch_stats is None else jax.device_put(variables["batch_stats"], sharding)
    return state.replace(params=params, ema_params=ema, batch_stats=stats, ema_batch_stats=ema_stats)


def restore_or_init(
    ckpt: checkpoint.Checkpointer,
    abstract: TrainState,
    model: models.Inception,
    tx: optax.GradientTransformation,
    config: ml_collections.ConfigDict,
    sharding: NamedSharding,
    start_over: bool = False,
) -> tuple[TrainState, int, Progress]:
    """The newest good checkpoint, or the initial state (fine-tuned from `init_from`) when there is none.

    `start_over`: a workdir none of whose checkpoints restores starts from scratch (see Checkpointer)."""
    restored = ckpt.restore_latest(abstract, start_over)
    if restored is not None:
        state, step, step_meta = restored
        return state, step, Progress.from_meta(step_meta, step)
    began = time.perf_counter()
    state = init_state(
        model, tx, config.image_size, config.ema_batch_stats, jax.random.key(config.seed), sharding, abstract
    )
    logging.info("Initialised %s in %.1f s", config.model, time.perf_counter() - began)
    if config.init_from:
        state = _init_from(state, config.init_from, sharding)
    return state, 0, Progress(0)


def _eval_variables(state: TrainState, config: ml_collections.ConfigDict) -> dict[str, Any]:
    if not config.eval_with_ema:
        return {"params": state.params, "batch_stats": state.batch_stats}
    stats = state.batch_stats if state.ema_batch_stats is None else state.ema_batch_stats
    return {"params": state.ema_params, "batch_stats": stats}


def train_and_evaluate(
    config: ml_collections.ConfigDict,
    workdir: str,
    batch_hook: Callable[[int, dict[str, Any]], dict[str, Any]] | None = None,
    plan: Plan | None = None,
    start_over: bool = False,
) -> dict[str, Any]:
    """Trains `config` in `workdir`, resuming from its newest good checkpoint. Returns final metrics.

    `start_over`: when the workdir has checkpoints and none restores, set them aside and start from
    scratch (else `storage.RestoreError`, nothing moved).
    `plan`: this config already validated for this workdir (else `validate` runs here).
    `batch_hook(position, batch)` sees this process's part of global batch `position` before it is
    sharded (tests inject faults with it).
    """
    if plan is None:
        plan = validate(config, workdir)
    elif plan.config is not config or plan.workdir != workdir:
        raise ValueError(f"The plan was validated for another config or workdir ({plan.workdir}), not {workdir}.")
    model, source, recipe = plan.model, plan.source, plan.recipe
    pcfg = pipeline_config(config)
    total_steps = recipe.total_steps
    tx = optim.create_optimizer(config, recipe.learning_rate)
    device_mesh = mesh.make_mesh()
    replicated, batch_sharding = mesh.shardings(device_mesh)
    abstract = jax.tree.map(
        lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=replicated),
        abstract_state(model, tx, config.image_size, config.ema_batch_stats),
    )
    state_bytes = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(abstract))
    storage.check_workdir(workdir, state_bytes)  # before anything is written or compiled

    ckpt = checkpoint.Checkpointer(workdir, config.keep_checkpoints, async_save=True, state_bytes=state_bytes)
    report = reporting.Reporter(config, workdir, ckpt.writes, total_steps, recipe.steps_per_epoch)
    # The config travels with every step, so evaluate.py needs no flags for this workdir.
    meta = checkpoint.make_meta(
        config.model, architecture(config, model.num_classes), config=json.loads(config.to_json_best_effort())
    )
    state, step, progress = restore_or_init(ckpt, abstract, model, tx, config, replicated, start_over)
    _log_start(config, workdir, recipe, step, progress)
    report.begin(step, state.params)
    step_fn = jit_train_step(model, tx, recipe, replicated, batch_sharding)
    evaluator = evaluation.Evaluator(model, mesh=device_mesh, cache_bytes=EVAL_CACHE_BYTES)
    preemption = faults.Preemption(install=jax.process_count() == 1)
    train_iter = data.train_iterator(source, pcfg, recipe.steps_per_epoch, progress.position)
    position, compiled, eval_result = progress.position, None, {}
    pending: tuple[int, int, jax.Array] | None = None  # (step, data position, finite flag), checked a step late

    def check(pending):
        if pending is not None and not bool(pending[2]):
            raise faults.non_finite(pending[0], pending[1], ckpt.directory)

    try:
        while step < total_steps:
            try:
                local = next(train_iter)
                batch = mesh.to_global(batch_hook(position, local) if batch_hook else local, batch_sharding)
                if compiled is None:  # ahead of time, so that every process has compiled before the first collective
                    compiled = _compile(step_fn, state, batch)
                state, step_metrics, finite = compiled(state, batch)
                check(pending)  # the previous step's flag: keeps one step of dispatch in flight
                step, position = step + 1, position + 1
                pending = (step, position, finite)
                report.step(step, step_metrics)
                ckpt.check()  # a background save that failed stops training here, at the step boundary
                last_step = step == total_steps
                if step % config.log_every_steps == 0 or last_step:
                    check(pending)
                    report.train(step, source.skipped)
                if step % config.eval_every_steps == 0 or last_step:
                    check(pending)
                    eval_result = evaluator.run(_eval_variables(state, config), source, pcfg)
                    report.eval(step, eval_result)
                # Several processes must stop at the same step: there orbax's reached_preemption (jax's
                # preemption sync) decides; a lone process may act on its own SIGTERM flag.
                preempted = ckpt.reached_preemption(step) or (jax.process_count() == 1 and preemption.requested)
                if step % config.checkpoint_every_steps == 0 or last_step or preempted:
                    check(pending)
                    progress = dataclasses.replace(progress, position=position)
                    ckpt.save(step, state, {**meta, **progress.to_meta()})
                if preempted:
                    logging.warning("Stopped at step %d for preemption; rerun the same command to resume.", step)
                    break
            except NonFiniteError as error:
                # Every process sees the same (replicated) flag, so all of them rewind together.
                faults.check_rewind(error, progress, config.nonfinite, config.max_rewinds)
                ckpt.close()  # lets in-flight saves finish before reading the newest one
                state, step, restored = restore_or_init(ckpt, abstract, model, tx, config, replicated)
                progress = faults.rewound(error, progress, restored, step, config.max_rewinds)
                position, pending = progress.position, None
                report.begin(step)
                train_iter = data.train_iterator(source, pcfg, recipe.steps_per_epoch, position)
        report.flush()
    finally:
        try:
            ckpt.close()
        finally:
            preemption.restore()
            report.close()
            if ckpt.failed:
                gc.collect()  # orbax's abandoned write coroutines end now, not noisily at interpreter shutdown
    return {
        "step": int(state.step),
        "preempted": int(state.step) < total_steps,  # stopped early on SIGTERM; rerun to resume
        "stop_requested": preemption.requested,  # SIGTERM came, maybe during the last step: start nothing new
        "train_loss_history": report.history,
        "rewinds": progress.rewinds,
        "skipped_batches": [list(r) for r in progress.skipped],
        **{f"eval_{k}": float(v) for k, v in eval_result.items()},
    }


def _compile(step_fn: Any, state: TrainState, batch: Any) -> Any:
    began = time.perf_counter()
    compiled = step_fn.lower(state, batch).compile()
    runtime.release_freed_memory()  # the compiler's garbage would add to the peak of every later step
    logging.info("Train step compiled in %.1f s (or read from the compilation cache)", time.perf_counter() - began)
    faults.sync_processes("train_step_compiled")
    return compiled


def _log_start(
    config: ml_collections.ConfigDict, workdir: str, resolved: recipe_lib.Recipe, step: int, progress: Progress
) -> None:
    if step == 0:
        logging.info("Starting %s from %s in %s", config.model, config.init_from or "scratch", workdir)
    else:
        logging.info(
            "Resumed %s from step %d (%d global batches of input consumed) in %s",
            config.model,
            step,
            progress.position,
            workdir,
        )
    logging.info(
        "%s: global batch %d over %d device(s) on %d host(s). Recipe:\n%s",
        config.model,
        config.batch_size,
        jax.device_count(),
        jax.process_count(),
        recipe_lib.format_summary(recipe_lib.summarize(config, resolved)),
    )


def enable_compilation_cache(path: str) -> None:
    """Persistent XLA cache: a restarted job (or the next test) skips recompiling the same step."""
    if path:
        jax.config.update("jax_compilation_cache_dir", paths.resolve(path))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
