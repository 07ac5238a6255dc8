"""Layers shared by every Inception network: the conv+BN+ReLU unit and TF-style pooling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

ModuleDef = Callable[..., nn.Module]
Array = jax.Array
Dtype = Any

# TF-slim's batch_norm defaults for all four networks (slim `batch_norm_decay`/`epsilon`).
BN_MOMENTUM = 0.9997
BN_EPSILON = 1e-3


def scaled(features: int, width: float) -> int:
    """Channel count after the width multiplier; never below 1 so tiny widths still build."""
    return max(1, round(features * width))


class ConvBN(nn.Module):
    """Convolution without bias -> BatchNorm -> ReLU (TF-slim's `conv2d` under the Inception scope).

    `features` is given in the paper's units and multiplied by `width`, so a block written once
    with the paper's numbers also builds the narrow networks used for small-scale experiments.
    `conv` and `norm` are partials made by the network (dtype, init, train/eval statistics).
    """

    features: int
    kernel_size: tuple[int, int]
    conv: ModuleDef
    norm: ModuleDef
    strides: tuple[int, int] = (1, 1)
    padding: str = "SAME"
    width: float = 1.0

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = self.conv(
            scaled(self.features, self.width),
            self.kernel_size,
            strides=self.strides,
            padding=self.padding,
            use_bias=False,
            name="conv",
        )(x)
        x = self.norm(name="bn")(x)
        return nn.relu(x)


def avg_pool_3x3(x: Array, count_include_pad: bool = False) -> Array:
    """3x3 stride-1 SAME average pooling inside Inception blocks.

    TensorFlow (and so slim, Keras and timm's v4/IR-v2 ports) excludes the padded cells from the
    mean. `count_include_pad=True` reproduces PyTorch's default, which timm's `inception_v3` uses.
    """
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding="SAME", count_include_pad=count_include_pad)


def max_pool_3x3_s2(x: Array) -> Array:
    """3x3 stride-2 VALID max pooling: every spatial reduction in the four networks."""
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


def concat(branches: list[Array]) -> Array:
    return jnp.concatenate(branches, axis=-1)
