"""Top-k correctness, the one accuracy both training metrics and evaluation count (jax only)."""

import jax
import jax.numpy as jnp


def topk_correct(logits: jax.Array, labels: jax.Array, k: int) -> jax.Array:
    """1.0 where the label is among the `k` highest logits (all of them if there are fewer), else 0.0."""
    k = min(k, logits.shape[-1])
    return jnp.any(jax.lax.top_k(logits, k)[1] == labels[:, None], axis=-1).astype(jnp.float32)
