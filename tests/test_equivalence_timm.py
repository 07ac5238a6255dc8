"""Numerical equivalence with timm (PyTorch), and the importer's error handling.

Skipped when torch/timm are absent (install requirements-test.txt); CI installs them.
Random conv/linear weights, BatchNorm betas and moving statistics are set in timm (gamma stays 1,
as in timm's released weights), imported with `weights.from_timm`, and compared in eval mode.
"""

import jax
import numpy as np
import pytest

from inception_flax import models, weights
from tests.helpers import max_rel_error
from tests.references import randomized_timm, run_timm

torch = pytest.importorskip("torch", reason="torch/timm not installed (pip install -r requirements-test.txt)")
timm = pytest.importorskip("timm", reason="timm not installed (pip install -r requirements-test.txt)")

SIZE = 299  # timm's inception_v3 aux head needs the full 17x17 map


def images(n=2, size=SIZE, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (n, size, size, 3)).astype(np.float32)


@pytest.mark.parametrize("name", ["inception_v3", "inception_v4", "inception_resnet_v2"])
def test_matches_timm(name):
    tm = randomized_timm(name)
    x = images()
    variables = weights.from_timm(tm.state_dict(), name)
    out = jax.jit(models.create(name, **weights.TIMM_MODEL_OPTIONS[name]).apply)(variables, x)
    err = max_rel_error(out, run_timm(tm, x))
    print(f"{name}: max relative error vs timm {err:.2e}")
    assert err < 1e-4


def test_inception_v3_aux_head_and_training_mode_match_timm():
    """Train mode: BatchNorm uses batch statistics and the aux head runs (dropout off on both)."""
    tm = randomized_timm("inception_v3", seed=3, aux_logits=True).train()
    x = images(n=8, seed=2)
    logits_ref, aux_ref = run_timm(tm, x)
    variables = weights.from_timm(tm.state_dict(), "inception_v3")
    model = models.create("inception_v3", aux_logits=True, dropout_rate=0.0, pool_include_pad=True)
    (logits, aux), _ = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))(variables, x)
    err = max(max_rel_error(logits, logits_ref), max_rel_error(aux, aux_ref))
    print(f"inception_v3 train mode + aux: max relative error vs timm {err:.2e}")
    # Batch statistics of random-weight networks are ill-conditioned: timm in float32 differs from
    # timm in float64 by 3.3e-4 on this very input, so float32 agreement cannot be tighter.
    assert err < 1e-3


def test_tf_pooling_differs_from_timm_v3_pooling():
    tm = randomized_timm("inception_v3")
    x = images()
    variables = weights.from_timm(tm.state_dict(), "inception_v3")
    out = jax.jit(models.create("inception_v3").apply)(variables, x)
    assert max_rel_error(out, run_timm(tm, x)) > 1e-3  # the option really matters


def test_gamma_is_refused_unless_bn_scale():
    tm = randomized_timm("inception_v4", random_gamma=True)
    with pytest.raises(ValueError, match="gamma that is not 1.*bn_scale=True"):
        weights.from_timm(tm.state_dict(), "inception_v4")
    variables = weights.from_timm(tm.state_dict(), "inception_v4", bn_scale=True)
    x = images()
    out = jax.jit(models.create("inception_v4", bn_scale=True).apply)(variables, x)
    assert max_rel_error(out, run_timm(tm, x)) < 1e-4


def test_numpy_state_dict_and_1001_classes():
    tm = randomized_timm("inception_resnet_v2", num_classes=1001)
    state = {k: v.numpy() for k, v in tm.state_dict().items()}
    variables = weights.from_timm(state, "inception_resnet_v2")
    assert variables["params"]["Logits"]["kernel"].shape == (1536, 1001)


def test_errors_name_missing_unexpected_and_misshaped_tensors():
    state = dict(randomized_timm("inception_v4").state_dict())
    del state["features.6.branch1.0.conv.weight"]
    state["features.99.extra.weight"] = torch.zeros(3)
    state["features.7.branch0.bn.bias"] = torch.zeros(5)
    with pytest.raises(ValueError) as info:
        weights.from_timm(state, "inception_v4")
    msg = str(info.value)
    assert "1 missing: params/Mixed_5b/b1_0/conv/kernel" in msg
    assert "features.99.extra.weight" in msg
    assert "params/Mixed_5c/b0_0/bn/bias: got (5,), model has (96,)" in msg


def test_checkpoint_of_another_network_is_refused():
    state = randomized_timm("inception_v4").state_dict()
    with pytest.raises(ValueError, match="do not fit models.create\\('inception_resnet_v2'"):
        weights.from_timm(state, "inception_resnet_v2")
    with pytest.raises(ValueError, match="timm has no inception_resnet_v1"):
        weights.from_timm(state, "inception_resnet_v1")
