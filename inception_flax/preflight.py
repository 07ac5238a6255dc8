"""The checks of a launch, before anything is compiled: `validate(config, workdir)` returns a `Plan`.

A `Plan` is a config that passed every check for one workdir, with what the checks built (the
model, the data source); `train.train_and_evaluate` trusts it. `config_base.check` covers each
field's range and the input size the networks accept; `check_setting` what needs the devices, the
data and the workdir: batch divisible by devices and shards, splits present, one global batch of
data, a workdir holding another model or an older recipe, an `init_from` that does not fit.
"""

import dataclasses

import jax
import ml_collections

from inception_flax import checkpoint, config_base, data, finetune, models, optim, recipe
from inception_flax.config_base import ConfigError
from inception_flax.step import architecture, model_options


@dataclasses.dataclass(frozen=True)
class Plan:
    """A config that passed every check for `workdir`, with what the checks built: training trusts it."""

    config: ml_collections.ConfigDict
    workdir: str
    model: models.Inception
    source: data.Source


def validate(config: ml_collections.ConfigDict, workdir: str) -> Plan:
    """The check of a launch: every user error that can be found before compiling.

    Raises ConfigError (or DatasetNotPreparedError) naming the field; first each field's range
    (`config_base.check`), then `check_setting`.
    """
    config_base.check(config)
    return check_setting(config, workdir)


def check_setting(config: ml_collections.ConfigDict, workdir: str) -> Plan:
    """What needs the model, the devices, the data and the workdir, for a config whose fields passed
    `config_base.check` (scripts/train.py checks them before joining the other processes)."""
    for name in ("ema_decay", "bn_momentum"):
        try:
            optim.per_step_decay(config[name], config)
        except ValueError as e:
            raise ConfigError(f"config.{name}={config[name]}: {e}") from None
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
    model = _create_model(config, config.num_classes if config.num_classes > 0 else source.num_classes)
    try:
        data.check_one_batch(source, pcfg)
    except ValueError as e:
        raise ConfigError(str(e)) from None
    _check_workdir_model(config, workdir, model.num_classes)
    if config.init_from:
        _check_init_from(config, model)
    return Plan(config, workdir, model, source)


def _create_model(config: ml_collections.ConfigDict, num_classes: int) -> models.Inception:
    try:
        return models.create(config.model, **model_options(config, num_classes))
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _check_workdir_model(config: ml_collections.ConfigDict, workdir: str, num_classes: int) -> None:
    """A workdir holding another model's checkpoint, or one whose recipe this config would change."""
    found = checkpoint.read_meta(workdir)
    if found is None:
        return
    step, meta = found
    wanted = {"model": config.model, **architecture(config, num_classes)}
    have = {"model": meta["model"], **meta["options"]}
    diff = {k: (have.get(k), v) for k, v in wanted.items() if have.get(k) != v}
    if diff:
        detail = ", ".join(f"{k}: checkpoint {a!r} vs config {b!r}" for k, (a, b) in diff.items())
        raise ConfigError(
            f"{workdir} holds a checkpoint (step {step}) of another model ({detail}). "
            "Use another --workdir; nothing in this one is touched."
        )
    flags = recipe.check_resume(meta.get("config"), config)
    if flags:
        raise ConfigError(
            f"{workdir} holds a checkpoint (step {step}) trained before the recipe was stated per image "
            "(learning rate per base_batch_size images, decays per step at decay_batch_size images); this "
            "config would change its schedule mid-run. To resume it as it was trained, add "
            f"{' '.join(flags)}; or use another --workdir. Nothing in this one is touched."
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
