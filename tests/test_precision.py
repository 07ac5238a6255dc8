"""bfloat16 compute against float32 on the CPU: the same run, a few steps, agreeing to a stated tolerance.

Unset, `half_precision` is bfloat16 on TPU and GPU and float32 on the CPU; here both are forced.
bfloat16 keeps 8 bits of mantissa (relative rounding 2**-8 = 0.4%); the parameters, optimiser
state, BatchNorm statistics and loss stay float32. Six train steps of the tiny network at the
same weights (rate 0) give losses within 2% of float32's on each batch (measured at most 1.05%).
"""

import jax.numpy as jnp
import numpy as np

from inception_flax import step, train
from tests.helpers import tiny_config

TOLERANCE = 0.02  # relative, per step (the measured worst case is in docs/testing.md)


def test_unset_precision_is_float32_on_cpu(tfds_dir):
    c = tiny_config(tfds_dir)
    assert c.half_precision is None and step.compute_dtype(c) == jnp.float32
    c.half_precision = True
    assert step.compute_dtype(c) == jnp.bfloat16


def test_bfloat16_training_agrees_with_float32(tfds_dir, tmp_path):
    losses = {}
    for half in (False, True):
        # Rate 0: every step is a full train step (gradients, optimiser, EMA, BatchNorm statistics) at
        # the initial weights, so six batches measure the rounding alone. Trained at any rate, this
        # batch-8 network's trajectories part after two steps (float32 on 8 devices vs 1 does too):
        # at 0.002 their step losses differ far more than rounding (docs/testing.md).
        c = tiny_config(tfds_dir, half_precision=half, checkpoint_every_steps=6, learning_rate=0.0)
        result = train.train_and_evaluate(c, str(tmp_path / str(half)))
        losses[half] = np.array([loss for _, loss in result["train_loss_history"]])
        assert result["train_loss_history"] and np.all(np.isfinite(losses[half]))
    rel = np.abs(losses[True] / losses[False] - 1)
    print("losses float32", np.round(losses[False], 4), "bfloat16", np.round(losses[True], 4), "rel", np.round(rel, 4))
    assert np.all(rel < TOLERANCE), rel
