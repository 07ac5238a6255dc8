"""The networks: layers, blocks, the four Inception networks and their registry.

    from inception_flax import models
    model = models.create("inception_v4", num_classes=1000)
    variables = model.init(jax.random.key(0), jnp.zeros((1, 299, 299, 3)))
    variables = models.init_variables(model, jax.random.key(0))  # the same in seconds, on CPU too
    logits = model.apply(variables, images)  # images: NHWC in [-1, 1]

Imports only jax, flax and numpy.
"""

from inception_flax.models.blocks import (
    AuxHead,
    InceptionA,
    InceptionB,
    InceptionC,
    InceptionResNetA,
    InceptionResNetB,
    InceptionResNetC,
    InceptionResNetReductionB,
    InceptionResNetV1Stem,
    InceptionV3A,
    InceptionV3B,
    InceptionV3C,
    InceptionV3Stem,
    InceptionV4Stem,
    ReductionA,
    ReductionB,
)
from inception_flax.models.init import init_variables, initializer
from inception_flax.models.inspect import LayerInfo, abstract_variables, count_params, feature_shapes, trace_layers
from inception_flax.models.layers import ConvBN
from inception_flax.models.networks import (
    MIN_INPUT_SIZE,
    MIN_INPUT_SIZE_AUX,
    STAGES,
    Inception,
    InceptionResNetV1,
    InceptionResNetV2,
    InceptionV3,
    InceptionV4,
    min_input_size,
)
from inception_flax.models.registry import MODELS, check_name, create, names, options

__all__ = [
    "MIN_INPUT_SIZE",
    "MIN_INPUT_SIZE_AUX",
    "MODELS",
    "STAGES",
    "AuxHead",
    "ConvBN",
    "Inception",
    "InceptionA",
    "InceptionB",
    "InceptionC",
    "InceptionResNetA",
    "InceptionResNetB",
    "InceptionResNetC",
    "InceptionResNetReductionB",
    "InceptionResNetV1",
    "InceptionResNetV1Stem",
    "InceptionResNetV2",
    "InceptionV3",
    "InceptionV3A",
    "InceptionV3B",
    "InceptionV3C",
    "InceptionV3Stem",
    "InceptionV4",
    "InceptionV4Stem",
    "LayerInfo",
    "ReductionA",
    "ReductionB",
    "abstract_variables",
    "check_name",
    "count_params",
    "create",
    "feature_shapes",
    "init_variables",
    "initializer",
    "min_input_size",
    "names",
    "options",
    "trace_layers",
]
