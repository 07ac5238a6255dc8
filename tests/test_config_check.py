"""Every field of the base config has a range check, and every experiment config passes it."""

import importlib
import math

import ml_collections
import pytest

from inception_flax import config_base, config_check
from inception_flax.config_check import ConfigError

# Values a user could type that must be refused, for every field of the base config.
BAD = {
    "model": ["inception_v5", ""],
    "num_classes": [0, -2],
    "width": [0.0, -0.5, math.nan],
    "dropout_rate": [-0.1, 1.0],
    "aux_logits": [1],
    "aux_loss_weight": [-0.4],
    "model_options": ["residual"],
    "half_precision": ["yes"],
    "bn_momentum": [1.0, -0.1],
    "init_from": [3],
    "dataset": ["", "folder:", "  "],
    "data_dir": [None],
    "train_split": [""],
    "eval_split": [" "],
    "image_size": [0, -299, 299.5],
    "shuffle_buffer": [0],
    "crop_area_range": [(0.0, 1.0), (0.5, 0.1), (0.05, 1.5), (0.5,)],
    "color_distortion": [0],
    "data_shards": [-1],
    "batch_size": [0, -8],
    "base_batch_size": [0],
    "num_epochs": [0.0, -1.0, math.inf],
    "num_train_steps": [0, -5],
    "log_every_steps": [0],
    "eval_every_steps": [0, -1],
    "checkpoint_every_steps": [0],
    "keep_checkpoints": [0],
    "seed": [-1, 2**40],
    "optimizer": ["adam", "RMSProp"],
    "learning_rate": [-1.0, -1e-9, math.nan],
    "lr_decay_rate": [0.0, 1.5],
    "lr_decay_epochs": [0.0],
    "cold_epochs": [-1.0, math.nan],
    "cold_learning_rate": [-0.001],
    "warmup_epochs": [-1.0],
    "rmsprop_decay": [1.0, -0.1],
    "rmsprop_momentum": [1.0],
    "rmsprop_epsilon": [0.0, -1.0],
    "grad_clip_norm": [-2.0],
    "label_smoothing": [1.0, -0.1],
    "weight_decay": [-4e-5],
    "weight_decay_biases": ["no"],
    "ema_decay": [1.0, -0.5],
    "decay_batch_size": [-1, 1.5],
    "ema_warmup": [1],
    "ema_batch_stats": ["yes"],
    "eval_with_ema": [None],
    "nonfinite": ["skip", ""],
    "max_rewinds": [-1],
    "remat": ["on"],
    "profile": [2],
    "compilation_cache_dir": [None],
}


def test_every_field_has_a_rule_and_a_bad_value():
    fields = set(config_base.get_base_config().keys())
    assert fields == set(config_check.RULES), "config_base and config_check.RULES list different fields"
    assert fields == set(BAD), "every field needs a refused value in this table"


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in BAD.items() for v in values])
def test_bad_value_is_refused_naming_the_field(field, value):
    # A fresh dict, so ConfigDict's own type check (what the command line enforces) does not interfere.
    c = ml_collections.ConfigDict({**config_base.get_base_config().to_dict(), field: value})
    with pytest.raises(ConfigError, match=rf"^config\.{field}=.* is not allowed: expected "):
        config_check.check(c)


def _experiment_configs():
    cases = [("config_base", None)]
    for name, args in [
        ("demo", [None]),
        ("inception_v3", [None, "runlocal"]),
        ("inception_v4", [None, "runlocal"]),
        ("inception_resnet_v1", [None, "runlocal"]),
        ("inception_resnet_v2", [None, "runlocal"]),
        ("finetune", ["inception_v4", "inception_v3"]),
    ]:
        cases += [(name, a) for a in args]
    return cases


@pytest.mark.parametrize(("name", "arg"), _experiment_configs())
def test_shipped_configs_pass(name, arg):
    if name == "config_base":
        config = config_base.get_base_config()
    else:
        config = importlib.import_module(f"configs.{name}").get_config(arg)
    if name == "finetune":  # the user must name the data: an empty dataset is refused
        with pytest.raises(ConfigError, match="config.dataset=''"):
            config_check.check(config)
        config.dataset = "folder:/data/flowers"
    config_check.check(config)


def test_every_ablation_arm_passes():
    ablation = importlib.import_module("configs.ablation")
    for study in ("cpu", "imagenet"):
        for arm in ablation.ARMS:
            config_check.check(ablation.get_config(f"{arm},{study}"))


def test_unknown_and_missing_fields():
    c = config_base.get_base_config()
    c.learning_rat = 0.1
    with pytest.raises(ConfigError, match="config.learning_rat is not a known field"):
        config_check.check(c)
    c = ml_collections.ConfigDict({k: v for k, v in config_base.get_base_config().items() if k != "seed"})
    with pytest.raises(ConfigError, match=r"lacks the fields \['seed'\]"):
        config_check.check(c)
