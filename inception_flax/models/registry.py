"""The networks by name: `create(name, **options)`, `names()`, `options(name)`."""

from __future__ import annotations

import dataclasses

from inception_flax.models import networks

# Each name's network; its options and their defaults are the class's fields.
MODELS: dict[str, type[networks.Inception]] = {
    "inception_v3": networks.InceptionV3,
    "inception_v4": networks.InceptionV4,
    "inception_resnet_v1": networks.InceptionResNetV1,
    "inception_resnet_v2": networks.InceptionResNetV2,
}


def names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(MODELS)


def check_name(name: str) -> None:
    """Raise a ValueError listing the known models when `name` is not one of them."""
    if name not in MODELS:
        raise ValueError(f"Unknown model {name!r}. Known models: {', '.join(names())}.")


def options(name: str) -> list[str]:
    """The option names `create(name, ...)` accepts."""
    check_name(name)
    return [f.name for f in dataclasses.fields(MODELS[name]) if f.name not in ("parent", "name")]


def create(name: str, **opts) -> networks.Inception:
    """Returns the `flax.linen.Module` registered as `name`, built with `opts`."""
    check_name(name)
    unknown = sorted(set(opts) - set(options(name)))
    if unknown:
        raise ValueError(f"{name} has no option(s) {unknown}. Options: {', '.join(options(name))}.")
    return MODELS[name](**opts)
