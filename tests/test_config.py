"""Every field of the base config has a range check, and every experiment config passes it."""

import importlib
import json
import math
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
    for scale in (*ablation.DIGIT_EPOCHS, "imagenet"):
        for arm in ablation.ARMS:
            config_base.check(ablation.get_config(f"{arm},{scale}"))


def test_unknown_and_missing_fields():
    c = config_base.get_base_config()
    c.learning_rat = 0.1
    with pytest.raises(ConfigError, match="config.learning_rat is not a known field"):
        config_base.check(c)
    c = ml_collections.ConfigDict({k: v for k, v in config_base.get_base_config().items() if k != "seed"})
    with pytest.raises(ConfigError, match=r"lacks the fields \['seed'\]"):
        config_base.check(c)


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


@pytest.mark.parametrize(
    ("name", "known"),
    [
        ("inception_v3", "none or 'runlocal'"),
        ("inception_v4", "none or 'runlocal'"),
        ("inception_resnet_v1", "none or 'runlocal'"),
        ("inception_resnet_v2", "none or 'runlocal'"),
        ("demo", "none or 'runlocal'"),
        (
            "ablation",
            "arm: plain, ir_v2, residual, v3, ir_v1, v4, scale1.0, scale0.3, scale0.1, twin; "
            "scale: pilot, cpu, long, wide, e100, e150, e225, imagenet",
        ),
        ("batch_scaling", "arm: b16, b32, b64, b128; scale: cpu"),
        ("finetune", "model: inception_resnet_v1, inception_resnet_v2, inception_v3, inception_v4"),
    ],
)
def test_config_arguments_are_strict_and_every_config_takes_runlocal(name, known):
    """A mistyped argument is an error naming what the config takes, never the full run; `runlocal`
    shrinks any config (with its other words) to the 20-step smoke run on the digits."""
    module = importlib.import_module(f"configs.{name}")
    with pytest.raises(ValueError, match=r"Unknown config argument 'runloacl' in 'runloacl'; this config takes ") as e:
        module.get_config("runloacl")
    assert known in str(e.value)
    local = module.get_config("runlocal")
    assert (local.num_train_steps, local.dataset, local.batch_size) == (20, "inception_digits", 16)
    config_base.check(local)


def test_config_arguments_combine_and_refuse_two_of_a_kind():
    ablation = importlib.import_module("configs.ablation")
    local = ablation.get_config("v4,runlocal")
    assert local.model == "inception_v4" and local.num_train_steps == 20
    assert ablation.get_config("imagenet").model == "inception_resnet_v2"  # the default arm at a named scale
    with pytest.raises(ValueError, match="names two arms: 'v3' and 'v4'"):
        ablation.get_config("v3,v4")
    with pytest.raises(ValueError, match="Unknown config argument 'ir_v3'"):
        ablation.get_config("ir_v3,cpu")
    assert importlib.import_module("configs.finetune").get_config("inception_v3,runlocal").model == "inception_v3"


def test_claim2_takes_the_rates_and_sd_of_the_committed_rates_pilot():
    ablation = importlib.import_module("configs.ablation")
    pilot = json.loads((ROOT / "docs/ablation/rates/report/pilot.json").read_text())
    assert ablation.LONG_RATES == pilot["chosen_learning_rate"]
    assert ablation.get_study("claim2").planned_sd == pytest.approx(pilot["paired_sd"], abs=5e-5)
    assert pilot["paired_sd_pairs"] == [["v3", "ir_v1"], ["v4", "ir_v2"]]
    for arm, rate in ablation.LONG_RATES.items():
        assert ablation.get_config(f"{arm},long").learning_rate == rate
        assert ablation.get_config(f"{arm},cpu").learning_rate == ablation.RATES[arm]  # the 12-epoch study's
