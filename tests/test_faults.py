"""Faults: rewinding past non-finite steps (in-process, a poisoned batch injected by position)."""

import jax
import numpy as np
import pytest

from inception_flax import checkpoint, faults, train
from tests.helpers import restore_state, tiny_config


def poison(positions):
    """A batch hook that turns the images of the given global batches into NaN."""

    def hook(position, batch):
        if position in positions:
            return {**batch, "image": np.full_like(batch["image"], np.nan)}
        return batch

    return hook


def test_rewind_skips_the_batches_since_the_checkpoint_and_replays_identically(tfds_dir, tmp_path):
    config = tiny_config(tfds_dir, nonfinite="rewind", max_rewinds=2, eval_every_steps=100)
    runs = [train.train_and_evaluate(config, str(tmp_path / f"run{i}"), batch_hook=poison({3})) for i in range(2)]
    # Batch 3 made step 4 non-finite; the newest checkpoint was step 2 (after batches 0-1), so
    # batches 2-3 are skipped and steps 3-6 train on batches 4-7.
    for result in runs:
        assert result["step"] == 6 and result["rewinds"] == 1
        assert result["skipped_batches"] == [[2, 4]]
        assert all(np.isfinite(loss) for _, loss in result["train_loss_history"])
    jax.tree.map(
        np.testing.assert_array_equal, restore_state(tmp_path / "run0", 6), restore_state(tmp_path / "run1", 6)
    )
    _, meta = checkpoint.read_meta(str(tmp_path / "run0"))
    assert faults.Progress.from_meta(meta, 6) == faults.Progress(8, 1, ((2, 4),))


def test_rewind_gives_up_after_max_rewinds(tfds_dir, tmp_path):
    # Every batch from 1 on is poisoned: step 2 fails, rewinds to the initial state (no checkpoint
    # yet) past batches 0-1, fails again at step 1 and gives up.
    config = tiny_config(tfds_dir, nonfinite="rewind", max_rewinds=1, checkpoint_every_steps=100)
    with pytest.raises(train.NonFiniteError, match="at step 1 .*Gave up after 1 rewinds"):
        train.train_and_evaluate(config, str(tmp_path), batch_hook=poison(set(range(1, 100))))
