"""Named constructors for the networks: `create(name, **options)` and `names()`."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from inception_flax.models import networks

_CONSTRUCTORS: dict[str, Callable[..., networks.Inception]] = {}


def register(name: str) -> Callable:
    """Decorator adding a named constructor to the registry."""

    def wrap(fn: Callable[..., networks.Inception]) -> Callable[..., networks.Inception]:
        if name in _CONSTRUCTORS:
            raise ValueError(f"Model {name!r} is registered twice.")
        _CONSTRUCTORS[name] = fn
        return fn

    return wrap


@register("inception_v3")
def inception_v3(**options) -> networks.InceptionV3:
    return networks.InceptionV3(**options)


@register("inception_v4")
def inception_v4(**options) -> networks.InceptionV4:
    return networks.InceptionV4(**options)


@register("inception_resnet_v1")
def inception_resnet_v1(**options) -> networks.InceptionResNetV1:
    return networks.InceptionResNetV1(**options)


@register("inception_resnet_v2")
def inception_resnet_v2(**options) -> networks.InceptionResNetV2:
    return networks.InceptionResNetV2(**options)


def names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_CONSTRUCTORS)


def check_name(name: str) -> None:
    """Raise a ValueError listing the known models when `name` is not one of them."""
    if name not in _CONSTRUCTORS:
        raise ValueError(f"Unknown model {name!r}. Known models: {', '.join(names())}.")


def options(name: str) -> list[str]:
    """The option names `create(name, ...)` accepts."""
    check_name(name)
    module_cls = _module_class(name)
    return [f.name for f in dataclasses.fields(module_cls) if f.name not in ("parent", "name")]


def create(name: str, **opts) -> networks.Inception:
    """Returns the `flax.linen.Module` registered as `name`, built with `opts`."""
    check_name(name)
    unknown = sorted(set(opts) - set(options(name)))
    if unknown:
        raise ValueError(f"{name} has no option(s) {unknown}. Options: {', '.join(options(name))}.")
    return _CONSTRUCTORS[name](**opts)


def _module_class(name: str) -> type[networks.Inception]:
    return type(_CONSTRUCTORS[name]())
