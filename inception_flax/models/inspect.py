"""Shape-only views of a network (parameter counts, feature maps, layer list, MACs).

Everything here runs under `jax.eval_shape`: it traces the model but never compiles or computes.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from inception_flax.models.layers import ConvBN
from inception_flax.models.networks import STAGES


@dataclasses.dataclass(frozen=True)
class LayerInfo:
    """One weight layer, in execution order.

    kind: "conv_bn" (ConvBN unit; `path` names the unit), "conv" (conv with bias, e.g. the
    Inception-ResNet up-projections) or "dense". `macs` are multiply-accumulates per image.
    """

    path: tuple[str, ...]
    kind: str
    kernel_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    macs: int


def _dummy_input(image_size: int, batch: int = 1) -> jax.ShapeDtypeStruct:
    return jax.ShapeDtypeStruct((batch, image_size, image_size, 3), jnp.float32)


def abstract_variables(model: nn.Module, image_size: int = 299, intermediates: bool = False) -> dict[str, Any]:
    """`model.init` as ShapeDtypeStructs: params and batch_stats (plus sown stage outputs)."""
    init = functools.partial(model.init, mutable=True) if intermediates else model.init
    return jax.eval_shape(init, jax.random.key(0), _dummy_input(image_size))


def count_params(params: Any) -> int:
    """Total number of scalars in a pytree of arrays or ShapeDtypeStructs."""
    return sum(math.prod(x.shape) for x in jax.tree.leaves(params))


def feature_shapes(model: nn.Module, image_size: int = 299) -> dict[str, tuple[int, ...]]:
    """Shape of each sown stage output (stem, stage_a, ..., features) for one image."""
    inter = abstract_variables(model, image_size, intermediates=True)["intermediates"]
    return {name: tuple(inter[name][0].shape) for name in STAGES}


def trace_layers(model: nn.Module, image_size: int = 299) -> list[LayerInfo]:
    """Every conv/dense layer of `model` in the order it runs, with output shape and MACs.

    Traced from `init`, so the aux head (if enabled) is included; its paths start "AuxLogits".
    """
    layers: list[LayerInfo] = []

    def interceptor(next_fun, args, kwargs, context):
        out = next_fun(*args, **kwargs)
        module = context.module
        if context.method_name != "__call__" or not isinstance(module, nn.Conv | nn.Dense):
            return out
        in_features = args[0].shape[-1]
        if isinstance(module, nn.Dense):
            kernel = (in_features, module.features)
            kind, path = "dense", module.path
        else:
            kernel = (*module.kernel_size, in_features // module.feature_group_count, module.features)
            if isinstance(module.parent, ConvBN):
                kind, path = "conv_bn", module.parent.path
            else:
                kind, path = "conv", module.path
        spatial = math.prod(out.shape[1:-1])
        layers.append(LayerInfo(tuple(path), kind, kernel, tuple(out.shape[1:]), spatial * math.prod(kernel)))
        return out

    with nn.intercept_methods(interceptor):
        abstract_variables(model, image_size)
    return layers
