"""BatchNorm statistics recomputed from data ("precise BN"), not the moving averages training kept.

Each BatchNorm layer's population mean and variance over the given batches, with the network in
training mode, so that every layer sees inputs normalised the way training normalised them. A
network scored with these and with the moving averages tells whether an evaluation error comes from
its weights or from statistics that lag behind them (for instance a network without shortcuts,
where each layer's error in its statistics compounds through the next).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from inception_flax import models


def population_batch_stats(
    model: models.Inception, variables: Mapping[str, Any], batches: Iterable[Mapping[str, np.ndarray]], seed: int = 0
) -> dict[str, Any]:
    """Every BatchNorm layer's mean and (biased) variance over all images of `batches`.

    Per batch the network runs in training mode with momentum 0, which leaves that batch's mean and
    variance in `batch_stats`; the population variance is the mean of (variance + mean^2) over
    batches minus the squared mean, so it includes the spread between batches' means. Batches must
    be of equal size (the training iterator's are). Returns a `batch_stats` tree like the model's.
    """
    once = model.clone(bn_momentum=0.0)

    @jax.jit  # the variables are arguments, not constants folded into the program
    def stats(variables: Mapping[str, Any], image: jax.Array, key: jax.Array) -> Any:
        _, updates = once.apply(
            variables,
            image,
            train=True,
            rngs={"dropout": key},
            mutable=["batch_stats"],
        )
        return updates["batch_stats"]

    def layer(tree: Any) -> Any:  # {"mean": m, "var": v} -> (m, v + m^2): sums that average exactly
        return {"mean": tree["mean"], "var": tree["var"] + jnp.square(tree["mean"])}

    def is_layer(tree: Any) -> bool:
        return isinstance(tree, Mapping) and set(tree) == {"mean", "var"}

    inputs = {"params": variables["params"], "batch_stats": variables["batch_stats"]}
    total, count = None, 0
    for i, batch in enumerate(batches):
        batch_moments = stats(inputs, jnp.asarray(batch["image"]), jax.random.key(seed + i))
        moments = jax.tree.map(layer, batch_moments, is_leaf=is_layer)
        total = moments if total is None else jax.tree.map(jnp.add, total, moments)
        count += 1
    if total is None:
        raise ValueError("No batches to compute BatchNorm statistics from.")

    def finish(tree: Any) -> Any:
        mean = tree["mean"] / count
        return {"mean": np.asarray(mean), "var": np.asarray(jnp.maximum(tree["var"] / count - jnp.square(mean), 0.0))}

    return jax.tree.map(finish, total, is_leaf=is_layer)
