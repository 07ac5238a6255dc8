"""Fresh variables for a network in seconds: `model.init`'s tree and distributions, one random draw.

`jax.jit(model.init)` compiles one random-number kernel per parameter (245 kernels in
Inception-ResNet-v2): ~40 s of XLA compile on 2 CPU cores for a second of work, paid by every
run that starts from scratch. Here the shapes come from `jax.eval_shape(model.init)`, the noise
for every kernel from one draw per distribution (a program that compiles in a fraction of a
second), and the host cuts and scales it: same tree, same per-layer distributions (not the same
numbers as `model.init` with the same key), the same result on every host for the same key.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from inception_flax.models.layers import VarianceScaling
from inception_flax.models.networks import XAVIER

Variables = dict[str, Any]


def initializer(model: nn.Module, collection: str, path: tuple[str, ...], ndim: int) -> VarianceScaling | float:
    """How a network initialises one variable: a `VarianceScaling`, or a constant.

    Mirrors the networks' choices: every convolution uses the network's `kernel_init`, every dense
    layer Xavier; biases and BatchNorm offsets are 0, BatchNorm scales and variances 1.
    """
    name = path[-1]
    if collection == "batch_stats" and name in ("mean", "var"):
        return 1.0 if name == "var" else 0.0
    if collection == "params":
        if name == "kernel" and ndim in (2, 4):
            return model.kernel_init if ndim == 4 else XAVIER
        if name in ("bias", "scale"):
            return 1.0 if name == "scale" else 0.0
    raise ValueError(f"No initialisation rule for {collection}/{'/'.join(path)}.")


@functools.partial(jax.jit, static_argnums=(0, 2))
def _unit_noise(distribution: str, key: jax.Array, size: int) -> jax.Array:
    if distribution == "truncated_normal":
        return jax.random.truncated_normal(key, -2.0, 2.0, (size,), jnp.float32)
    return jax.random.uniform(key, (size,), jnp.float32, -1.0, 1.0)


def init_variables(
    model: nn.Module, rng: jax.Array, image_size: int = 299, abstract: Variables | None = None
) -> Variables:
    """`{"params", "batch_stats"}` for `model`, as numpy arrays of the variables' dtypes (float32 in
    these networks). Not jittable: it runs a small program and cuts its result on the host."""
    if abstract is None:  # callers that already traced the shapes pass them (a second trace costs ~1.5 s)
        abstract = jax.eval_shape(model.init, rng, jax.ShapeDtypeStruct((1, image_size, image_size, 3), jnp.float32))
    leaves, treedef = jax.tree_util.tree_flatten_with_path(abstract)
    shapes = [leaf.shape for _, leaf in leaves]
    dtypes = [leaf.dtype for _, leaf in leaves]
    rules = []
    for (path, _), shape in zip(leaves, shapes, strict=True):
        keys = tuple(str(getattr(k, "key", k)) for k in path)
        rules.append(initializer(model, keys[0], keys[1:], len(shape)))
    values: list[np.ndarray | None] = [
        None if isinstance(rule, VarianceScaling) else np.full(shape, rule, dtype)
        for rule, shape, dtype in zip(rules, shapes, dtypes, strict=True)
    ]
    # One stream of unit noise per distribution; each kernel takes the next slice of its stream.
    streams: dict[str, list[int]] = {}
    for i, rule in enumerate(rules):
        if isinstance(rule, VarianceScaling):
            streams.setdefault(rule.distribution, []).append(i)
    for key, (distribution, indices) in zip(jax.random.split(rng, len(streams)), sorted(streams.items()), strict=True):
        sizes = [math.prod(shapes[i]) for i in indices]
        noise = np.asarray(_unit_noise(distribution, key, sum(sizes)))
        for i, chunk in zip(indices, np.split(noise, np.cumsum(sizes)[:-1]), strict=True):
            kernel = chunk.reshape(shapes[i]) * np.float32(rules[i].multiplier(shapes[i]))
            values[i] = kernel.astype(dtypes[i], copy=False)
    return jax.tree_util.tree_unflatten(treedef, values)
