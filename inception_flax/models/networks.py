"""The four networks: Inception-v3, Inception-v4, Inception-ResNet-v1 and Inception-ResNet-v2.

Calling convention (all four):
    logits = model.apply(variables, images, train=False)
    (logits, aux_logits), updates = model.apply(
        variables, images, train=True, rngs={"dropout": key}, mutable=["batch_stats"])
`images` are NHWC floats scaled to [-1, 1]. Logits are float32 whatever the compute `dtype`.
The aux head exists only with `aux_logits=True` and is returned only when `train=True`.
Stage outputs are sown into the `intermediates` collection (stem, stage_a, reduction_a, stage_b,
reduction_b, stage_c, features); ask for them with `mutable=["intermediates"]`.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax.numpy as jnp

from inception_flax.models import blocks
from inception_flax.models.layers import (
    BN_EPSILON,
    BN_MOMENTUM,
    Array,
    Conv,
    ConvBN,
    Dtype,
    GroupBatchNorm,
    ModuleDef,
    VarianceScaling,
)

# Smallest square input each network accepts: the 8x8 map of a 299 input shrinks to 1x1 at 75;
# the aux head's 5x5/3 pool needs a 5x5 map at the 17x17 stage, i.e. an input of 107.
MIN_INPUT_SIZE = 75
MIN_INPUT_SIZE_AUX = 107


def min_input_size(aux_logits: bool) -> int:
    """The smallest input side every network accepts, with or without the aux head."""
    return MIN_INPUT_SIZE_AUX if aux_logits else MIN_INPUT_SIZE


# Names of the sown stage outputs, in network order.
STAGES = ("stem", "stage_a", "reduction_a", "stage_b", "reduction_b", "stage_c", "features")

# slim's inception_arg_scope (v3, v4): variance scaling, factor 2, fan-in, truncated normal.
HE_TRUNCATED = VarianceScaling(2.0, "fan_in", "truncated_normal")
# slim's defaults elsewhere (IR-v2 convs, every fully connected layer): Xavier uniform.
XAVIER = VarianceScaling(1.0, "fan_avg", "uniform")


class Inception(nn.Module):
    """Shared trunk/head plumbing; subclasses implement `_body` with the paper's blocks."""

    num_classes: int = 1000
    dropout_rate: float = 0.2
    aux_logits: bool = False
    width: float = 1.0
    dtype: Dtype = jnp.float32
    bn_momentum: float = BN_MOMENTUM
    bn_epsilon: float = BN_EPSILON
    bn_scale: bool = False
    bn_group_size: int = 0  # training statistics over groups of this many images; 0: the whole batch
    remat: bool = False  # recompute each block in the backward pass instead of keeping its activations

    kernel_init = staticmethod(HE_TRUNCATED)  # class attribute, not a dataclass field

    def __post_init__(self):
        name = type(self).__name__
        if not self.width > 0:  # also catches NaN
            raise ValueError(f"{name}: width must be > 0 (a channel multiplier, 1.0 = the paper), got {self.width}.")
        if self.num_classes < 1:
            raise ValueError(f"{name}: num_classes must be at least 1, got {self.num_classes}.")
        if not 0.0 <= self.dropout_rate < 1.0:
            raise ValueError(f"{name}: dropout_rate must be in [0, 1), got {self.dropout_rate}.")
        super().__post_init__()

    @property
    def min_input_size(self) -> int:
        return min_input_size(self.aux_logits)

    def check_input(self, shape: tuple[int, ...]) -> None:
        """Raise a clear ValueError for inputs the network cannot take (runs at trace time)."""
        name = type(self).__name__
        if len(shape) != 4:
            raise ValueError(f"{name} takes NHWC images of rank 4, got shape {tuple(shape)}.")
        h, w = shape[1], shape[2]
        if min(h, w) < self.min_input_size:
            aux = " with aux_logits=True" if self.aux_logits else ""
            raise ValueError(
                f"{name}{aux} needs inputs of at least {self.min_input_size}x{self.min_input_size}, got {h}x{w}."
            )

    @nn.compact
    def __call__(self, x: Array, train: bool = False) -> Array | tuple[Array, Array]:
        self.check_input(x.shape)
        x = jnp.asarray(x, self.dtype)
        grouped = 0 < self.bn_group_size < x.shape[0]
        norm = functools.partial(
            GroupBatchNorm if grouped else nn.BatchNorm,
            use_running_average=not train,
            momentum=self.bn_momentum,
            epsilon=self.bn_epsilon,
            use_scale=self.bn_scale,
            dtype=self.dtype,
            # Two-pass variance: E[x^2]-E[x]^2 loses precision on post-ReLU activations in float32.
            **({"group_size": self.bn_group_size} if grouped else {"use_fast_variance": False}),
        )
        plain_conv = functools.partial(Conv, dtype=self.dtype, kernel_init=self.kernel_init)
        conv = functools.partial(ConvBN, conv=plain_conv, norm=norm, width=self.width)
        up = self._projection(plain_conv, norm)
        dense = functools.partial(nn.Dense, dtype=self.dtype, kernel_init=XAVIER)

        x, aux_input = self._body(x, conv, up)
        self.sow("intermediates", "features", x)
        x = jnp.mean(x, axis=(1, 2))
        x = nn.Dropout(self.dropout_rate, deterministic=not train)(x)
        logits = jnp.asarray(dense(self.num_classes, name="Logits")(x), jnp.float32)
        if self.aux_logits and (train or self.is_initializing()):
            aux = blocks.AuxHead(conv, dense, self.num_classes, name="AuxLogits")(aux_input)
            if train:
                return logits, jnp.asarray(aux, jnp.float32)
        return logits

    def _projection(self, plain_conv: ModuleDef, norm: ModuleDef) -> ModuleDef:
        """The residual blocks' linear 1x1 up-projection: a convolution with a bias, no BatchNorm."""
        return functools.partial(plain_conv, use_bias=True)

    def _body(self, x: Array, conv: ModuleDef, up: ModuleDef) -> tuple[Array, Array]:
        """Returns (final feature map, input of the aux head)."""
        raise NotImplementedError

    def _block(self, cls: type[nn.Module]) -> type[nn.Module]:
        """`cls`, or with `remat` its rematerialised twin (same parameters, activations recomputed)."""
        return nn.remat(cls) if self.remat else cls

    def _stage(self, name: str, x: Array) -> Array:
        self.sow("intermediates", name, x)
        return x


class InceptionV3(Inception):
    """Inception-v3 (Szegedy et al. 2015; TF-slim `inception_v3`), the plain partner of IR-v1.

    `pool_include_pad=True` averages pooled borders over the padding too, as timm's port does;
    set it to reproduce timm's outputs with imported timm weights.
    """

    pool_include_pad: bool = False

    def _body(self, x, conv, up):
        pip = self.pool_include_pad
        x = self._stage("stem", self._block(blocks.InceptionV3Stem)(conv, name="Stem")(x))
        for scope, pool_features in (("Mixed_5b", 32), ("Mixed_5c", 64), ("Mixed_5d", 64)):
            x = self._block(blocks.InceptionV3A)(conv, pool_features, pool_include_pad=pip, name=scope)(x)
        x = self._stage("stage_a", x)
        x = self._stage("reduction_a", self._block(blocks.ReductionA)(conv, 64, 96, 96, 384, name="Mixed_6a")(x))
        for scope, c7 in (("Mixed_6b", 128), ("Mixed_6c", 160), ("Mixed_6d", 160), ("Mixed_6e", 192)):
            x = self._block(blocks.InceptionV3B)(conv, c7, pool_include_pad=pip, name=scope)(x)
        aux_input = x = self._stage("stage_b", x)
        x = self._block(blocks.ReductionB)(conv, b0=(192, 320), b1=(192, 192, 192, 192), name="Mixed_7a")(x)
        x = self._stage("reduction_b", x)
        for scope in ("Mixed_7b", "Mixed_7c"):
            x = self._block(blocks.InceptionV3C)(conv, pool_include_pad=pip, name=scope)(x)
        return self._stage("stage_c", x), aux_input


class InceptionV4(Inception):
    """Inception-v4 (paper Fig. 9; TF-slim `inception_v4` == timm `inception_v4`)."""

    def _body(self, x, conv, up):
        x = self._stage("stem", self._block(blocks.InceptionV4Stem)(conv, name="Stem")(x))
        for i in "bcde":
            x = self._block(blocks.InceptionA)(conv, name=f"Mixed_5{i}")(x)
        x = self._stage("stage_a", x)
        x = self._stage("reduction_a", self._block(blocks.ReductionA)(conv, 192, 224, 256, 384, name="Mixed_6a")(x))
        for i in "bcdefgh":
            x = self._block(blocks.InceptionB)(conv, name=f"Mixed_6{i}")(x)
        aux_input = x = self._stage("stage_b", x)
        x = self._stage("reduction_b", self._block(blocks.ReductionB)(conv, name="Mixed_7a")(x))
        for i in "bcd":
            x = self._block(blocks.InceptionC)(conv, name=f"Mixed_7{i}")(x)
        return self._stage("stage_c", x), aux_input


class InceptionResNet(Inception):
    """Options shared by the residual networks.

    `scale_a/b/c` scale the residual branch of the A/B/C blocks (paper section 3.3).
    `residual=False` removes every shortcut: the plain twin of the same architecture for the
    residual-vs-plain ablation. With `plain_bn=False` it is the faithful twin: each block is
    relu(scale * (W m + b)) where the residual network has relu(x + scale * (W m + b)), the
    shortcut the only difference. `plain_bn=True` (the default, the study's secondary twin)
    also ends each 1x1 projection in BatchNorm (offset, no scale) instead of a bias, unscaled, as
    every other convolution of Inception-v4 does: same trainable parameter count, plus the
    projections' moving statistics.
    """

    scale_a: float = 0.17
    scale_b: float = 0.10
    scale_c: float = 0.20
    residual: bool = True
    plain_bn: bool = True

    kernel_init = staticmethod(XAVIER)

    def _projection(self, plain_conv: ModuleDef, norm: ModuleDef) -> ModuleDef:
        if self.residual or not self.plain_bn:
            return super()._projection(plain_conv, norm)
        # width 1.0: the block passes the channel count it needs, already scaled.
        return functools.partial(ConvBN, conv=plain_conv, norm=norm, width=1.0, activate=False)

    def _scales(self) -> tuple[float, float, float]:
        """The A, B and C blocks' branch scales; the BatchNorm twin's projections are normalised
        instead (unscaled, as measured in docs/ablation/study)."""
        if not self.residual and self.plain_bn:
            return 1.0, 1.0, 1.0
        return self.scale_a, self.scale_b, self.scale_c


class InceptionResNetV1(InceptionResNet):
    """Inception-ResNet-v1 as in the paper (Figs. 10-15): 5 / 10 / 5 blocks, stem to 35x35x256.

    The head (global pool, dropout, dense) follows Fig. 15; facenet's face-embedding variant adds
    a sixth, unscaled IR-C block, which the paper's ImageNet network does not have.
    """

    def _body(self, x, conv, up):
        r, (sa, sb, sc) = self.residual, self._scales()
        x = self._stage("stem", self._block(blocks.InceptionResNetV1Stem)(conv, name="Stem")(x))
        for i in range(1, 6):
            x = self._block(blocks.InceptionResNetA)(
                conv, up, sa, residual=r, b0=32, b1=(32, 32), b2=(32, 32, 32), name=f"Block35_{i}"
            )(x)
        x = self._stage("stage_a", x)
        x = self._stage("reduction_a", self._block(blocks.ReductionA)(conv, 192, 192, 256, 384, name="Mixed_6a")(x))
        for i in range(1, 11):
            x = self._block(blocks.InceptionResNetB)(
                conv, up, sb, residual=r, b0=128, b1=(128, 128, 128), name=f"Block17_{i}"
            )(x)
        aux_input = x = self._stage("stage_b", x)
        x = self._block(blocks.InceptionResNetReductionB)(
            conv, b0=(256, 384), b1=(256, 256), b2=(256, 256, 256), name="Mixed_7a"
        )(x)
        x = self._stage("reduction_b", x)
        for i in range(1, 6):
            x = self._block(blocks.InceptionResNetC)(
                conv, up, sc, residual=r, b0=192, b1=(192, 192, 192), name=f"Block8_{i}"
            )(x)
        return self._stage("stage_c", x), aux_input


class InceptionResNetV2(InceptionResNet):
    """Inception-ResNet-v2 as released (TF-slim == timm == Keras), which every checkpoint uses.

    It differs from the paper's Fig. 18 figure: an Inception-v3-style stem plus Mixed_5b
    (35x35x320), 10 / 20 / 9+1 blocks (the last Block8 unscaled and without ReLU) and a final
    1x1 conv to 1536. The figure is internally inconsistent (see README).
    """

    def _body(self, x, conv, up):
        r, (sa, sb, sc) = self.residual, self._scales()
        x = self._block(blocks.InceptionV3Stem)(conv, name="Stem")(x)
        x = self._stage("stem", self._block(blocks.InceptionV3A)(conv, pool_features=64, b0=96, name="Mixed_5b")(x))
        for i in range(1, 11):
            x = self._block(blocks.InceptionResNetA)(conv, up, sa, residual=r, name=f"Block35_{i}")(x)
        x = self._stage("stage_a", x)
        x = self._stage("reduction_a", self._block(blocks.ReductionA)(conv, 256, 256, 384, 384, name="Mixed_6a")(x))
        for i in range(1, 21):
            x = self._block(blocks.InceptionResNetB)(conv, up, sb, residual=r, name=f"Block17_{i}")(x)
        aux_input = x = self._stage("stage_b", x)
        x = self._stage("reduction_b", self._block(blocks.InceptionResNetReductionB)(conv, name="Mixed_7a")(x))
        for i in range(1, 10):
            x = self._block(blocks.InceptionResNetC)(conv, up, sc, residual=r, name=f"Block8_{i}")(x)
        x = self._block(blocks.InceptionResNetC)(conv, up, 1.0, activate=False, residual=r, name="Block8_10")(x)
        x = self._stage("stage_c", x)
        return conv(1536, (1, 1), name="Conv2d_7b_1x1")(x), aux_input
