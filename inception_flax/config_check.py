"""Range checks of every field of the base config, in one table, run before anything is built.

`check(config)` raises `ConfigError` naming the first bad field, its value and what is allowed.
Types are already enforced by ml_collections (an int field refuses "abc" on the command line);
this table adds the ranges and choices. Checks that need the model, the devices or the dataset
(minimum input size, batch divisible by devices, splits present) are in `train.validate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import ml_collections
from absl import logging

from inception_flax.models import registry


class ConfigError(ValueError):
    """A user error found before anything is compiled."""


Rule = tuple[Callable[[Any], bool], str]  # (is the value allowed, what is allowed)


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _int(lo: int, hi: float = math.inf) -> Rule:
    text = f"an integer >= {lo}" if hi == math.inf else f"an integer in [{lo}, {hi}]"
    return (lambda x: isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi), text


def _real(lo: float, hi: float = math.inf, lo_open: bool = False, hi_open: bool = False) -> Rule:
    def ok(x):
        if not _number(x):
            return False
        return (lo < x if lo_open else lo <= x) and (x < hi if hi_open else x <= hi)

    if hi == math.inf:
        return ok, f"a number {'>' if lo_open else '>='} {lo}"
    return ok, f"a number in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"


def _auto_or_positive(source: str) -> Rule:
    """-1 means "derived from `source`"; otherwise a positive integer."""
    ok, _ = _int(-1)
    return (lambda x: ok(x) and x != 0), f"-1 (from {source}) or an integer >= 1"


def _renamed(rule: Rule) -> Rule:
    """An old field name: unset (None), or a value the new field's rule allows."""
    ok, allowed = rule
    return (lambda x: x is None or ok(x)), f"{allowed} (or unset)"


# Old field name -> new one. The old name keeps working on the command line and in configs:
# `check` moves its value to the new field with a one-line warning.
RENAMED = {"rmsprop_momentum": "momentum"}


def upgrade_recorded(recorded: dict[str, Any]) -> dict[str, Any]:
    """A config recorded under old field names (a workdir's config.json), as today's fields."""
    upgraded = dict(recorded)
    for old, new in RENAMED.items():
        if old in upgraded and new not in upgraded:
            upgraded[new], upgraded[old] = upgraded[old], None
    return upgraded


def _choice(*options: str) -> Rule:
    return (lambda x: x in options), "one of " + ", ".join(repr(o) for o in options)


def _bool() -> Rule:
    return (lambda x: isinstance(x, bool)), "True or False"


def _text(empty_ok: bool) -> Rule:
    return (lambda x: isinstance(x, str) and (empty_ok or bool(x.strip()))), "a string" + (
        "" if empty_ok else " (not empty)"
    )


def _crop_range(x: Any) -> bool:
    return len(x) == 2 and all(_number(v) for v in x) and 0 < x[0] <= x[1] <= 1


def _dataset(x: Any) -> bool:
    return isinstance(x, str) and bool(x.strip()) and x.strip() != "folder:"


def _dict(x: Any) -> bool:
    return isinstance(x, dict | ml_collections.ConfigDict)


# Every field of config_base.get_base_config(), and what each accepts.
RULES: dict[str, Rule] = {
    # Model.
    "model": ((lambda x: x in registry.names()), "one of " + ", ".join(registry.names())),
    "num_classes": _auto_or_positive("the dataset"),
    "width": _real(0, lo_open=True),
    "dropout_rate": _real(0, 1, hi_open=True),
    "aux_logits": _bool(),
    "aux_loss_weight": _real(0),
    "model_options": (_dict, "a dict of network options"),
    "half_precision": _bool(),
    "bn_momentum": _real(0, 1, hi_open=True),
    "init_from": _text(empty_ok=True),
    # Data.
    "dataset": (_dataset, "a TFDS name or folder:<root>"),
    "data_dir": _text(empty_ok=True),
    "train_split": _text(empty_ok=False),
    "eval_split": _text(empty_ok=False),
    "image_size": _int(1),
    "shuffle_buffer": _int(1),
    "crop_area_range": (_crop_range, "(low, high) with 0 < low <= high <= 1"),
    "color_distortion": _bool(),
    "data_shards": _int(0),
    # Schedule.
    "batch_size": _int(1),
    "base_batch_size": _int(1),
    "num_epochs": _real(0, lo_open=True),
    "num_train_steps": _auto_or_positive("num_epochs"),
    "log_every_steps": _int(1),
    "eval_every_steps": _int(1),
    "checkpoint_every_steps": _int(1),
    "keep_checkpoints": _int(1),
    "seed": _int(0, 2**31 - 1),
    # Optimisation.
    "optimizer": _choice("rmsprop", "sgd"),
    "learning_rate": _real(0),  # 0 freezes the weights (e.g. to recalibrate BatchNorm statistics)
    "lr_decay_rate": _real(0, 1, lo_open=True),
    "lr_decay_epochs": _real(0, lo_open=True),
    "cold_epochs": _real(0),
    "cold_learning_rate": _real(0),
    "warmup_epochs": _real(0),
    "rmsprop_decay": _real(0, 1, hi_open=True),
    "momentum": _real(0, 1, hi_open=True),
    "rmsprop_momentum": _renamed(_real(0, 1, hi_open=True)),
    "rmsprop_epsilon": _real(0, lo_open=True),
    "grad_clip_norm": _real(0),
    "label_smoothing": _real(0, 1, hi_open=True),
    "weight_decay": _real(0),
    "weight_decay_biases": _bool(),
    "ema_decay": _real(0, 1, hi_open=True),
    "decay_batch_size": _int(0),
    "ema_warmup": _bool(),
    "ema_batch_stats": _bool(),
    "eval_with_ema": _bool(),
    # Faults.
    "nonfinite": _choice("halt", "rewind"),
    "max_rewinds": _int(0),
    # Runtime.
    "remat": _bool(),
    "profile": _bool(),
    "compilation_cache_dir": _text(empty_ok=True),
}


def check(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError for the first field outside its range (or a field this table lacks).

    A value given under an old field name (`RENAMED`) is moved to the new field, with a warning.
    """
    for name, value in config.items():
        if name not in RULES:
            raise ConfigError(f"config.{name} is not a known field (known: {', '.join(sorted(RULES))}).")
        ok, allowed = RULES[name]
        try:
            good = ok(value)
        except TypeError:
            good = False
        if not good:
            raise ConfigError(f"config.{name}={value!r} is not allowed: expected {allowed}.")
    missing = sorted(set(RULES) - set(config.keys()))
    if missing:
        raise ConfigError(f"The config lacks the fields {missing}; build it from config_base.get_base_config().")
    for old, new in RENAMED.items():
        if config[old] is not None:
            logging.warning(
                "config.%s is now called config.%s: using %s=%r (instead of %r).",
                old,
                new,
                new,
                config[old],
                config[new],
            )
            config[new], config[old] = config[old], None
