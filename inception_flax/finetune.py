"""Fine-tuning: start a network from pretrained variables, re-initialising only the classifier heads.

Every tensor whose path and shape match is taken from the pretrained variables. Tensors of the
classifier (`Logits`) and of the aux head (`AuxLogits`) may differ (another number of classes, an
aux head the pretrained network lacks) and then keep their fresh initialisation; any other
mismatch means another network (width, variant) and is refused.
"""

from __future__ import annotations

from typing import Any

from flax import traverse_util

HEADS = ("Logits", "AuxLogits")


def _flat(variables: Any) -> dict[tuple[str, ...], Any]:
    return traverse_util.flatten_dict({k: variables[k] for k in ("params", "batch_stats") if k in variables})


def plan(target: Any, pretrained: Any) -> tuple[list[str], list[str]]:
    """(kept, re-initialised) paths of `target`; raises ValueError when a non-head tensor does not fit.

    Works on arrays or on shapes alone (`jax.eval_shape` trees), so it can run before any compile.
    """
    source = _flat(pretrained)
    kept, fresh, bad = [], [], []
    for path, leaf in _flat(target).items():
        name = "/".join(path)
        if path in source and tuple(source[path].shape) == tuple(leaf.shape):
            kept.append(name)
        elif path[1] in HEADS:
            fresh.append(name)
        else:
            got = "missing" if path not in source else f"{tuple(source[path].shape)} vs {tuple(leaf.shape)}"
            bad.append(f"{name} ({got})")
    if bad:
        shown = "; ".join(bad[:10]) + (f"; ... and {len(bad) - 10} more" if len(bad) > 10 else "")
        raise ValueError(f"{len(bad)} pretrained tensor(s) outside the classifier heads do not fit: {shown}")
    return kept, fresh


def merge(target: Any, pretrained: Any) -> tuple[dict[str, Any], list[str], list[str]]:
    """`target` with every fitting tensor replaced by the pretrained one; also (kept, re-initialised)."""
    kept, fresh = plan(target, pretrained)
    source, keep = _flat(pretrained), set(kept)
    flat = {path: source[path] if "/".join(path) in keep else leaf for path, leaf in _flat(target).items()}
    return traverse_util.unflatten_dict(flat), kept, fresh
