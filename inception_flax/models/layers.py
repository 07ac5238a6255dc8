"""Layers shared by every Inception network: the conv+BN+ReLU unit and TF-style pooling."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
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


# Standard deviation of a unit normal truncated to [-2, 2] (the constant jax's initializers use).
TRUNCATED_NORMAL_STD = 0.87962566103423978


@dataclasses.dataclass(frozen=True)
class VarianceScaling:
    """`nn.initializers.variance_scaling` that can also say how it scales unit noise.

    A kernel it draws is `multiplier(shape) * noise`, the noise truncated-normal on [-2, 2] or
    uniform on [-1, 1]; `models.init_variables` draws the noise of every kernel in one go.
    """

    scale: float
    mode: str  # fan_in | fan_out | fan_avg
    distribution: str  # truncated_normal | uniform

    def __call__(self, key: Array, shape: Sequence[int], dtype: Dtype = jnp.float32) -> Array:
        return nn.initializers.variance_scaling(self.scale, self.mode, self.distribution)(key, shape, dtype)

    def multiplier(self, shape: Sequence[int]) -> float:
        receptive = math.prod(shape[:-2])  # jax's fans: inputs on axis -2, outputs on axis -1
        fan_in, fan_out = shape[-2] * receptive, shape[-1] * receptive
        variance = self.scale / {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[self.mode]
        if self.distribution == "truncated_normal":
            return math.sqrt(variance) / TRUNCATED_NORMAL_STD
        if self.distribution == "uniform":
            return math.sqrt(3 * variance)
        raise ValueError(f"Unsupported distribution {self.distribution!r}.")


def scaled(features: int, width: float) -> int:
    """Channel count after the width multiplier; never below 1 so tiny widths still build."""
    return max(1, round(features * width))


class Conv(nn.Conv):
    """`nn.Conv` (same parameters, same results) whose 1x1 stride-1 case is, on the CPU backend
    only, a product over channels.

    XLA's CPU backend computes a convolution's kernel gradient from a transposed copy of its input,
    and builds that copy with a fusion that recomputes the input's producers: behind a chain of
    Inception-ResNet blocks it re-adds every earlier residual sum, once per consumer (quadratic in
    depth; most of the IR-v2 training step on CPU, docs/performance.md). A `dot_general` reads its operands as they
    are, so the 1x1 layers (most of those that read a block's output) need no such copy. TPUs and
    GPUs run their own convolution kernels, so elsewhere the layer is `nn.Conv`'s convolution.
    Grouped or dilated convolutions and explicit paddings are not supported (the networks use none).
    """

    @nn.compact
    def __call__(self, inputs: Array) -> Array:
        strides = tuple(self.strides) if isinstance(self.strides, tuple | list) else (self.strides or 1,) * 2
        plain = self.feature_group_count == 1 and self.kernel_dilation in (None, 1, (1, 1))
        if not plain or self.input_dilation not in (None, 1, (1, 1)) or not isinstance(self.padding, str):
            raise ValueError(f"{type(self).__name__} supports plain convolutions with SAME/VALID padding only.")
        shape = (*self.kernel_size, inputs.shape[-1], self.features)
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype) if self.use_bias else None
        x, kernel, bias = nn.dtypes.promote_dtype(inputs, kernel, bias, dtype=self.dtype)
        if tuple(self.kernel_size) == (1, 1) and strides == (1, 1) and jax.default_backend() == "cpu":
            y = jax.lax.dot_general(x, kernel[0, 0], (((x.ndim - 1,), (0,)), ((), ())), precision=self.precision)
        else:
            y = jax.lax.conv_general_dilated(
                x, kernel, strides, self.padding, dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=self.precision
            )
        return y if bias is None else y + bias


class GroupBatchNorm(nn.Module):
    """BatchNorm whose training statistics come from groups of `group_size` consecutive images.

    The TPU reference normalises over each core's images, not the global batch. With the batch
    sharded over devices in that order and a group of each device's images, the normalisation needs
    no communication; only the moving statistics are averaged over the groups (compiled for 8 CPU
    devices, one BatchNorm layer: 1 all-reduce in the forward pass and 1 in its gradient, against 2
    and 2 over the global batch).
    Variables are `nn.BatchNorm`'s (params scale/bias, batch_stats mean/var, float32), so
    checkpoints and converted weights do not see the difference. A batch that `group_size` does not divide into two or more
    groups (initialisation, a single device) is normalised whole, as `nn.BatchNorm` does.
    """

    group_size: int
    use_running_average: bool = False
    momentum: float = 0.99
    epsilon: float = 1e-5
    use_scale: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x: Array) -> Array:
        features = x.shape[-1]
        mean_var = self.variable("batch_stats", "mean", lambda: jnp.zeros((features,), jnp.float32))
        var_var = self.variable("batch_stats", "var", lambda: jnp.ones((features,), jnp.float32))
        scale = self.param("scale", nn.initializers.ones, (features,), jnp.float32) if self.use_scale else None
        bias = self.param("bias", nn.initializers.zeros, (features,), jnp.float32)
        batch = x.shape[0]
        groups = batch // self.group_size if 0 < self.group_size < batch and batch % self.group_size == 0 else 1
        xg = x.reshape(groups, batch // groups, *x.shape[1:]).astype(jnp.float32)
        axes = tuple(range(1, xg.ndim - 1))
        if self.use_running_average:
            mean, var = mean_var.value, var_var.value
        else:
            mean = jnp.mean(xg, axis=axes, keepdims=True)
            var = jnp.mean(jnp.square(xg - mean), axis=axes, keepdims=True)  # two-pass, as the networks' BN
            if not self.is_initializing():
                m = self.momentum
                mean_var.value = m * mean_var.value + (1 - m) * jnp.mean(mean, axis=(0, *axes))
                var_var.value = m * var_var.value + (1 - m) * jnp.mean(var, axis=(0, *axes))
        mul = jax.lax.rsqrt(var + self.epsilon)
        if scale is not None:
            mul = mul * scale
        y = (xg - mean) * mul + bias
        return y.reshape(x.shape).astype(self.dtype)


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
    activate: bool = True  # False: no ReLU (the plain twin's projection, whose block applies it)

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
        return nn.relu(x) if self.activate else x


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
