"""Numerical equivalence with Keras 3 `keras.applications` (ships with TensorFlow; always runs).

Random weights and random BatchNorm moving statistics are set in Keras, imported with
`weights.from_keras`, and both models run in inference mode on the same random images.
"""

import os

import jax
import numpy as np
import pytest

from inception_flax import models, weights
from tests.helpers import max_rel_error
from tests.references import randomize

keras = pytest.importorskip("keras")

SIZE = 139  # not 299, to keep it fast; still leaves 3x3 maps at the last stage, so pooled borders matter


@pytest.fixture(scope="module")
def keras_models():
    build = {
        "inception_v3": keras.applications.InceptionV3,
        "inception_resnet_v2": keras.applications.InceptionResNetV2,
    }
    return {
        name: randomize(fn(weights=None, input_shape=(SIZE, SIZE, 3), classifier_activation=None), seed=i)
        for i, (name, fn) in enumerate(build.items())
    }


@pytest.mark.parametrize("name", ["inception_v3", "inception_resnet_v2"])
def test_matches_keras(name, keras_models):
    km = keras_models[name]
    x = np.random.default_rng(1).uniform(-1, 1, (2, SIZE, SIZE, 3)).astype(np.float32)
    ref = np.asarray(km(x, training=False))
    variables = weights.from_keras(km, name)
    out = jax.jit(models.create(name).apply)(variables, x)
    err = max_rel_error(out, ref)
    print(f"{name}: max relative error vs Keras {err:.2e}")
    assert err < 1e-4


def test_from_keras_path(keras_models, tmp_path):
    path = os.fspath(tmp_path / "v3.weights.h5")
    keras_models["inception_v3"].save_weights(path)
    from_file = weights.from_keras(path, "inception_v3")
    from_model = weights.from_keras(keras_models["inception_v3"], "inception_v3")
    jax.tree.map(np.testing.assert_array_equal, from_file, from_model)


def test_keras_model_of_another_network_is_refused(keras_models):
    with pytest.raises(ValueError, match="not the same network"):
        weights.from_keras(keras_models["inception_resnet_v2"], "inception_v3")
    with pytest.raises(ValueError, match="keras.applications has no inception_v4"):
        weights.from_keras(keras_models["inception_v3"], "inception_v4")
