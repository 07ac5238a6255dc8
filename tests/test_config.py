"""Every field of the base config has a range check, and every experiment config passes it."""

import importlib
import logging
import math
import subprocess
import sys
from pathlib import Path

import ml_collections
import pytest

from inception_flax import config_base
from inception_flax.config_base import ConfigError

ROOT = Path(__file__).resolve().parents[1]

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
    "bn_group_size": [-2],
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
    "momentum": [1.0],
    "rmsprop_momentum": [1.0, -0.5],
    "rmsprop_epsilon": [0.0, -1.0],
    "grad_clip_norm": [-2.0],
    "lr_schedule": ["cosine"],
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
    assert fields == set(config_base.FIELDS), "get_base_config() and config_base.FIELDS list different fields"
    assert fields == set(BAD), "every field needs a refused value in this table"


@pytest.mark.parametrize(("field", "value"), [(f, v) for f, values in BAD.items() for v in values])
def test_bad_value_is_refused_naming_the_field(field, value):
    # A fresh dict, so ConfigDict's own type check (what the command line enforces) does not interfere.
    c = ml_collections.ConfigDict({**config_base.get_base_config().to_dict(), field: value})
    with pytest.raises(ConfigError, match=rf"^config\.{field}=.* is not allowed: expected "):
        config_base.check(c)


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
            config_base.check(config)
        config.dataset = "folder:/data/flowers"
    config_base.check(config)


def test_every_ablation_arm_passes():
    ablation = importlib.import_module("configs.ablation")
    for study in ("cpu", "imagenet"):
        for arm in ablation.ARMS:
            config_base.check(ablation.get_config(f"{arm},{study}"))


def test_unknown_and_missing_fields():
    c = config_base.get_base_config()
    c.learning_rat = 0.1
    with pytest.raises(ConfigError, match="config.learning_rat is not a known field"):
        config_base.check(c)
    c = ml_collections.ConfigDict({k: v for k, v in config_base.get_base_config().items() if k != "seed"})
    with pytest.raises(ConfigError, match=r"lacks the fields \['seed'\]"):
        config_base.check(c)


def test_an_old_field_name_still_works_with_a_warning(caplog):
    """`rmsprop_momentum` (renamed `momentum`, which SGD uses too) still sets momentum, with a warning."""
    config = config_base.get_base_config()
    config.rmsprop_momentum = 0.5
    with caplog.at_level(logging.WARNING):
        config_base.check(config)
    assert config.momentum == 0.5 and config.rmsprop_momentum is None
    assert "config.rmsprop_momentum is now called config.momentum: using momentum=0.5 (instead of 0.9)" in caplog.text
    caplog.clear()
    config_base.check(config)  # checked again (a second check changes nothing): nothing moves, no second warning
    assert config.momentum == 0.5 and "rmsprop_momentum" not in caplog.text


def test_an_old_field_name_still_works_on_the_command_line():
    out = subprocess.run(
        [sys.executable, "scripts/schedule.py", "--config=configs/demo.py", "--config.rmsprop_momentum=0.5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "config.rmsprop_momentum is now called config.momentum: using momentum=0.5" in out.stderr


def test_every_field_has_help_and_the_docs_list_them_all():
    assert all(field.help.strip() for field in config_base.FIELDS.values())
    with open(ROOT / "docs" / "configuration.md") as f:
        assert f.read() == config_base.describe(), "docs/configuration.md is stale: regenerate it (command inside)"


def test_an_input_smaller_than_the_networks_accept_is_refused_by_the_field_check():
    """Needs no data or devices, so scripts/train.py refuses it before joining other processes."""
    config = config_base.get_base_config()
    config.image_size = 74
    with pytest.raises(ConfigError, match=r"config.image_size=74 is below the minimum of inception_v4: 75"):
        config_base.check(config)
    config.image_size, config.aux_logits = 100, True
    with pytest.raises(ConfigError, match=r"with aux_logits: 107"):
        config_base.check(config)


@pytest.mark.parametrize("name", ["inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2", "demo"])
def test_a_mistyped_config_argument_is_an_error_not_the_full_run(name):
    module = importlib.import_module(f"configs.{name}")
    with pytest.raises(ValueError, match="Unknown config argument 'runloacl': this config takes none or 'runlocal'"):
        module.get_config("runloacl")
    assert module.get_config("runlocal").num_train_steps == 20
