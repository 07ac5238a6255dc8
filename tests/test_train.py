"""The main job on tiny configs through the real pipeline (embedded digits).

In-process runs cover the loop, metrics, checkpoints, NaN halt and every user error; subprocess
runs cover what needs a fresh process: SIGKILL + resume, 8 fake devices, two jax.distributed
processes on 127.0.0.1, and the locked command line.
"""

import os
import re
import signal
import time

import jax
import numpy as np
import pytest

from inception_flax import checkpoint, config_base, data, preflight, train
from tests.helpers import (
    counting,
    finished,
    loss_history,
    overrides_as_flags,
    restore_state,
    run_script,
    tiny_config,
)


def test_train_evaluate_checkpoint_and_resume(tfds_dir, tmp_path, monkeypatch):
    # One launch checks its config once and builds its model once; training trusts the plan.
    checks = counting(monkeypatch, preflight.config_base, "check")
    builds = counting(monkeypatch, preflight.models, "create")
    config = tiny_config(tfds_dir)
    plan = preflight.validate(config, str(tmp_path))
    assert (len(checks), len(builds)) == (1, 1)
    result = train.train_and_evaluate(config, str(tmp_path), plan=plan)
    assert (len(checks), len(builds)) == (1, 1)
    with pytest.raises(ValueError, match="validated for another config or workdir"):
        train.train_and_evaluate(config, str(tmp_path / "other"), plan=plan)
    assert result["step"] == 6
    assert result["eval_num_examples"] == 20
    assert [s for s, _ in result["train_loss_history"]] == [1, 2, 3, 4, 5, 6]
    assert all(np.isfinite(loss) for _, loss in result["train_loss_history"])
    assert 0.0 <= result["eval_top1"] <= result["eval_top5"] <= 1.0
    assert sorted(int(p) for p in os.listdir(tmp_path / "checkpoints") if p.isdigit()) == [2, 4, 6]
    assert any(p.startswith("events.out.tfevents") for p in os.listdir(tmp_path))
    # Same command, more steps: resumes from step 6 instead of starting again.
    more = train.train_and_evaluate(tiny_config(tfds_dir, num_train_steps=8), str(tmp_path))
    assert more["step"] == 8 and [s for s, _ in more["train_loss_history"]] == [7, 8]


def test_sigkill_at_any_moment_then_resume_is_bitwise_exact(tfds_dir, tmp_path):
    flags = overrides_as_flags(tfds_dir, num_train_steps=8)
    straight = run_script([*flags, f"--workdir={tmp_path / 'straight'}"])
    out, _ = straight.communicate(timeout=900)
    assert straight.returncode == 0, out[-3000:]

    killed_dir = tmp_path / "killed"
    victim = run_script([*flags, f"--workdir={killed_dir}"])
    deadline = time.time() + 900
    while not (killed_dir / "checkpoints" / "4").exists():  # mid-run, one checkpoint past the first
        assert victim.poll() is None and time.time() < deadline, "run ended before it could be killed"
        time.sleep(0.05)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (killed_dir / "checkpoints" / "8").exists()
    resumed = run_script([*flags, f"--workdir={killed_dir}"])
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, out[-3000:]
    # Killed between checkpoints 4 and 8: it resumes at the last one whole, its input position with it.
    resumed_line = r"Resumed inception_resnet_v1 from step ([46]) \(\1 global batches of input consumed\)"
    assert re.search(resumed_line, out), out[-3000:]

    a, b = restore_state(tmp_path / "straight", 8), restore_state(killed_dir, 8)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_sigterm_saves_and_stops(tfds_dir, tmp_path):
    flags = overrides_as_flags(tfds_dir, num_train_steps=10_000, checkpoint_every_steps=10_000, eval_every_steps=10_000)
    proc = run_script([*flags, f"--workdir={tmp_path}"])
    deadline = time.time() + 900
    while not (tmp_path / "events.out.tfevents").exists() and time.time() < deadline:
        if any(p.name.startswith("events.out.tfevents") for p in tmp_path.glob("*")) and proc.poll() is None:
            time.sleep(20)  # let it train a few steps after compiling
            break
        time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-3000:]
    assert "Stopped at step" in out
    steps = [int(p) for p in os.listdir(tmp_path / "checkpoints") if p.isdigit()]
    assert len(steps) == 1 and 0 < steps[0] < 10_000


def test_non_finite_loss_halts_without_checkpointing(tfds_dir, tmp_path):
    config = tiny_config(tfds_dir, checkpoint_every_steps=1)
    nan_images = lambda position, batch: {**batch, "image": np.full_like(batch["image"], np.nan)}  # noqa: E731
    with pytest.raises(train.NonFiniteError, match="at step 1"):
        train.train_and_evaluate(config, str(tmp_path), batch_hook=nan_images)
    ckdir = tmp_path / "checkpoints"
    assert not ckdir.exists() or not [p for p in os.listdir(ckdir) if p.isdigit()]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            {"model": "inception_v5"},
            "config.model='inception_v5' is not allowed: expected one of inception_resnet_v1, ",
        ),
        ({"image_size": 60}, "below the minimum of inception_resnet_v1: 75"),
        ({"aux_logits": True, "image_size": 100}, "with aux_logits: 107"),
        ({"batch_size": 6, "data_shards": 4}, "must divide into 4 data shards"),
        ({"batch_size": 2048}, r"inception_digits train has 1497 examples, fewer than one global batch of 2048"),
    ],
)
def test_config_errors_before_compiling(tfds_dir, tmp_path, overrides, message):
    with pytest.raises(config_base.ConfigError, match=message):
        preflight.validate(tiny_config(tfds_dir, **overrides), str(tmp_path))


def test_batch_not_divisible_by_devices(tfds_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(jax, "device_count", lambda: 8)
    with pytest.raises(config_base.ConfigError, match="batch_size=12 .* divisible by the 8 devices"):
        preflight.validate(tiny_config(tfds_dir, batch_size=12), str(tmp_path))


def test_dataset_not_prepared(tmp_path):
    with pytest.raises(data.DatasetNotPreparedError, match="ILSVRC2012_img_train.tar"):
        preflight.validate(tiny_config(str(tmp_path), dataset="imagenet2012"), str(tmp_path / "work"))


def test_workdir_with_another_models_checkpoint(tfds_dir, tmp_path):
    ckpt = checkpoint.Checkpointer(str(tmp_path), async_save=False)
    ckpt.save(5, {"w": np.zeros(2)}, checkpoint.make_meta("inception_v3", {"num_classes": 10}))
    ckpt.close()
    with pytest.raises(config_base.ConfigError, match="checkpoint \\(step 5\\) of another model.*'inception_v3'"):
        preflight.validate(tiny_config(tfds_dir), str(tmp_path))


def test_locked_config_rejects_typos(tfds_dir, tmp_path):
    proc = run_script([*overrides_as_flags(tfds_dir), "--config.learning_rat=0.1", f"--workdir={tmp_path}"])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0 and "learning_rat" in out


@pytest.mark.parametrize(
    ("flag", "message"),
    [
        ("--config.image_size=50", "error: config.image_size=50 is below the minimum"),
        ("--config.batch_size=0", "error: config.batch_size=0 is not allowed: expected an integer >= 1"),
        ("--config.learning_rate=-1", "error: config.learning_rate=-1.0 is not allowed: expected a number >= 0"),
        ("--config.dataset=folder:{tmp}", "error: config.dataset=folder:{tmp}: Image folder split {tmp}/train does"),
    ],
)
def test_script_reports_user_errors_cleanly(tfds_dir, tmp_path, flag, message):
    workdir = tmp_path / "work"
    proc = run_script([*overrides_as_flags(tfds_dir), flag.format(tmp=tmp_path), f"--workdir={workdir}"])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode != 0 and message.format(tmp=tmp_path) in out, out[-2000:]
    assert "Traceback" not in out
    assert not workdir.exists()


def test_eight_devices_match_one(tfds_dir, tmp_path):
    """One step on 8 devices is the computation it is on 1, to float32 rounding.

    Only the first step is compared tightly: this tiny network (batch 8, BatchNorm over 8 values
    at its 1x1 stages) multiplies a rounding difference by ~100-300 per update; the same steps in
    float64 agree to 1e-16, so the growth is the reduction order of the cross-device sums, not a
    different computation (the measured differences per step: docs/testing.md).
    """
    flags = overrides_as_flags(tfds_dir, num_train_steps=2, eval_every_steps=2, checkpoint_every_steps=1)
    eight = run_script(
        [*flags, f"--workdir={tmp_path / 'eight'}"], {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    )
    one = run_script(
        [*flags, f"--workdir={tmp_path / 'one'}"], {"XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    )
    finished(eight), finished(one)
    h8, h1 = loss_history(tmp_path / "eight"), loss_history(tmp_path / "one")
    assert len(h1) == 2
    # Step 1's loss is the forward pass of the same initial weights; step 2's that of one update.
    np.testing.assert_allclose(h8, h1, rtol=1e-5)
    a, b = restore_state(tmp_path / "eight", 1), restore_state(tmp_path / "one", 1)
    for name in ("params", "batch_stats", "opt_state", "ema_params"):
        x, y = (np.concatenate([np.ravel(v).astype(np.float64) for v in jax.tree.leaves(t[name])]) for t in (a, b))
        assert np.linalg.norm(x - y) <= 1e-6 * np.linalg.norm(y), name
    assert int(a["step"]) == int(b["step"]) == 1
