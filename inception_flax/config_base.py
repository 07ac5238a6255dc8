"""Every config field once: its default, what it accepts and what it does; and the check of a config.

The experiments in configs/ start from `get_base_config()` and override what they need;
`check(config)` is the field check of a launch (scripts/train.py runs it before joining other
processes; `preflight.validate` runs it otherwise, then checks what needs the devices, the data
and the workdir). `describe()` renders the table as docs/configuration.md.

The defaults are the synchronous ImageNet recipe of Google's TPU reference for Inception-v4
(tensorflow/tpu `models/experimental/inception/inception_v4.py`), which keeps the paper's
optimiser (RMSProp decay 0.9, momentum 0.9, epsilon 1.0; lr x 0.94 every 2 epochs; label
smoothing 0.1; L2 4e-5; no gradient clipping) and its schedule step for step (`lr_schedule`), but
states every quantity per image, so that it holds at any global batch:
- the learning rate is per `base_batch_size` images and scales linearly with `batch_size`;
- warm-up and decay are in epochs;
- `ema_decay` and `bn_momentum` are per-step decays at a global batch of `decay_batch_size`; at
  another batch B each becomes 1 - (1 - decay) * B / decay_batch_size, so their windows,
  1 / (1 - decay) steps, stay the same number of images (`scripts/schedule.py` prints them in epochs).

The paper's own asynchronous recipe (50 replicas each applying lr 0.045 to its own 32 images)
is not a synchronous batch of 1600 at 0.045: that divides the rate per image by ~50. Its old
reading stays reachable: `--config.learning_rate=0.045 --config.base_batch_size=1600
--config.batch_size=1600 --config.cold_epochs=0 --config.warmup_epochs=0
--config.decay_batch_size=0 --config.ema_decay=0.9999 --config.bn_momentum=0.9997
--config.ema_warmup=False --config.ema_batch_stats=False --config.lr_schedule=linear_warmup
--config.grad_clip_norm=2.0 --config.color_distortion=slim --config.bn_group_size=0`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import ml_collections

from inception_flax.models import networks, registry


class ConfigError(ValueError):
    """A user error found before anything is compiled."""


class Field(NamedTuple):
    default: Any
    ok: Callable[[Any], bool]  # is a value allowed (types are ml_collections' own check)
    allowed: str  # what is allowed, in words
    help: str


Rule = tuple[Callable[[Any], bool], str]


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _int(lo: int, hi: float = math.inf) -> Rule:
    text = f"an integer >= {lo}" if hi == math.inf else f"an integer in [{lo}, {hi}]"
    return (lambda x: isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi), text


def _real(lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False) -> Rule:
    def ok(x):
        return _number(x) and (lo < x if lo_open else lo <= x) and (x < hi if hi_open else x <= hi)

    if hi == math.inf:
        return ok, f"a number {'>' if lo_open else '>='} {lo}"
    return ok, f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def _auto(source: str) -> Rule:
    """-1 means "derived from `source`"; otherwise a positive integer."""
    return (lambda x: isinstance(x, int) and not isinstance(x, bool) and (x == -1 or x >= 1)), (
        f"-1 (from {source}) or an integer >= 1"
    )


def _choice(*options: str) -> Rule:
    return (lambda x: x in options), "one of " + ", ".join(repr(o) for o in options)


_BOOL: Rule = (lambda x: isinstance(x, bool)), "True or False"
_TEXT: Rule = (lambda x: isinstance(x, str)), "a string"
_NAME: Rule = (lambda x: isinstance(x, str) and bool(x.strip())), "a string (not empty)"
_FRACTION: Rule = _real(0, 1, hi_open=True)
_MODEL: Rule = (lambda x: x in registry.names()), "one of " + ", ".join(registry.names())
_DATASET: Rule = (lambda x: isinstance(x, str) and x.strip() not in ("", "folder:")), "a TFDS name or folder:<root>"
_OPTIONS: Rule = (lambda x: isinstance(x, dict | ml_collections.ConfigDict)), "a dict of network options"
_CROP: Rule = (
    (lambda x: len(x) == 2 and all(_number(v) for v in x) and 0 < x[0] <= x[1] <= 1),
    "(low, high) with 0 < low <= high <= 1",
)


def _f(default: Any, rule: Rule, help: str) -> Field:
    return Field(default, *rule, help)


# Section -> field -> (default, rule, help). The order is get_base_config()'s and the docs'.
TABLE: dict[str, dict[str, Field]] = {
    "Model": {
        "model": _f("inception_v4", _MODEL, "The network (`models.MODELS`)."),
        "num_classes": _f(-1, _auto("the dataset"), "Classifier outputs; -1: the dataset's class count."),
        "width": _f(1.0, _real(0, lo_open=True), "Channel multiplier of every layer (1.0: the paper's)."),
        "dropout_rate": _f(0.2, _FRACTION, "Dropout before the classifier (train mode only)."),
        "aux_logits": _f(
            False, _BOOL, "Add the auxiliary classifier at the 17x17 stage (needs inputs of 107 or more)."
        ),
        "aux_loss_weight": _f(0.4, _real(0), "Weight of the auxiliary classifier's loss."),
        "model_options": _f(
            ml_collections.ConfigDict(),
            _OPTIONS,
            "The network's own options (`models.options(name)`): residual, scale_a/b/c, pool_include_pad, bn_scale.",
        ),
        "half_precision": _f(
            ml_collections.config_dict.placeholder(bool),
            ((lambda x: x is None or isinstance(x, bool)), "True, False or unset"),
            "bfloat16 activations and matmuls (float32 parameters, optimiser state, BatchNorm statistics and "
            "loss); unset: on TPU and GPU, not on CPU (`step.compute_dtype`).",
        ),
        "bn_momentum": _f(
            0.995, _FRACTION, "BatchNorm statistics' decay per step at decay_batch_size images (slim: 0.9997)."
        ),
        "bn_group_size": _f(
            -1,
            ((lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= -1), "-1, 0 or an integer >= 1"),
            "BatchNorm's training statistics over groups of this many images: -1 each device's images (the TPU "
            "reference normalises per core), 0 the global batch, N groups of N (dividing batch_size).",
        ),
        "init_from": _f("", _TEXT, "Fine-tune from a workdir or converted weights; new heads if num_classes differs."),
    },
    "Data": {
        "dataset": _f("imagenet2012", _DATASET, "A TFDS name, or folder:<root> with <root>/<split>/<class>/<image>."),
        "data_dir": _f("", _TEXT, "TFDS data_dir; empty: TFDS's default (~/tensorflow_datasets or $TFDS_DATA_DIR)."),
        "train_split": _f("train", _NAME, "Split trained on."),
        "eval_split": _f("validation", _NAME, "Split evaluated every eval_every_steps."),
        "image_size": _f(299, _int(1), "Input side in pixels (at least the network's minimum)."),
        "shuffle_buffer": _f(10_000, _int(1), "tf.data shuffle buffer, in images per process."),
        "crop_area_range": _f((0.05, 1.0), _CROP, "Inception crop: fraction of the image's area kept."),
        "color_distortion": _f(
            "tpu_fast",
            _choice("tpu_fast", "slim", "none"),
            "Colour distortion of training images: the TPU reference's (brightness +-32/255 and Cb/Cr +-0.1 "
            "in YCbCr), slim's (brightness +-32/255, saturation x0.5-1.5), or none.",
        ),
        "data_shards": _f(0, _int(0), "Input shards of the global stream; 0: one per process (data.PipelineConfig)."),
    },
    "Schedule": {
        "batch_size": _f(1024, _int(1), "Global batch over all devices and hosts (TPU reference: 1024)."),
        "base_batch_size": _f(256, _int(1), "learning_rate and cold_learning_rate are per this many images."),
        "num_epochs": _f(170.0, _real(0, lo_open=True), "Length of training in epochs (TPU reference v3: 213k steps)."),
        "num_train_steps": _f(-1, _auto("num_epochs"), "Length in steps; -1: from num_epochs."),
        "log_every_steps": _f(100, _int(1), "Training metrics every this many steps."),
        "eval_every_steps": _f(5000, _int(1), "Evaluation every this many steps (and at the last)."),
        "checkpoint_every_steps": _f(2000, _int(1), "Checkpoint every this many steps (and at the last)."),
        "keep_checkpoints": _f(3, _int(1), "Newest checkpoints kept."),
        "seed": _f(0, _int(0, 2**31 - 1), "Initialisation, dropout and input order."),
    },
    "Optimisation": {
        "optimizer": _f("rmsprop", _choice("rmsprop", "sgd"), "RMSProp (the paper's) or SGD with Nesterov momentum."),
        "learning_rate": _f(
            0.15, _real(0), "Peak rate per base_batch_size images, after warm-up; 0 freezes the weights."
        ),
        "lr_schedule": _f(
            "tpu_v4",
            _choice("tpu_v4", "tpu_v3", "linear_warmup"),
            "The schedule's shape: the TPU reference's Inception-v4 or -v3 formula step for step, or a linear "
            "warm-up with stairs counted from its end (`optim.learning_rate_schedule`; docs/recipe.md).",
        ),
        "lr_decay_rate": _f(0.94, _real(0, 1, lo_open=True), "Staircase decay factor ..."),
        "lr_decay_epochs": _f(2.0, _real(0, lo_open=True), "... every this many epochs."),
        "cold_epochs": _f(1.0, _real(0), "First this many epochs at cold_learning_rate (whole epochs for tpu_v4), ..."),
        "cold_learning_rate": _f(0.001, _real(0), "... per base_batch_size images, ..."),
        "warmup_epochs": _f(2.0, _real(0), "... then this many epochs up to learning_rate (tpu_v4: per-epoch stairs)."),
        "rmsprop_decay": _f(0.9, _FRACTION, "RMSProp's decay of the squared-gradient average."),
        "momentum": _f(0.9, _FRACTION, "RMSProp's momentum, or SGD's (Nesterov)."),
        "rmsprop_epsilon": _f(1.0, _real(0, lo_open=True), "RMSProp's epsilon (the paper's 1.0)."),
        "grad_clip_norm": _f(
            0.0, _real(0), "Clip gradients at this global norm; 0: no clipping (the TPU reference's)."
        ),
        "label_smoothing": _f(0.1, _FRACTION, "Label smoothing of the cross-entropy."),
        "weight_decay": _f(4e-5, _real(0), "slim's L2: weight_decay * 0.5 * ||w||^2 over kernels."),
        "weight_decay_biases": _f(False, _BOOL, "Also decay biases outside BatchNorm."),
        "ema_decay": _f(0.995, _FRACTION, "Weight average's decay per step at decay_batch_size images."),
        "decay_batch_size": _f(
            1024, _int(0), "Global batch ema_decay and bn_momentum are stated at; 0: per step at any batch."
        ),
        "ema_warmup": _f(True, _BOOL, "TF's ExponentialMovingAverage(num_updates): min(ema_decay, (1+t)/(10+t))."),
        "ema_batch_stats": _f(True, _BOOL, "Also average BatchNorm statistics (evaluation uses them with the EMA)."),
        "eval_with_ema": _f(True, _BOOL, "Evaluate the averaged weights (else the raw ones)."),
    },
    "Faults": {
        "nonfinite": _f(
            "halt", _choice("halt", "rewind"), "A NaN/Inf loss or gradient: stop, or rewind past the batch."
        ),
        "max_rewinds": _f(3, _int(0), "'rewind' gives up (as 'halt') after this many rewinds in one run."),
    },
    "Runtime": {
        "remat": _f(False, _BOOL, "Recompute block activations in the backward pass (less memory, more compute)."),
        "profile": _f(True, _BOOL, "Write a profile of a few early steps to TensorBoard."),
        "compilation_cache_dir": _f("", _TEXT, "Persistent XLA cache; a restarted job skips recompiling."),
    },
}
FIELDS: dict[str, Field] = {name: field for section in TABLE.values() for name, field in section.items()}


def get_base_config() -> ml_collections.ConfigDict:
    """Every field at its default: the synchronous ImageNet recipe (see the module docstring)."""
    c = ml_collections.ConfigDict()
    for name, field in FIELDS.items():
        c[name] = _fresh(field.default)
    return c


def _fresh(default: Any) -> Any:
    """A default no two configs share (a placeholder or dict set in one would change every config)."""
    if isinstance(default, ml_collections.ConfigDict):
        return ml_collections.ConfigDict(default.to_dict())
    if isinstance(default, ml_collections.FieldReference):
        return ml_collections.config_dict.placeholder(default.get_type())
    return default


def runlocal(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks any config to a laptop smoke run on the embedded digits (big_vision's `runlocal`)."""
    c.dataset = "inception_digits"
    c.eval_split = "test"
    c.width = 0.125
    c.image_size = 107 if c.aux_logits else 75
    c.batch_size = 16
    c.base_batch_size = 16
    c.num_train_steps = 20
    c.log_every_steps = 5
    c.eval_every_steps = 20
    c.checkpoint_every_steps = 10
    c.shuffle_buffer = 2000
    c.bn_momentum = 0.9
    c.ema_decay = 0.9
    c.learning_rate = 0.045
    c.decay_batch_size = 0  # per step: a 20-step run needs short windows at any batch
    c.bn_group_size = 0  # the whole batch of 16 on any number of devices
    c.cold_epochs = 0.0
    c.warmup_epochs = 0.0
    c.profile = False
    return c


def parse_arg(arg: str | None, **groups: tuple[str, ...]) -> dict[str, Any]:
    """A config's `:arg`, "a,b,...", as at most one word of each group, plus `runlocal` (True or
    False), which every config takes. A word no group knows is an error naming every known one, so
    a typo never launches the full run. Groups without a word map to None."""
    found: dict[str, Any] = {name: None for name in groups}
    found["runlocal"] = False
    for word in filter(None, (arg or "").split(",")):
        if word == "runlocal":
            found["runlocal"] = True
            continue
        group = next((name for name, words in groups.items() if word in words), None)
        if group is None:
            known = "; ".join(f"{name}: {', '.join(words)}" for name, words in groups.items())
            raise ValueError(
                f"Unknown config argument {word!r} in {arg!r}; this config takes "
                + (f"{known}; and 'runlocal'." if groups else "none or 'runlocal'.")
            )
        if found[group] is not None:
            raise ValueError(f"Config argument {arg!r} names two {group}s: {found[group]!r} and {word!r}.")
        found[group] = word
    return found


def apply_arg(c: ml_collections.ConfigDict, arg: str | None) -> ml_collections.ConfigDict:
    """A config's `:arg` for the configs that take none but `runlocal`."""
    return runlocal(c) if parse_arg(arg)["runlocal"] else c


def check(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for the first field outside its range (or a field the table lacks), or
    an input smaller than the network accepts."""
    for name, value in config.items():
        if name not in FIELDS:
            raise ConfigError(f"config.{name} is not a known field (known: {', '.join(sorted(FIELDS))}).")
        try:
            good = FIELDS[name].ok(value)
        except TypeError:
            good = False
        if not good:
            raise ConfigError(f"config.{name}={value!r} is not allowed: expected {FIELDS[name].allowed}.")
    missing = sorted(set(FIELDS) - set(config.keys()))
    if missing:
        raise ConfigError(f"The config lacks the fields {missing}; build it from config_base.get_base_config().")
    if config.lr_schedule == "tpu_v4" and not all(
        float(config[k]).is_integer() for k in ("cold_epochs", "warmup_epochs")
    ):
        raise ConfigError(
            f"lr_schedule 'tpu_v4' warms up in whole epochs: cold_epochs={config.cold_epochs} and "
            f"warmup_epochs={config.warmup_epochs} must be whole numbers (or use lr_schedule 'linear_warmup')."
        )
    if config.bn_group_size > 0 and config.batch_size % config.bn_group_size:
        raise ConfigError(
            f"config.bn_group_size={config.bn_group_size} does not divide config.batch_size={config.batch_size}."
        )
    smallest = networks.min_input_size(config.aux_logits)
    if config.image_size < smallest:
        raise ConfigError(
            f"config.image_size={config.image_size} is below the minimum of {config.model}"
            f"{' with aux_logits' if config.aux_logits else ''}: {smallest}."
        )


def describe() -> str:
    """The table as Markdown (docs/configuration.md): field, default, allowed values, what it does."""
    lines = [
        "# Configuration fields",
        "",
        "Every field of `inception_flax/config_base.py`, generated from its table by",
        "",
        "    python -c \"from inception_flax import config_base; print(config_base.describe(), end='')\" > docs/configuration.md",
        "",
        "Set any of them on the command line with `--config.<field>=<value>`; the experiments in",
        "`configs/` change some defaults, and a value outside its range stops the launch before anything",
        "is built, naming the field.",
        "",
    ]
    for section, fields in TABLE.items():
        lines += [f"## {section}", "", "| field | default | allowed | what it does |", "|---|---|---|---|"]
        for name, f in fields.items():
            default = "{}" if isinstance(f.default, ml_collections.ConfigDict) else repr(f.default)
            if isinstance(f.default, ml_collections.FieldReference):
                default = "unset"
            cells = (f"`{name}`", f"`{default}`", f.allowed, f.help)
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
        lines.append("")
    return "\n".join(lines)
