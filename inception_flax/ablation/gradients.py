"""Gradient norms at initialisation, per top-level module: where a network's gradient lives
before its first update, which decides what a clip at a global norm does to each layer's step."""

from __future__ import annotations

import jax
import ml_collections
import optax

from inception_flax import models, step


def initial_gradient_norms(
    config: ml_collections.ConfigDict, batch: int = 32, seed: int = 0, num_classes: int = 10
) -> dict[str, float]:
    """{module: L2 norm of its gradient} (plus "total") of the training loss at initialisation.

    On a batch of standard-normal images with random labels, in training mode (batch statistics),
    so it depends on the architecture and initialisation only, not on the data."""
    model = models.create(config.model, **step.architecture(config, num_classes))
    k_init, k_x, k_y, k_drop = jax.random.split(jax.random.key(seed), 4)
    x = jax.random.normal(k_x, (batch, config.image_size, config.image_size, 3))
    y = jax.random.randint(k_y, (batch,), 0, num_classes)
    variables = model.init(k_init, x)

    def loss(params):
        out, _ = model.apply(
            {**variables, "params": params}, x, train=True, rngs={"dropout": k_drop}, mutable=["batch_stats"]
        )
        logits = out[0] if isinstance(out, tuple) else out
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    grads = jax.jit(jax.grad(loss))(variables["params"])
    norms = {name: float(optax.global_norm(g)) for name, g in grads.items()}
    return {**norms, "total": float(optax.global_norm(grads))}
