"""The paper's optimiser, schedule and regulariser against their definitions (TensorFlow is installed)."""

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from inception_flax import config_base, optim, recipe, step
from tests.helpers import TinyNet


def test_rmsprop_matches_tf1_rmsprop_optimizer():
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    w0 = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(scale=s, size=(3, 4)).astype(np.float32) for s in (0.1, 3.0, 0.5, 10.0, 1.0, 0.01)]
    lr = 0.045

    var = tf.Variable(w0)
    opt = tf.compat.v1.train.RMSPropOptimizer(lr, decay=0.9, momentum=0.9, epsilon=1.0)
    for g in grads:
        opt.apply_gradients([(tf.constant(g), var)])

    tx = optim.tf1_rmsprop(lr, decay=0.9, momentum=0.9, epsilon=1.0)
    w, state = jnp.asarray(w0), tx.init(jnp.asarray(w0))
    for g in grads:
        updates, state = tx.update(jnp.asarray(g), state, w)
        w = optax.apply_updates(w, updates)
    np.testing.assert_allclose(np.asarray(w), var.numpy(), rtol=1e-6, atol=1e-7)
    # the mean-square slot starts at 1.0 (TF1), which matters: with 0.0 the first step is ~10x larger
    assert not np.allclose(np.asarray(w), np.asarray(optax.rmsprop(lr, 0.9, 1.0, momentum=0.9).init(w0)[0].nu))


def test_staircase_schedule_and_batch_scaling():
    c = config_base.get_base_config()
    c.batch_size, c.base_batch_size, c.learning_rate = 3200, 1600, 0.045
    c.cold_epochs = c.warmup_epochs = 0.0
    c.lr_schedule = "linear_warmup"
    schedule = optim.learning_rate_schedule(c, steps_per_epoch=10)
    assert schedule(0) == pytest.approx(0.09)
    assert schedule(19) == pytest.approx(0.09)
    assert schedule(20) == pytest.approx(0.09 * 0.94)
    assert schedule(45) == pytest.approx(0.09 * 0.94**2)
    c.warmup_epochs = 1.0
    warm = optim.learning_rate_schedule(c, steps_per_epoch=10)
    assert warm(0) == 0.0 and warm(5) == pytest.approx(0.045)


def test_gradient_clipping_at_global_norm():
    c = config_base.get_base_config()
    c.optimizer, c.momentum, c.grad_clip_norm = "sgd", 0.0, 2.0
    tx = optim.create_optimizer(c, optax.constant_schedule(1.0))
    g = {"a": jnp.full((4,), 10.0)}
    updates, _ = tx.update(g, tx.init(g), g)
    assert float(optax.global_norm(updates)) == pytest.approx(2.0, rel=1e-5)


def test_non_finite_step_leaves_the_state_bitwise_unchanged():
    c = config_base.get_base_config()
    c.batch_size = c.base_batch_size = 4
    model = TinyNet()
    r = recipe.resolve(c, 40)
    tx = optim.create_optimizer(c, r.learning_rate)
    images = np.random.default_rng(0).normal(size=(4, 5, 5, 3)).astype(np.float32)
    variables = model.init(jax.random.key(0), images, train=False)
    state = step.assemble_state(tx, variables, jax.random.key(1), ema_batch_stats=True)
    train = jax.jit(functools.partial(step.train_step, model=model, tx=tx, recipe=r))
    labels = np.array([0, 1, 2, 0])

    moved, _, finite = train(state, {"image": images, "label": labels})
    assert bool(finite) and int(moved.step) == 1
    for name in ("params", "batch_stats", "opt_state", "ema_params", "ema_batch_stats"):
        changed = [
            not np.array_equal(a, b)
            for a, b in zip(jax.tree.leaves(getattr(state, name)), jax.tree.leaves(getattr(moved, name)), strict=True)
        ]
        assert all(changed), name

    # A NaN batch, and a finite one large enough to overflow the BatchNorm variance (NaN loss and gradients).
    for bad in (np.full_like(images, np.nan), images * np.float32(1e30)):
        kept, _, finite = train(moved, {"image": bad, "label": labels})
        assert not bool(finite)
        for a, b in zip(jax.tree.leaves(moved), jax.tree.leaves(kept), strict=True):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_l2_loss_has_slim_semantics():
    params = {
        "conv": {"conv": {"kernel": jnp.full((1, 1, 2, 2), 2.0)}, "bn": {"bias": jnp.ones(2)}},
        "up": {"kernel": jnp.ones((2, 3)), "bias": jnp.full((3,), 3.0)},
    }
    assert float(step.l2_loss(params, decay_biases=False)) == pytest.approx(0.5 * (16 + 6))
    assert float(step.l2_loss(params, decay_biases=True)) == pytest.approx(0.5 * (16 + 6 + 27))


def test_label_smoothing():
    logits = jnp.array([[0.0, 0.5, -1.0, 2.0]])
    smooth = float(step.cross_entropy(logits, jnp.array([3]), 4, 0.1)[0])
    hard = float(step.cross_entropy(logits, jnp.array([3]), 4, 0.0)[0])
    logp = jax.nn.log_softmax(logits)[0]
    assert smooth == pytest.approx(-float(0.925 * logp[3] + 0.025 * logp[:3].sum()), rel=1e-5)
    assert hard == pytest.approx(-float(logp[3]), rel=1e-5)


def test_configs_load_and_are_locked():
    import importlib

    for name in ["inception_v3", "inception_v4", "inception_resnet_v1", "inception_resnet_v2", "demo"]:
        module = importlib.import_module(f"configs.{name}")
        assert module.__doc__.lstrip().splitlines()[0]
        assert "python scripts/train.py --config configs/" in module.__doc__
        c = module.get_config()
        assert isinstance(c, ml_collections.ConfigDict)
        for field in ["model", "dataset", "image_size", "batch_size", "num_epochs", "num_train_steps"]:
            assert field in c
        for field in ["eval_every_steps", "checkpoint_every_steps", "seed", "half_precision"]:
            assert field in c
        local = module.get_config("runlocal")
        assert local.dataset == "inception_digits"
