"""The per-image recipe: schedule, decays at any batch, TF's EMA warm-up, EMA of BatchNorm
statistics, the resolved `Recipe`, and `scripts/schedule.py` on every shipped config."""

import dataclasses
import importlib
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from inception_flax import config_base, optim, recipe, step
from tests.helpers import TinyNet

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ["inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2", "demo", "finetune"]


def approx(x):
    return pytest.approx(x, rel=1e-5)  # the schedule computes in float32


def v4_at(batch_size: int):
    c = importlib.import_module("configs.inception_v4").get_config()
    c.batch_size = batch_size
    return c


def test_schedule_against_hand_computed_values():
    c = v4_at(1024)  # 0.15 per 256 images -> 0.6 / 0.94 ** 1.5 initial; cold 0.001 per 256 -> 0.004
    s = optim.learning_rate_schedule(c, steps_per_epoch=10, train_images=10 * 1024)
    initial = 0.6 / 0.94**1.5
    assert float(s(0)) == approx(0.004) and float(s(9)) == approx(0.004)  # cold epoch
    assert float(s(10)) == approx(initial / 3) and float(s(19)) == approx(initial / 3)  # warm-up stairs
    assert float(s(20)) == approx(2 * initial / 3)
    assert float(s(30)) == approx(initial * 0.94) and float(s(39)) == approx(initial * 0.94)  # stairs from step 0
    assert float(s(40)) == approx(initial * 0.94**2)
    c.lr_schedule = "linear_warmup"  # the digit experiments' shape: stairs from the end of warm-up
    s = optim.learning_rate_schedule(c, steps_per_epoch=10)
    assert float(s(10)) == approx(0.004)  # warm-up starts at the cold rate ...
    assert float(s(20)) == approx(0.004 + 0.5 * (0.6 - 0.004))  # ... halfway after 1 of 2 epochs
    assert float(s(30)) == approx(0.6) and float(s(49)) == approx(0.6)  # peak, 2 epochs
    assert float(s(50)) == approx(0.6 * 0.94)
    assert float(s(70)) == approx(0.6 * 0.94**2)
    assert float(s(89)) == approx(0.6 * 0.94**2)


def test_windows_stay_when_only_the_batch_changes():
    small, big = (recipe.summarize(c, recipe.resolve(c, 1_281_167)) for c in (v4_at(1024), v4_at(4096)))
    # The highest rate: the stated 2.4 at 4,096, given back the stairs spent in warm-up (0.94 ** -0.5).
    assert big["peak_learning_rate"] == pytest.approx(4 * small["peak_learning_rate"]) == pytest.approx(2.4 / 0.94**0.5)
    for key in ("ema_window_epochs", "bn_window_epochs", "warmup_epochs", "cold_epochs"):
        assert big[key] == pytest.approx(small[key], rel=1e-9), key
    assert small["ema_window_epochs"] == pytest.approx(1024 / 0.005 / 1_281_167)
    assert small["steps_per_epoch"] == 1251 and big["steps_per_epoch"] == 312
    assert small["total_steps"] == 170 * 1251
    # learning rate per epoch boundary: the same curve in epochs, 4x higher
    np.testing.assert_allclose(
        big["learning_rate_per_epoch"], 4 * np.array(small["learning_rate_per_epoch"]), rtol=1e-5
    )


def test_decay_scaling_and_its_limit():
    c = v4_at(4096)
    assert recipe.resolve(c, 1_281_167).ema_decay == pytest.approx(1 - 0.005 * 4)
    c.decay_batch_size = 0  # per step at any batch
    assert recipe.resolve(c, 1_281_167).ema_decay == 0.995
    c.decay_batch_size, c.batch_size = 1024, 1024 * 400  # a window shorter than one step
    with pytest.raises(ValueError, match="config.ema_decay=0.995: .* fewer than one global batch"):
        recipe.resolve(c, 1024 * 1000)


def test_ema_warmup_is_tensorflows_num_updates_formula():
    tf = pytest.importorskip("tensorflow")
    r = recipe.resolve(v4_at(1024), 1_281_167)
    values = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    var, updates = tf.Variable(values[0]), tf.Variable(0, dtype=tf.int64)
    ema = tf.train.ExponentialMovingAverage(0.995, num_updates=updates)
    ema.apply([var])  # creates the average at the initial value (decay min(0.995, 1/10) of equal values)
    ours = values[0].astype(np.float64)
    for t in range(1, len(values)):
        var.assign(values[t])
        updates.assign(t)
        ema.apply([var])
        d = float(r.ema_decay_at(jnp.asarray(t)))
        assert d == pytest.approx(min(0.995, (1 + t) / (10 + t)), rel=1e-6)
        ours = d * ours + (1 - d) * values[t]
    np.testing.assert_allclose(ours, ema.average(var).numpy(), rtol=1e-5)
    assert float(dataclasses.replace(r, ema_warmup=False).ema_decay_at(jnp.asarray(1))) == pytest.approx(0.995)


def test_the_batchnorm_statistics_are_averaged_with_the_weights():
    c = config_base.get_base_config()
    c.batch_size = c.base_batch_size = c.decay_batch_size = 4
    c.ema_decay = 0.9
    model = TinyNet()
    r = recipe.resolve(c, 40)
    tx = optim.create_optimizer(c, r.learning_rate)
    images = np.random.default_rng(0).normal(size=(4, 5, 5, 3)).astype(np.float32)
    state = step.assemble_state(tx, model.init(jax.random.key(0), images), jax.random.key(1), ema_batch_stats=True)
    moved, _, finite = jax.jit(lambda s, b: step.train_step(s, b, model=model, tx=tx, recipe=r))(
        state, {"image": images, "label": np.array([0, 1, 2, 0])}
    )
    assert bool(finite)
    d = min(0.9, 2 / 11)  # TF's warm-up at the first update
    for name in ("params", "batch_stats"):
        old, new = getattr(state, "ema_" + name), getattr(moved, name)
        expected = jax.tree.map(lambda e, p: d * e + (1 - d) * p, old, new)
        jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6), getattr(moved, "ema_" + name), expected)
    assert not np.allclose(moved.ema_batch_stats["BatchNorm_0"]["mean"], state.batch_stats["BatchNorm_0"]["mean"])


@pytest.mark.parametrize("name", [*SHIPPED, "ablation", "batch_scaling"])
def test_every_shipped_config_has_a_schedule(name, tmp_path):
    c = importlib.import_module(f"configs.{name}").get_config()
    images = recipe.known_train_images(c) or 10_000  # finetune names no dataset until a user does
    s = recipe.report(c, images, str(tmp_path / "s.json"), str(tmp_path / "lr.png"))
    saved = json.loads((tmp_path / "s.json").read_text())
    for key in ("steps_per_epoch", "total_steps", "peak_learning_rate", "warmup_epochs", "ema_window_epochs"):
        assert saved[key] == s[key]
    assert len(saved["learning_rate_per_epoch"]) == s["total_steps"] // s["steps_per_epoch"] + 1
    assert max(saved["learning_rate_per_epoch"]) <= s["peak_learning_rate"] * (1 + 1e-6)
    assert (tmp_path / "lr.png").stat().st_size > 1000


def test_schedule_script_prints_json_plots_and_refuses_bad_values(tmp_path):
    script = [sys.executable, str(ROOT / "scripts" / "schedule.py"), f"--config={ROOT / 'configs' / 'inception_v4.py'}"]
    out = subprocess.run(
        [*script, "--config.batch_size=4096", f"--json={tmp_path / 's.json'}", f"--plot={tmp_path / 'lr.png'}"],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert "global batch 4096: 312 steps per epoch" in out and "peak 2.4" in out
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["steps_per_epoch"] == 312 and saved["total_steps"] == 53_040
    assert saved["bn_window_epochs"] == pytest.approx(1024 / 0.005 / 1_281_167)
    assert (tmp_path / "lr.png").exists()
    bad = subprocess.run([*script, "--config.warmup_epochs=-1"], capture_output=True, text=True, cwd=ROOT, check=False)
    assert bad.returncode != 0 and "error: config.warmup_epochs=-1.0 is not allowed" in bad.stderr
    assert "Traceback" not in bad.stderr
