"""BatchNorm over groups of images (`bn_group_size`), as the TPU reference normalises per core."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from inception_flax import config_base, models, step
from inception_flax.models.layers import GroupBatchNorm
from tests.helpers import random_variables


def test_a_group_of_128_within_256_has_the_groups_own_statistics():
    x = jax.random.normal(jax.random.key(0), (256, 3, 3, 5)) * 3.0 + 1.0
    x = x.at[128:].multiply(0.1)  # two groups with very different statistics
    grouped = GroupBatchNorm(group_size=128, momentum=0.9, epsilon=1e-3)
    variables = grouped.init(jax.random.key(1), x)
    y, updated = grouped.apply(variables, x, mutable=["batch_stats"])
    whole = nn.BatchNorm(use_running_average=False, momentum=0.9, epsilon=1e-3, use_fast_variance=False)
    halves = [whole.apply(variables, part, mutable=["batch_stats"]) for part in (x[:128], x[128:])]
    np.testing.assert_allclose(y, jnp.concatenate([h[0] for h in halves]), rtol=1e-5, atol=1e-5)
    for name in ("mean", "var"):  # the moving statistics take the mean of the two groups'
        expected = (halves[0][1]["batch_stats"][name] + halves[1][1]["batch_stats"][name]) / 2
        np.testing.assert_allclose(updated["batch_stats"][name], expected, rtol=1e-5)
    # The global batch's statistics are another thing: a group of 256 is nn.BatchNorm's.
    y_all, _ = GroupBatchNorm(group_size=256, momentum=0.9, epsilon=1e-3).apply(variables, x, mutable=["batch_stats"])
    np.testing.assert_allclose(y_all, whole.apply(variables, x, mutable=["batch_stats"])[0], rtol=1e-5, atol=1e-5)
    assert not np.allclose(y_all, y, atol=1e-2)


def test_network_with_groups_is_the_network_on_each_group():
    model = models.create("inception_resnet_v2", width=0.125, num_classes=7, dropout_rate=0.0, bn_group_size=2)
    plain = models.create("inception_resnet_v2", width=0.125, num_classes=7, dropout_rate=0.0)
    variables = random_variables(plain, 75)
    x = jax.random.uniform(jax.random.key(1), (4, 75, 75, 3), minval=-1, maxval=1)
    out, _ = model.apply(variables, x, train=True, mutable=["batch_stats"])
    parts = [plain.apply(variables, x[i : i + 2], train=True, mutable=["batch_stats"])[0] for i in (0, 2)]
    # float32 rounding of two reduction orders, compounded over the network's ~200 BatchNorm layers
    # (measured: at most 7e-4 relative); the module test above is exact to 1e-5.
    np.testing.assert_allclose(out, jnp.concatenate(parts), rtol=2e-3, atol=2e-3)


def test_per_device_groups_by_default():
    c = config_base.get_base_config()
    assert c.bn_group_size == -1 and step.bn_group_size(c) == c.batch_size // jax.device_count()
    c.bn_group_size = 0
    assert step.bn_group_size(c) == 0
