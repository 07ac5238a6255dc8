"""The blocks of the Inception-v4 paper (and of Inception-v3, its plain partner), one module each.

Every block receives `conv`, a partial of `ConvBN` made by the network (it carries the dtype, the
initialiser, BatchNorm settings and the width multiplier), so channel counts below are exactly the
paper's. Convolutions are named `b{branch}_{index}` in the order TF-slim, timm and Keras build
them (pooling ops are not counted); the weight importers in `inception_flax.weights` rely on it.
"Fig. N" refers to arXiv:1602.07261; "Rethinking Fig. N" to arXiv:1512.00567 (Inception-v3).
"""

from __future__ import annotations

from collections.abc import Sequence

import flax.linen as nn
import jax.numpy as jnp

from inception_flax.models.layers import Array, ModuleDef, avg_pool_3x3, concat, max_pool_3x3_s2

V = "VALID"
S2 = (2, 2)


# --------------------------------------------------------------------------------------- stems
def _v3_stem_trunk(conv: ModuleDef, x: Array) -> Array:
    """299x299x3 -> 71x71x192, shared by the Inception-v3, IR-v1 and (released) IR-v2 stems."""
    x = conv(32, (3, 3), strides=S2, padding=V, name="Conv2d_1a_3x3")(x)  # 149x149x32
    x = conv(32, (3, 3), padding=V, name="Conv2d_2a_3x3")(x)  # 147x147x32
    x = conv(64, (3, 3), name="Conv2d_2b_3x3")(x)  # 147x147x64
    x = max_pool_3x3_s2(x)  # MaxPool_3a_3x3: 73x73x64
    x = conv(80, (1, 1), padding=V, name="Conv2d_3b_1x1")(x)
    return conv(192, (3, 3), padding=V, name="Conv2d_4a_3x3")(x)  # 71x71x192


class InceptionV3Stem(nn.Module):
    """Stem of Inception-v3 and of the released Inception-ResNet-v2: 299 -> 35x35x192."""

    conv: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        return max_pool_3x3_s2(_v3_stem_trunk(self.conv, x))  # MaxPool_5a_3x3


class InceptionResNetV1Stem(nn.Module):
    """Stem of Inception-ResNet-v1 (Fig. 14): the v3 trunk, then a strided conv: -> 35x35x256."""

    conv: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = _v3_stem_trunk(self.conv, x)
        return self.conv(256, (3, 3), strides=S2, padding=V, name="Conv2d_4b_3x3")(x)


class InceptionV4Stem(nn.Module):
    """Stem of Inception-v4 (Fig. 3): 299 -> 35x35x384."""

    conv: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        x = conv(32, (3, 3), strides=S2, padding=V, name="Conv2d_1a_3x3")(x)
        x = conv(32, (3, 3), padding=V, name="Conv2d_2a_3x3")(x)
        x = conv(64, (3, 3), name="Conv2d_2b_3x3")(x)
        # Mixed_3a: [maxpool, conv] in that order -> 73x73x160.
        x = concat([max_pool_3x3_s2(x), conv(96, (3, 3), strides=S2, padding=V, name="Mixed_3a_b1_0")(x)])
        # Mixed_4a -> 71x71x192.
        b0 = conv(64, (1, 1), name="Mixed_4a_b0_0")(x)
        b0 = conv(96, (3, 3), padding=V, name="Mixed_4a_b0_1")(b0)
        b1 = conv(64, (1, 1), name="Mixed_4a_b1_0")(x)
        b1 = conv(64, (1, 7), name="Mixed_4a_b1_1")(b1)
        b1 = conv(64, (7, 1), name="Mixed_4a_b1_2")(b1)
        b1 = conv(96, (3, 3), padding=V, name="Mixed_4a_b1_3")(b1)
        x = concat([b0, b1])
        # Mixed_5a: [conv, maxpool] -> 35x35x384.
        return concat([conv(192, (3, 3), strides=S2, padding=V, name="Mixed_5a_b0_0")(x), max_pool_3x3_s2(x)])


# ----------------------------------------------------------------------- Inception-v4 blocks
class InceptionA(nn.Module):
    """Inception-A (Fig. 4), 35x35x384 -> 35x35x384."""

    conv: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(96, (1, 1), name="b0_0")(x)
        b1 = conv(64, (1, 1), name="b1_0")(x)
        b1 = conv(96, (3, 3), name="b1_1")(b1)
        b2 = conv(64, (1, 1), name="b2_0")(x)
        b2 = conv(96, (3, 3), name="b2_1")(b2)
        b2 = conv(96, (3, 3), name="b2_2")(b2)
        b3 = conv(96, (1, 1), name="b3_0")(avg_pool_3x3(x))
        return concat([b0, b1, b2, b3])


class InceptionB(nn.Module):
    """Inception-B (Fig. 5), 17x17x1024 -> 17x17x1024."""

    conv: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(384, (1, 1), name="b0_0")(x)
        b1 = conv(192, (1, 1), name="b1_0")(x)
        b1 = conv(224, (1, 7), name="b1_1")(b1)
        b1 = conv(256, (7, 1), name="b1_2")(b1)
        b2 = conv(192, (1, 1), name="b2_0")(x)
        b2 = conv(192, (7, 1), name="b2_1")(b2)
        b2 = conv(224, (1, 7), name="b2_2")(b2)
        b2 = conv(224, (7, 1), name="b2_3")(b2)
        b2 = conv(256, (1, 7), name="b2_4")(b2)
        b3 = conv(128, (1, 1), name="b3_0")(avg_pool_3x3(x))
        return concat([b0, b1, b2, b3])


class InceptionC(nn.Module):
    """Inception-C (Fig. 6), 8x8x1536 -> 8x8x1536."""

    conv: ModuleDef

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(256, (1, 1), name="b0_0")(x)
        b1 = conv(384, (1, 1), name="b1_0")(x)
        b1 = concat([conv(256, (1, 3), name="b1_1a")(b1), conv(256, (3, 1), name="b1_1b")(b1)])
        b2 = conv(384, (1, 1), name="b2_0")(x)
        b2 = conv(448, (3, 1), name="b2_1")(b2)
        b2 = conv(512, (1, 3), name="b2_2")(b2)
        b2 = concat([conv(256, (1, 3), name="b2_3a")(b2), conv(256, (3, 1), name="b2_3b")(b2)])
        b3 = conv(256, (1, 1), name="b3_0")(avg_pool_3x3(x))
        return concat([b0, b1, b2, b3])


class ReductionA(nn.Module):
    """Reduction-A (Fig. 7), 35x35 -> 17x17, with the paper's Table 1 filter counts (k, l, m, n).

    v4 (192, 224, 256, 384); IR-v1 (192, 192, 256, 384); IR-v2 (256, 256, 384, 384). Inception-v3's
    Mixed_6a has the same shape with (64, 96, 96, 384).
    """

    conv: ModuleDef
    k: int
    l: int  # noqa: E741 -- the paper's name
    m: int
    n: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(self.n, (3, 3), strides=S2, padding=V, name="b0_0")(x)
        b1 = conv(self.k, (1, 1), name="b1_0")(x)
        b1 = conv(self.l, (3, 3), name="b1_1")(b1)
        b1 = conv(self.m, (3, 3), strides=S2, padding=V, name="b1_2")(b1)
        return concat([b0, b1, max_pool_3x3_s2(x)])


class ReductionB(nn.Module):
    """Reduction-B of Inception-v4 (Fig. 8), 17x17 -> 8x8.

    Inception-v3's Mixed_7a has the same shape with `b0=(192, 320), b1=(192, 192, 192, 192)`.
    """

    conv: ModuleDef
    b0: Sequence[int] = (192, 192)
    b1: Sequence[int] = (256, 256, 320, 320)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(self.b0[0], (1, 1), name="b0_0")(x)
        b0 = conv(self.b0[1], (3, 3), strides=S2, padding=V, name="b0_1")(b0)
        b1 = conv(self.b1[0], (1, 1), name="b1_0")(x)
        b1 = conv(self.b1[1], (1, 7), name="b1_1")(b1)
        b1 = conv(self.b1[2], (7, 1), name="b1_2")(b1)
        b1 = conv(self.b1[3], (3, 3), strides=S2, padding=V, name="b1_3")(b1)
        return concat([b0, b1, max_pool_3x3_s2(x)])


# ----------------------------------------------------------------------- Inception-v3 blocks
class InceptionV3A(nn.Module):
    """Inception-v3's 35x35 module (Rethinking Fig. 5; slim Mixed_5b-5d).

    With `b0=96, pool_features=64` it is also the released Inception-ResNet-v2's Mixed_5b.
    """

    conv: ModuleDef
    pool_features: int
    b0: int = 64
    pool_include_pad: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(self.b0, (1, 1), name="b0_0")(x)
        b1 = conv(48, (1, 1), name="b1_0")(x)
        b1 = conv(64, (5, 5), name="b1_1")(b1)
        b2 = conv(64, (1, 1), name="b2_0")(x)
        b2 = conv(96, (3, 3), name="b2_1")(b2)
        b2 = conv(96, (3, 3), name="b2_2")(b2)
        b3 = conv(self.pool_features, (1, 1), name="b3_0")(avg_pool_3x3(x, self.pool_include_pad))
        return concat([b0, b1, b2, b3])


class InceptionV3B(nn.Module):
    """Inception-v3's 17x17 module with factorised 7x7 convolutions (Rethinking Fig. 6)."""

    conv: ModuleDef
    c7: int
    pool_include_pad: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv, c7 = self.conv, self.c7
        b0 = conv(192, (1, 1), name="b0_0")(x)
        b1 = conv(c7, (1, 1), name="b1_0")(x)
        b1 = conv(c7, (1, 7), name="b1_1")(b1)
        b1 = conv(192, (7, 1), name="b1_2")(b1)
        b2 = conv(c7, (1, 1), name="b2_0")(x)
        b2 = conv(c7, (7, 1), name="b2_1")(b2)
        b2 = conv(c7, (1, 7), name="b2_2")(b2)
        b2 = conv(c7, (7, 1), name="b2_3")(b2)
        b2 = conv(192, (1, 7), name="b2_4")(b2)
        b3 = conv(192, (1, 1), name="b3_0")(avg_pool_3x3(x, self.pool_include_pad))
        return concat([b0, b1, b2, b3])


class InceptionV3C(nn.Module):
    """Inception-v3's 8x8 module with expanded filter banks (Rethinking Fig. 7): -> 8x8x2048."""

    conv: ModuleDef
    pool_include_pad: bool = False

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(320, (1, 1), name="b0_0")(x)
        b1 = conv(384, (1, 1), name="b1_0")(x)
        b1 = concat([conv(384, (1, 3), name="b1_1a")(b1), conv(384, (3, 1), name="b1_1b")(b1)])
        b2 = conv(448, (1, 1), name="b2_0")(x)
        b2 = conv(384, (3, 3), name="b2_1")(b2)
        b2 = concat([conv(384, (1, 3), name="b2_2a")(b2), conv(384, (3, 1), name="b2_2b")(b2)])
        b3 = conv(192, (1, 1), name="b3_0")(avg_pool_3x3(x, self.pool_include_pad))
        return concat([b0, b1, b2, b3])


# ------------------------------------------------------------------- Inception-ResNet blocks
class _ResidualBlock(nn.Module):
    """Shared tail of the Inception-ResNet blocks: linear 1x1 up-projection, scaled sum, ReLU.

    out = relu(x + scale * up(concat(branches))); no BatchNorm after the sum (paper, section 3.2).
    `residual=False` drops the shortcut and nothing else (out = relu(scale * up(...))), so plain
    and residual variants of one architecture have identical parameters and differ only by `x +`.
    """

    conv: ModuleDef
    up: ModuleDef
    scale: float = 1.0
    activate: bool = True
    residual: bool = True

    def _merge(self, x: Array, mixed: Array) -> Array:
        y = self.up(x.shape[-1], (1, 1), name="up")(mixed)
        y = jnp.asarray(self.scale, y.dtype) * y
        if self.residual:
            y = x + y
        return nn.relu(y) if self.activate else y


class InceptionResNetA(_ResidualBlock):
    """Inception-ResNet-A (Figs. 10, 16; slim block35), 35x35. Defaults: IR-v2."""

    b0: int = 32
    b1: Sequence[int] = (32, 32)
    b2: Sequence[int] = (32, 48, 64)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(self.b0, (1, 1), name="b0_0")(x)
        b1 = conv(self.b1[0], (1, 1), name="b1_0")(x)
        b1 = conv(self.b1[1], (3, 3), name="b1_1")(b1)
        b2 = conv(self.b2[0], (1, 1), name="b2_0")(x)
        b2 = conv(self.b2[1], (3, 3), name="b2_1")(b2)
        b2 = conv(self.b2[2], (3, 3), name="b2_2")(b2)
        return self._merge(x, concat([b0, b1, b2]))


class InceptionResNetB(_ResidualBlock):
    """Inception-ResNet-B (Figs. 11, 17; slim block17), 17x17. Defaults: IR-v2."""

    b0: int = 192
    b1: Sequence[int] = (128, 160, 192)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(self.b0, (1, 1), name="b0_0")(x)
        b1 = conv(self.b1[0], (1, 1), name="b1_0")(x)
        b1 = conv(self.b1[1], (1, 7), name="b1_1")(b1)
        b1 = conv(self.b1[2], (7, 1), name="b1_2")(b1)
        return self._merge(x, concat([b0, b1]))


class InceptionResNetC(_ResidualBlock):
    """Inception-ResNet-C (Figs. 13, 19; slim block8), 8x8. Defaults: IR-v2."""

    b0: int = 192
    b1: Sequence[int] = (192, 224, 256)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(self.b0, (1, 1), name="b0_0")(x)
        b1 = conv(self.b1[0], (1, 1), name="b1_0")(x)
        b1 = conv(self.b1[1], (1, 3), name="b1_1")(b1)
        b1 = conv(self.b1[2], (3, 1), name="b1_2")(b1)
        return self._merge(x, concat([b0, b1]))


class InceptionResNetReductionB(nn.Module):
    """Reduction-B of the Inception-ResNets (Figs. 12, 18; slim Mixed_7a), 17x17 -> 8x8.

    Defaults: the released IR-v2 (out 2080 channels); IR-v1 uses b1=(256, 256), b2=(256, 256, 256).
    """

    conv: ModuleDef
    b0: Sequence[int] = (256, 384)
    b1: Sequence[int] = (256, 288)
    b2: Sequence[int] = (256, 288, 320)

    @nn.compact
    def __call__(self, x: Array) -> Array:
        conv = self.conv
        b0 = conv(self.b0[0], (1, 1), name="b0_0")(x)
        b0 = conv(self.b0[1], (3, 3), strides=S2, padding=V, name="b0_1")(b0)
        b1 = conv(self.b1[0], (1, 1), name="b1_0")(x)
        b1 = conv(self.b1[1], (3, 3), strides=S2, padding=V, name="b1_1")(b1)
        b2 = conv(self.b2[0], (1, 1), name="b2_0")(x)
        b2 = conv(self.b2[1], (3, 3), name="b2_1")(b2)
        b2 = conv(self.b2[2], (3, 3), strides=S2, padding=V, name="b2_2")(b2)
        return concat([b0, b1, b2, max_pool_3x3_s2(x)])


# --------------------------------------------------------------------------------- aux head
class AuxHead(nn.Module):
    """Auxiliary classifier on the 17x17 map: avgpool 5x5/3 V -> 1x1 128 -> 5x5 V 768 -> dense.

    At 299x299 the pooled map is 5x5 and the 768 conv covers it exactly, as in slim. On smaller
    inputs the kernel shrinks to the map (slim's `_reduced_kernel_size_for_small_input`); on larger
    ones the remaining positions are averaged (as timm does), so any input >= 107 works.
    """

    conv: ModuleDef
    dense: ModuleDef
    num_classes: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        x = nn.avg_pool(x, (5, 5), strides=(3, 3), padding="VALID")
        x = self.conv(128, (1, 1), name="Conv2d_1b_1x1")(x)
        kernel = (min(5, x.shape[1]), min(5, x.shape[2]))
        x = self.conv(768, kernel, padding=V, name="Conv2d_2a_5x5")(x)
        x = jnp.mean(x, axis=(1, 2))
        return self.dense(self.num_classes, name="Logits")(x)
