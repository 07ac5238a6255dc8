"""TF-slim references for the importer tests.

- `build_v3_checkpoint`: tf_slim's own `inception_v3` graph (tf.compat.v1), with BatchNorm moving
  statistics calibrated on smooth random images, saved with `tf.compat.v1.train.Saver`.
- `slim_names`: the variable scopes TF-slim gives Inception-v4 and Inception-ResNet-v2 (from
  `research/slim/nets/inception_v4.py` and `inception_resnet_v2.py`), written out block by block in
  slim's own terms, each paired with the Flax layer it must land in.
"""

from __future__ import annotations

import sys

import numpy as np


def smooth_images(n: int, size: int, seed: int) -> np.ndarray:
    """Smooth random images in [-1, 1] (uniform noise makes every image's logits alike)."""
    from scipy.ndimage import zoom

    z = np.random.default_rng(seed).normal(size=(n, 19, 19, 3))
    return np.tanh(zoom(z, (1, size / 19, size / 19, 1), order=3)).astype(np.float32)


def build_v3_checkpoint(prefix: str, num_classes: int, size: int = 299) -> tuple[np.ndarray, np.ndarray]:
    """Saves a random slim Inception-v3 at `prefix`; returns (images, slim's inference logits)."""
    import tensorflow as tf
    import tf_keras.src.legacy_tf_layers as legacy

    sys.modules.setdefault("tf_keras.legacy_tf_layers", legacy)  # TF 2.21 looks for it here
    import tf_slim as slim
    from tf_slim.nets import inception_v3

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        x = tf1.placeholder(tf.float32, [None, size, size, 3])
        # decay 0: one training-mode pass sets the moving statistics to that batch's statistics.
        with slim.arg_scope(inception_v3.inception_v3_arg_scope(batch_norm_decay=0.0)):
            logits, _ = inception_v3.inception_v3(x, num_classes=num_classes, is_training=False)
            inception_v3.inception_v3(x, num_classes=num_classes, is_training=True, reuse=True)
        updates = tf1.get_collection(tf1.GraphKeys.UPDATE_OPS)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            sess.run(updates, {x: smooth_images(4, size, seed=1)})
            images = smooth_images(2, size, seed=2)
            out = sess.run(logits, {x: images})
            tf1.train.Saver().save(sess, prefix)
    return images, out


def _branches(block: str, table: dict[int, list[tuple[str, str]]]) -> list[tuple[str, tuple[str, ...]]]:
    return [(f"{block}/Branch_{k}/{conv}", (leaf,)) for k, convs in table.items() for conv, leaf in convs]


_V4_A = {
    0: [("Conv2d_0a_1x1", "b0_0")],
    1: [("Conv2d_0a_1x1", "b1_0"), ("Conv2d_0b_3x3", "b1_1")],
    2: [("Conv2d_0a_1x1", "b2_0"), ("Conv2d_0b_3x3", "b2_1"), ("Conv2d_0c_3x3", "b2_2")],
    3: [("Conv2d_0b_1x1", "b3_0")],
}
_RED_A = {
    0: [("Conv2d_1a_3x3", "b0_0")],
    1: [("Conv2d_0a_1x1", "b1_0"), ("Conv2d_0b_3x3", "b1_1"), ("Conv2d_1a_3x3", "b1_2")],
}
_V4_B = {
    0: [("Conv2d_0a_1x1", "b0_0")],
    1: [("Conv2d_0a_1x1", "b1_0"), ("Conv2d_0b_1x7", "b1_1"), ("Conv2d_0c_7x1", "b1_2")],
    2: [
        ("Conv2d_0a_1x1", "b2_0"),
        ("Conv2d_0b_7x1", "b2_1"),
        ("Conv2d_0c_1x7", "b2_2"),
        ("Conv2d_0d_7x1", "b2_3"),
        ("Conv2d_0e_1x7", "b2_4"),
    ],
    3: [("Conv2d_0b_1x1", "b3_0")],
}
_V4_RED_B = {
    0: [("Conv2d_0a_1x1", "b0_0"), ("Conv2d_1a_3x3", "b0_1")],
    1: [("Conv2d_0a_1x1", "b1_0"), ("Conv2d_0b_1x7", "b1_1"), ("Conv2d_0c_7x1", "b1_2"), ("Conv2d_1a_3x3", "b1_3")],
}
_V4_C = {
    0: [("Conv2d_0a_1x1", "b0_0")],
    1: [("Conv2d_0a_1x1", "b1_0"), ("Conv2d_0b_1x3", "b1_1a"), ("Conv2d_0c_3x1", "b1_1b")],
    2: [
        ("Conv2d_0a_1x1", "b2_0"),
        ("Conv2d_0b_3x1", "b2_1"),
        ("Conv2d_0c_1x3", "b2_2"),
        ("Conv2d_0d_1x3", "b2_3a"),
        ("Conv2d_0e_3x1", "b2_3b"),
    ],
    3: [("Conv2d_0b_1x1", "b3_0")],
}
_IR_A = {
    0: [("Conv2d_1x1", "b0_0")],
    1: [("Conv2d_0a_1x1", "b1_0"), ("Conv2d_0b_3x3", "b1_1")],
    2: [("Conv2d_0a_1x1", "b2_0"), ("Conv2d_0b_3x3", "b2_1"), ("Conv2d_0c_3x3", "b2_2")],
}
_IR_B = {
    0: [("Conv2d_1x1", "b0_0")],
    1: [("Conv2d_0a_1x1", "b1_0"), ("Conv2d_0b_1x7", "b1_1"), ("Conv2d_0c_7x1", "b1_2")],
}
_IR_C = {
    0: [("Conv2d_1x1", "b0_0")],
    1: [("Conv2d_0a_1x1", "b1_0"), ("Conv2d_0b_1x3", "b1_1"), ("Conv2d_0c_3x1", "b1_2")],
}
_IR_RED_B = {
    0: [("Conv2d_0a_1x1", "b0_0"), ("Conv2d_1a_3x3", "b0_1")],
    1: [("Conv2d_0a_1x1", "b1_0"), ("Conv2d_1a_3x3", "b1_1")],
    2: [("Conv2d_0a_1x1", "b2_0"), ("Conv2d_0b_3x3", "b2_1"), ("Conv2d_1a_3x3", "b2_2")],
}
_MIXED_5B = {
    0: [("Conv2d_1x1", "b0_0")],
    1: [("Conv2d_0a_1x1", "b1_0"), ("Conv2d_0b_5x5", "b1_1")],
    2: [("Conv2d_0a_1x1", "b2_0"), ("Conv2d_0b_3x3", "b2_1"), ("Conv2d_0c_3x3", "b2_2")],
    3: [("Conv2d_0b_1x1", "b3_0")],
}


def _in(flax_scope: str, pairs):
    return [(slim, (flax_scope, *leaf)) for slim, leaf in pairs]


def slim_names(name: str) -> list[tuple[str, tuple[str, ...], str]]:
    """(slim scope under the network scope, Flax layer path, kind) for every weight layer."""
    units: list[tuple[str, tuple[str, ...]]] = []
    convs = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3"]
    if name == "inception_v4":
        units += [(c, ("Stem", c)) for c in convs]
        units += [("Mixed_3a/Branch_1/Conv2d_0a_3x3", ("Stem", "Mixed_3a_b1_0"))]
        mixed_4a = {0: [("Conv2d_0a_1x1", "b0_0"), ("Conv2d_1a_3x3", "b0_1")]} | {1: _V4_RED_B[1]}
        units += [(s, ("Stem", f"Mixed_4a_{leaf[0]}")) for s, leaf in _branches("Mixed_4a", mixed_4a)]
        units += [("Mixed_5a/Branch_0/Conv2d_1a_3x3", ("Stem", "Mixed_5a_b0_0"))]
        for c in "bcde":
            units += _in(f"Mixed_5{c}", _branches(f"Mixed_5{c}", _V4_A))
        units += _in("Mixed_6a", _branches("Mixed_6a", _RED_A))
        for c in "bcdefgh":
            units += _in(f"Mixed_6{c}", _branches(f"Mixed_6{c}", _V4_B))
        units += _in("Mixed_7a", _branches("Mixed_7a", _V4_RED_B))
        for c in "bcd":
            units += _in(f"Mixed_7{c}", _branches(f"Mixed_7{c}", _V4_C))
        aux = [("AuxLogits/Conv2d_1b_1x1", "Conv2d_1b_1x1"), ("AuxLogits/Conv2d_2a", "Conv2d_2a_5x5")]
        units += [(s, ("AuxLogits", leaf)) for s, leaf in aux]
        head = [("AuxLogits/Aux_logits", ("AuxLogits", "Logits"), "dense"), ("Logits/Logits", ("Logits",), "dense")]
    elif name == "inception_resnet_v2":
        units += [(c, ("Stem", c)) for c in [*convs, "Conv2d_3b_1x1", "Conv2d_4a_3x3"]]
        units += _in("Mixed_5b", _branches("Mixed_5b", _MIXED_5B))
        blocks = [(f"Repeat/block35_{i}", f"Block35_{i}", _IR_A) for i in range(1, 11)]
        blocks += [(f"Repeat_1/block17_{i}", f"Block17_{i}", _IR_B) for i in range(1, 21)]
        blocks += [(f"Repeat_2/block8_{i}", f"Block8_{i}", _IR_C) for i in range(1, 10)]
        blocks += [("Block8", "Block8_10", _IR_C)]
        ups = []
        for slim_scope, flax_scope, table in blocks:
            units += _in(flax_scope, _branches(slim_scope, table))
            ups.append((f"{slim_scope}/Conv2d_1x1", (flax_scope, "up"), "conv"))
        units += _in("Mixed_6a", _branches("Mixed_6a", {0: _RED_A[0], 1: _RED_A[1]}))
        units += _in("Mixed_7a", _branches("Mixed_7a", _IR_RED_B))
        units += [("Conv2d_7b_1x1", ("Conv2d_7b_1x1",))]
        units += [(f"AuxLogits/{c}", ("AuxLogits", c)) for c in ("Conv2d_1b_1x1", "Conv2d_2a_5x5")]
        head = [*ups, ("AuxLogits/Logits", ("AuxLogits", "Logits"), "dense"), ("Logits/Logits", ("Logits",), "dense")]
    else:
        raise ValueError(name)
    return [(s, path, "conv_bn") for s, path in units] + head
