"""Import Keras 3 `keras.applications` Inception weights (`InceptionV3`, `InceptionResNetV2`).

    variables = weights.from_keras(keras_model, "inception_resnet_v2")   # or a .keras / .h5 path

Keras names most layers automatically (conv2d_17, ...), so layers are matched by graph
position: the Keras graph is walked depth-first from the output, visiting each layer's inputs in
order, which yields the convolutions branch by branch exactly as the Flax blocks run them. Every
pair is checked for kind and shape. Keras is imported only when a path is given.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from inception_flax import models
from inception_flax.weights.common import Path, Variables, finish, to_numpy

_KERAS_APPLICATIONS = {"inception_v3": "InceptionV3", "inception_resnet_v2": "InceptionResNetV2"}


def _layers_in_call_order(model: Any) -> list[Any]:
    """Layers of a functional Keras model in depth-first post-order from its outputs."""
    order: list[Any] = []
    expanded: set[tuple[int, int]] = set()
    emitted: set[tuple[int, int]] = set()
    stack = [(t, False) for t in reversed(model.outputs)]
    while stack:  # iterative: the graphs are deeper than Python's recursion limit
        tensor, done = stack.pop()
        op, node_index, _ = tensor._keras_history
        key = (id(op), node_index)
        if done:
            if key not in emitted:
                emitted.add(key)
                order.append(op)
            continue
        if key in expanded:
            continue
        expanded.add(key)
        stack.append((tensor, True))
        inputs = op._inbound_nodes[node_index].input_tensors
        stack.extend((t, False) for t in reversed(list(inputs)))
    return order


def _keras_units(model: Any) -> list[tuple[str, str, dict[str, np.ndarray]]]:
    """(kind, keras name, tensors) per weight layer; a bias-free Conv2D absorbs its BatchNorm."""
    layers = [x for x in _layers_in_call_order(model) if type(x).__name__ in ("Conv2D", "BatchNormalization", "Dense")]
    units = []
    i = 0
    while i < len(layers):
        layer = layers[i]
        kind = type(layer).__name__
        weights = [to_numpy(w) for w in layer.get_weights()]
        if kind == "Conv2D" and not layer.use_bias:
            bn = layers[i + 1] if i + 1 < len(layers) else None
            if bn is None or type(bn).__name__ != "BatchNormalization":
                raise ValueError(f"Keras conv {layer.name} has no bias and no BatchNormalization after it.")
            if not np.isclose(bn.epsilon, 1e-3):
                raise ValueError(
                    f"Keras {bn.name} has epsilon {bn.epsilon}; create the model with bn_epsilon={bn.epsilon}."
                )
            names = [w.path.split("/")[-1] for w in bn.weights]
            bn_weights = dict(zip(names, (to_numpy(w) for w in bn.get_weights()), strict=True))
            if "gamma" in bn_weights and not np.allclose(bn_weights["gamma"], 1.0):
                raise ValueError(f"Keras {bn.name} has a BatchNorm gamma that is not 1; the models have none.")
            tensors = {"kernel": weights[0], "bias": bn_weights["beta"]}
            tensors |= {"mean": bn_weights["moving_mean"], "var": bn_weights["moving_variance"]}
            units.append(("conv_bn", layer.name, tensors))
            i += 2
            continue
        if kind == "BatchNormalization":
            raise ValueError(f"Keras {layer.name} follows no bias-free convolution; not an Inception graph.")
        units.append(("conv" if kind == "Conv2D" else "dense", layer.name, {"kernel": weights[0], "bias": weights[1]}))
        i += 1
    return units


def keras_model(path: str | os.PathLike, name: str) -> Any:
    """The Keras model of a `.keras` file, or `keras.applications`' model with an `.h5` file's weights."""
    if name not in _KERAS_APPLICATIONS:
        raise ValueError(f"keras.applications has no {name}; from_keras supports {', '.join(_KERAS_APPLICATIONS)}.")
    import keras  # only when a file is given

    path = os.fspath(path)
    if path.endswith(".keras"):
        return keras.saving.load_model(path, compile=False)
    return getattr(keras.applications, _KERAS_APPLICATIONS[name])(weights=path, classifier_activation=None)


def from_keras(model_or_path: Any, name: str) -> Variables:
    """Flax variables for `models.create(name, num_classes=...)` from a Keras application model.

    Accepts a `keras.Model` built by `keras.applications.InceptionV3`/`InceptionResNetV2`
    (include_top=True), a `.keras` file, or an `.h5` weights file for the 1000-class model.
    Keras's average pooling excludes padding, as the default models here do.
    """
    models.check_name(name)
    if name not in _KERAS_APPLICATIONS:
        raise ValueError(f"keras.applications has no {name}; from_keras supports {', '.join(_KERAS_APPLICATIONS)}.")
    model = keras_model(model_or_path, name) if isinstance(model_or_path, str | os.PathLike) else model_or_path
    units = _keras_units(model)
    if not units or units[-1][0] != "dense":
        raise ValueError("from_keras needs the classifier: build the Keras model with include_top=True.")
    num_classes = units[-1][2]["kernel"].shape[1]
    layers = models.trace_layers(models.create(name, num_classes=num_classes))

    flat: dict[Path, np.ndarray] = {}
    if len(units) != len(layers):
        raise ValueError(
            f"The Keras model has {len(units)} weight layers, {name} has {len(layers)}: not the same network."
        )
    for (kind, keras_name, tensors), layer in zip(units, layers, strict=True):
        if kind != layer.kind or tensors["kernel"].shape != layer.kernel_shape:
            raise ValueError(
                f"Keras layer {keras_name} ({kind}, kernel {tensors['kernel'].shape}) does not match "
                f"{'/'.join(layer.path)} ({layer.kind}, kernel {layer.kernel_shape}): not the same network."
            )
        if kind == "conv_bn":
            flat[("params", *layer.path, "conv", "kernel")] = tensors["kernel"]
            flat[("params", *layer.path, "bn", "bias")] = tensors["bias"]
            flat[("batch_stats", *layer.path, "bn", "mean")] = tensors["mean"]
            flat[("batch_stats", *layer.path, "bn", "var")] = tensors["var"]
        else:
            flat[("params", *layer.path, "kernel")] = tensors["kernel"]
            flat[("params", *layer.path, "bias")] = tensors["bias"]
    return finish(flat, name, "Keras", [], num_classes=num_classes)
