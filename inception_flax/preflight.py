"""The checks of a launch, before anything is compiled: `validate(config, workdir)` returns a `Plan`.

A `Plan` is a config that passed every check for one workdir, with what the checks built (the
model, the data source); `train.train_and_evaluate` trusts it. `config_base.check` covers each
field's range and the input size the networks accept; `check_setting` what needs the devices, the
data and the workdir: batch divisible by devices and shards, splits present, one global batch of
data, a workdir holding another model or another state's structure, an `init_from` that does not fit.
"""

import copy
import dataclasses
import functools
import json
from typing import Any

import jax
import ml_collections
import optax

from inception_flax import checkpoint, config_base, data, finetune, models, optim, paths, recipe
from inception_flax.config_base import ConfigError
from inception_flax.step import architecture, assemble_state, model_options


@dataclasses.dataclass(frozen=True)
class Plan:
    """A config that passed every check for `workdir`, with what the checks built (the model, the data
    source, the resolved recipe): training trusts it."""

    config: ml_collections.ConfigDict
    workdir: str
    model: models.Inception
    source: data.Source
    recipe: recipe.Recipe  # every number derived from the config for this train split


def validate(config: ml_collections.ConfigDict, workdir: str) -> Plan:
    """The check of a launch: every user error that can be found before compiling.

    Raises ConfigError (or DatasetNotPreparedError) naming the field; first each field's range
    (`config_base.check`), then `check_setting`.
    """
    config_base.check(config)
    return check_setting(config, workdir)


def check_paths(config: ml_collections.ConfigDict, workdir: str) -> None:
    """Every path of a launch is local or a URL the stack writes (paths.resolve); one line otherwise."""
    named = {"--workdir": workdir, "config.data_dir": config.data_dir, "config.init_from": config.init_from}
    named["config.compilation_cache_dir"] = config.compilation_cache_dir
    for name, value in named.items():
        try:
            if value:
                paths.resolve(value)
        except ValueError as e:
            raise ConfigError(f"{name}: {e}") from None


def check_setting(config: ml_collections.ConfigDict, workdir: str) -> Plan:
    """What needs the model, the devices, the data and the workdir, for a config whose fields passed
    `config_base.check` (scripts/train.py checks them before joining the other processes)."""
    check_paths(config, workdir)
    devices, hosts = jax.device_count(), jax.process_count()
    if config.batch_size % devices or config.batch_size % hosts:
        raise ConfigError(
            f"config.batch_size={config.batch_size} (global) must be divisible by the {devices} devices "
            f"on {hosts} host(s)."
        )
    pcfg = pipeline_config(config)
    try:
        pcfg.check()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    try:
        source = data.get_source(config.dataset, config.data_dir or None, config.train_split)
    except FileNotFoundError as e:  # a folder: dataset without its train split or images
        raise ConfigError(f"config.dataset={config.dataset}: {e}") from None
    for field in ("train_split", "eval_split"):
        try:
            source.check_split(config[field])
        except ValueError as e:
            raise ConfigError(f"config.{field}: {e}") from None
    try:
        split = f"{source.name} {config.train_split}"
        resolved = recipe.resolve(config, source.num_examples(config.train_split), split)
    except ValueError as e:  # a split smaller than one batch, a decay window shorter than one step
        raise ConfigError(str(e)) from None
    model = _create_model(config, config.num_classes if config.num_classes > 0 else source.num_classes, resolved)
    _check_workdir_model(config, workdir, model)
    if config.init_from:
        _check_init_from(config, model)
    return Plan(config, workdir, model, source, resolved)


def _create_model(config: ml_collections.ConfigDict, num_classes: int, resolved: recipe.Recipe) -> models.Inception:
    try:
        return models.create(config.model, **model_options(config, num_classes, resolved.bn_momentum))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _check_workdir_model(config: ml_collections.ConfigDict, workdir: str, model: models.Inception) -> None:
    """A workdir holding another model's checkpoint, metadata of an older version, or a state this config would change."""
    try:
        found = checkpoint.read_meta(workdir)
    except ValueError as e:  # metadata of another format: a version from before the schema
        raise ConfigError(f"{e} Or use another --workdir; nothing in this one is touched.") from None
    if found is None:
        return
    step, meta = found
    wanted = {"model": config.model, **architecture(config, model.num_classes)}
    have = {"model": meta["model"], **meta["options"]}
    diff = {k: (have.get(k), v) for k, v in wanted.items() if have.get(k) != v}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in diff.items())
        raise ConfigError(
            f"{workdir} holds a checkpoint (step {step}) of another model ({detail}). "
            "Use another --workdir; nothing in this one is touched."
        )
    _check_state_structure(config, workdir, step, meta, model)


def _arrays(tree: Any) -> dict[str, tuple[int, ...]]:
    """{"field/key/...": shape} of every array leaf of a state, or of its saved metadata tree."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {
        "/".join(str(getattr(k, "key", getattr(k, "name", getattr(k, "idx", k)))) for k in path): tuple(leaf.shape)
        for path, leaf in leaves
        if hasattr(leaf, "shape")  # orbax records an empty optimiser state as a leaf without one
    }


def _state_arrays(config: ml_collections.ConfigDict, variables: Any) -> dict[str, tuple[int, ...]]:
    tx = optim.create_optimizer(config, optax.constant_schedule(0.0))  # the schedule's values change no shape
    assemble = functools.partial(assemble_state, tx, ema_batch_stats=config.ema_batch_stats)
    return _arrays(jax.eval_shape(assemble, variables, jax.random.key(0)))


def _check_state_structure(
    config: ml_collections.ConfigDict, workdir: str, step: int, meta: dict[str, Any], model: models.Inception
) -> None:
    """A resume whose config would change the saved state's structure (the optimiser, its clip, the
    averaged statistics) is refused here, naming the fields, instead of failing every restore."""
    saved = _arrays(checkpoint.saved_state_tree(workdir, step))
    variables = models.abstract_variables(model, config.image_size)
    current = wanted = _state_arrays(config, variables)
    if saved == wanted:
        return
    differ = sorted(
        {k.split("/", 2)[0] for k in set(saved) ^ set(wanted)}
        | {k.split("/", 2)[0] for k in saved.keys() & wanted.keys() if saved[k] != wanted[k]}
    )
    recorded = meta.get("config") or {}
    now = json.loads(config.to_json_best_effort())
    blamed = {}
    for name in sorted(k for k in now if k in recorded and recorded[k] != now[k]):
        trial = copy.deepcopy(config)
        value = recorded[name]
        with trial.unlocked():
            try:
                trial[name] = tuple(value) if isinstance(trial[name], tuple) else value
            except (TypeError, ValueError):
                continue
        try:
            if _state_arrays(trial, variables) != current:
                blamed[name] = value
        except (ValueError, TypeError):
            continue
    if blamed:
        fix = " ".join(f"--config.{k}={v}" for k, v in blamed.items())
        why = ", ".join(f"{k}: checkpoint {recorded[k]!r} vs config {now[k]!r}" for k in blamed)
        advice = f"It differs from the recorded run in {why}. To resume the run as it was trained, add {fix}"
    else:
        advice = "No config field explains it (a checkpoint of another version?). Use the config it was trained with"
    raise ConfigError(
        f"{workdir} holds a checkpoint (step {step}) whose saved state has another structure than this config "
        f"makes (in {', '.join(differ)}): restoring it would fail. {advice}; or use another --workdir. Nothing in "
        "this one is touched."
    )


def _check_init_from(config: ml_collections.ConfigDict, model: models.Inception) -> None:
    try:
        info = checkpoint.describe(config.init_from)
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"config.init_from: {e}") from None
    if info.model != config.model:
        raise ConfigError(f"config.init_from={config.init_from} holds {info.model}, not config.model={config.model}.")
    target = models.abstract_variables(model, config.image_size)
    source = models.abstract_variables(info.create_model(), config.image_size)
    try:
        finetune.plan(target, source)
    except ValueError as e:
        raise ConfigError(f"config.init_from={config.init_from}: {e}") from None


def pipeline_config(config: ml_collections.ConfigDict) -> data.PipelineConfig:
    return data.PipelineConfig(
        image_size=config.image_size,
        global_batch=config.batch_size,
        train_split=config.train_split,
        eval_split=config.eval_split,
        seed=config.seed,
        shuffle_buffer=config.shuffle_buffer,
        area_range=tuple(config.crop_area_range),
        color_distortion=config.color_distortion,
        process_index=jax.process_index(),
        process_count=jax.process_count(),
        data_shards=config.data_shards,
    )
