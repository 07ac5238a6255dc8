"""A restore never quietly starts over: damaged steps are skipped and kept, transient errors retried,
anything else stops with one line and nothing moved, a config that changes the state refused first."""

import json

import jax
import numpy as np
import pytest

from inception_flax import checkpoint, config_base, preflight, storage, train
from tests.helpers import tiny_config

ABSTRACT = {"w": jax.ShapeDtypeStruct((4,), np.float32)}


def saved_steps(workdir, steps):
    ckpt = checkpoint.Checkpointer(str(workdir), max_to_keep=10, async_save=False)
    for step in steps:
        ckpt.save(step, {"w": np.full((4,), float(step))}, {"model": "inception_v4"})
    ckpt.close()
    return workdir / "checkpoints"


def damage(ckdir, step):
    for f in (ckdir / str(step) / "state").rglob("*"):
        if f.is_file():
            f.write_bytes(b"")


def listing(workdir):
    return sorted(str(p.relative_to(workdir)) for p in workdir.rglob("*"))


def test_failures_are_told_apart():
    """On the errors orbax, TensorStore and TensorFlow raise (texts as they arrive)."""
    cases = {
        "corrupt": [
            json.JSONDecodeError("Expecting value", "", 0),
            FileNotFoundError("File /w/checkpoints/5/meta/metadata not found."),
            KeyError('Item "meta" was not found in the checkpoint. Available items: []'),
            ValueError("DATA_LOSS: Error reading local file: Unexpected end of data"),
        ],
        "transient": [
            ValueError("UNAVAILABLE: HTTP response code: 503 with body: Service Unavailable"),
            OSError("Error executing an HTTP request: HTTP response code 429 with body 'Too Many Requests'"),
            ValueError("DEADLINE_EXCEEDED: Timeout waiting for response"),
        ],
        "structure": [ValueError("Structure mismatch: Target path ('o', 'b') not found in metadata_tree.")],
        "unknown": [RuntimeError("boom"), MemoryError()],
    }
    for kind, errors in cases.items():
        for error in errors:
            assert storage.classify(error) == kind, error


def test_damaged_steps_are_skipped_then_kept_aside(tmp_path):
    ckdir = saved_steps(tmp_path, (1, 2, 3))
    damage(ckdir, 3)
    (ckdir / "4").mkdir()  # an empty step directory, as a kill during a save can leave
    state, step, _ = checkpoint.Checkpointer(str(tmp_path)).restore_latest(ABSTRACT)
    assert step == 2 and np.array_equal(state["w"], np.full((4,), 2.0))
    aside = sorted(p.name.split("-")[0] for p in (tmp_path / "checkpoints_unreadable").iterdir())
    assert aside == ["3", "4"]  # set aside, never deleted


def test_no_step_restores_stops_unless_told_to_start_over(tmp_path):
    ckdir = saved_steps(tmp_path, (1, 2))
    damage(ckdir, 1)
    damage(ckdir, 2)
    before = listing(tmp_path)
    with pytest.raises(storage.RestoreError, match=r"No checkpoint in .* restores \(step 2: .*step 1: .*--start_over"):
        checkpoint.Checkpointer(str(tmp_path)).restore_latest(ABSTRACT)
    assert listing(tmp_path) == before  # nothing moved
    assert checkpoint.Checkpointer(str(tmp_path)).restore_latest(ABSTRACT, start_over=True) is None
    assert sorted(p.name.split("-")[0] for p in (tmp_path / "checkpoints_unreadable").iterdir()) == ["1", "2"]


def test_transient_errors_are_retried_then_stop_with_nothing_moved(tmp_path, monkeypatch):
    saved_steps(tmp_path, (1, 2))
    monkeypatch.setattr(storage, "RETRY_DELAYS", (0.0, 0.0, 0.0))
    original, failures = checkpoint.Checkpointer._restore, {"left": 2}

    def flaky(self, step, abstract):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise ValueError("UNAVAILABLE: HTTP response code: 503")
        return original(self, step, abstract)

    monkeypatch.setattr(checkpoint.Checkpointer, "_restore", flaky)
    _, step, _ = checkpoint.Checkpointer(str(tmp_path)).restore_latest(ABSTRACT)
    assert step == 2  # the newest, after two retries; not an older one

    failures["left"] = 100
    before = listing(tmp_path)
    with pytest.raises(storage.RestoreError, match=r"Restoring checkpoint step 2 failed \(still failing after 4"):
        checkpoint.Checkpointer(str(tmp_path)).restore_latest(ABSTRACT)
    assert listing(tmp_path) == before


def test_unknown_errors_stop_with_nothing_moved(tmp_path, monkeypatch):
    saved_steps(tmp_path, (1, 2))

    def broken(self, step, abstract):
        raise RuntimeError("something unforeseen")

    monkeypatch.setattr(checkpoint.Checkpointer, "_restore", broken)
    before = listing(tmp_path)
    with pytest.raises(storage.RestoreError, match="step 2 failed .*RuntimeError: something unforeseen. Nothing was"):
        checkpoint.Checkpointer(str(tmp_path)).restore_latest(ABSTRACT)
    assert listing(tmp_path) == before


@pytest.fixture(scope="module")
def trained(tfds_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trained")
    train.train_and_evaluate(tiny_config(tfds_dir, num_train_steps=2, eval_every_steps=100), str(workdir))
    return workdir


@pytest.mark.parametrize(
    ("overrides", "flag"),
    [({"grad_clip_norm": 2.0}, "--config.grad_clip_norm=0.0"), ({"optimizer": "sgd"}, "--config.optimizer=rmsprop")],
)
def test_a_resume_that_changes_the_state_is_refused_before_compiling(tfds_dir, trained, overrides, flag):
    before = listing(trained)
    with pytest.raises(config_base.ConfigError, match="another structure") as raised:
        preflight.validate(tiny_config(tfds_dir, num_train_steps=4, **overrides), str(trained))
    assert flag in str(raised.value) and "(in opt_state)" in str(raised.value)
    assert listing(trained) == before
    # The same config with the recorded value resumes (more steps alone change no structure).
    preflight.validate(tiny_config(tfds_dir, num_train_steps=4), str(trained))
