"""Helpers shared by the weight importers: tensor conversion and checking against the model."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from flax import traverse_util

from inception_flax import models

Path = tuple[str, ...]
Variables = dict[str, Any]


def to_numpy(x: Any) -> np.ndarray:
    """A float32 numpy array from a numpy array, a jax array or a torch tensor (no torch import)."""
    if hasattr(x, "detach"):  # torch.Tensor
        x = x.detach().cpu().float().numpy()
    return np.asarray(x, dtype=np.float32)


def conv_kernel_from_oihw(w: np.ndarray) -> np.ndarray:
    """PyTorch OIHW conv kernel -> Flax HWIO."""
    return np.ascontiguousarray(w.transpose(2, 3, 1, 0))


def expected_shapes(name: str, **options) -> dict[Path, tuple[int, ...]]:
    """Flat {(collection, *path): shape} of `models.create(name, **options)` at 299x299."""
    abstract = models.abstract_variables(models.create(name, **options), 299)
    flat = traverse_util.flatten_dict({k: abstract[k] for k in ("params", "batch_stats")})
    return {path: tuple(leaf.shape) for path, leaf in flat.items()}


def finish(flat: Mapping[Path, np.ndarray], name: str, source: str, unmapped: list[str], **options) -> Variables:
    """Check converted tensors against the model's variables and return them nested.

    Raises a ValueError naming every missing, unexpected or mis-shaped tensor, so a checkpoint of
    another network (or another variant) is refused before anything is run.
    """
    expected = expected_shapes(name, **options)
    missing = sorted("/".join(p) for p in expected.keys() - flat.keys())
    unexpected = sorted(unmapped) + sorted("/".join(p) for p in flat.keys() - expected.keys())
    misshaped = sorted(
        f"{'/'.join(p)}: got {tuple(flat[p].shape)}, model has {expected[p]}"
        for p in flat.keys() & expected.keys()
        if tuple(flat[p].shape) != expected[p]
    )
    if missing or unexpected or misshaped:
        opts = ", ".join(f"{k}={v!r}" for k, v in options.items())
        lines = [f"{source} weights do not fit models.create({name!r}, {opts}):"]
        for title, items in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if items:
                shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
                lines.append(f"  {len(items)} {title}: " + "; ".join(shown))
        raise ValueError("\n".join(lines))
    return traverse_util.unflatten_dict(dict(flat))


def model_options(variables: Variables) -> dict[str, Any]:
    """The `models.create` options that imported `variables` need: classes, aux head, BatchNorm gamma."""
    params = variables["params"]
    flat = traverse_util.flatten_dict(params)
    return {
        "num_classes": int(params["Logits"]["kernel"].shape[-1]),
        "aux_logits": "AuxLogits" in params,
        "bn_scale": any(path[-1] == "scale" for path in flat),
    }
