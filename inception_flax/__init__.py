"""inception_flax: Inception-v3/v4 and Inception-ResNet-v1/v2 in JAX/Flax.

`inception_flax.models` and `inception_flax.weights` depend only on jax, flax and numpy, so the
networks load anywhere; training and data code (TensorFlow, clu, orbax) live in other modules.
"""

__version__ = "0.1.0"
