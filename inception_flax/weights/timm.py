"""Import timm's Inception weights (`inception_v3`, `inception_v4`, `inception_resnet_v2`).

    state_dict = safetensors.numpy.load_file("model.safetensors")  # or torch_model.state_dict()
    variables = weights.from_timm(state_dict, "inception_v4")
    model = models.create("inception_v4", num_classes=1000, **weights.TIMM_MODEL_OPTIONS["inception_v4"])
    logits = model.apply(variables, images)

No torch import: tensors may be numpy arrays or torch tensors.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from inception_flax import models
from inception_flax.weights.common import Path, Variables, conv_kernel_from_oihw, finish, to_numpy

# Model options that reproduce timm's outputs: timm's inception_v3 averages pooled borders over
# the padding (PyTorch's default), unlike TensorFlow and the other two timm ports.
TIMM_MODEL_OPTIONS: dict[str, dict[str, Any]] = {
    "inception_v3": {"pool_include_pad": True},
    "inception_v4": {},
    "inception_resnet_v2": {},
}

_CONV_BN_LEAVES = ("conv.weight", "bn.weight", "bn.bias", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked")

# timm inception_v3 conv names inside each block -> (branch, index) names used here.
_V3_BLOCK = {
    "branch1x1": "b0_0",
    "branch5x5_1": "b1_0",
    "branch5x5_2": "b1_1",
    "branch3x3dbl_1": "b2_0",
    "branch3x3dbl_2": "b2_1",
    "branch3x3dbl_3": "b2_2",
    "branch_pool": "b3_0",
}
_V3_MIXED_6A = {"branch3x3": "b0_0", "branch3x3dbl_1": "b1_0", "branch3x3dbl_2": "b1_1", "branch3x3dbl_3": "b1_2"}
_V3_MIXED_6X = {
    "branch1x1": "b0_0",
    **{f"branch7x7_{i + 1}": f"b1_{i}" for i in range(3)},
    **{f"branch7x7dbl_{i + 1}": f"b2_{i}" for i in range(5)},
    "branch_pool": "b3_0",
}
_V3_MIXED_7A = {
    "branch3x3_1": "b0_0",
    "branch3x3_2": "b0_1",
    **{f"branch7x7x3_{i + 1}": f"b1_{i}" for i in range(4)},
}
_V3_MIXED_7X = {
    "branch1x1": "b0_0",
    "branch3x3_1": "b1_0",
    "branch3x3_2a": "b1_1a",
    "branch3x3_2b": "b1_1b",
    "branch3x3dbl_1": "b2_0",
    "branch3x3dbl_2": "b2_1",
    "branch3x3dbl_3a": "b2_2a",
    "branch3x3dbl_3b": "b2_2b",
    "branch_pool": "b3_0",
}
_V3_AUX = {"conv0": "Conv2d_1b_1x1", "conv1": "Conv2d_2a_5x5", "fc": "Logits"}


class _BranchNames:
    """timm's `branchN[.j]` / `branchN_xy` -> `bN_j` / `bN_xy`.

    A pooling branch is `Sequential(pool, conv)`, so its conv is `branchN.1`; the rank of `j`
    among the indices present in the checkpoint (pools hold no tensors) gives the conv index.
    """

    def __init__(self, module_paths: list[tuple[str, ...]]):
        self._indices: dict[tuple[str, ...], list[int]] = {}
        for parts in module_paths:
            for i, p in enumerate(parts[:-1]):
                if re.fullmatch(r"branch\d", p) and parts[i + 1].isdigit():
                    self._indices.setdefault(parts[: i + 1], []).append(int(parts[i + 1]))
        for key in self._indices:
            self._indices[key] = sorted(set(self._indices[key]))

    def __call__(self, block: tuple[str, ...], rest: tuple[str, ...]) -> str | None:
        m = re.fullmatch(r"branch(\d)(?:_(\w+))?", rest[0]) if rest else None
        if m is None:
            return None
        if m.group(2):
            return f"b{m.group(1)}_{m.group(2)}" if len(rest) == 1 else None
        if len(rest) == 1:
            return f"b{m.group(1)}_0"
        if len(rest) == 2 and rest[1].isdigit():
            return f"b{m.group(1)}_{self._indices[(*block, rest[0])].index(int(rest[1]))}"
        return None


def _v4_path(parts: tuple[str, ...], branch: _BranchNames) -> tuple[Path, str] | None:
    if parts == ("last_linear",):
        return ("Logits",), "dense"
    if len(parts) < 2 or parts[0] != "features" or not parts[1].isdigit():
        return None
    i, rest = int(parts[1]), parts[2:]
    stem_convs = {0: "Conv2d_1a_3x3", 1: "Conv2d_2a_3x3", 2: "Conv2d_2b_3x3"}
    if i in stem_convs and not rest:
        return ("Stem", stem_convs[i]), "conv_bn"
    if i == 3 and rest == ("conv",):
        return ("Stem", "Mixed_3a_b1_0"), "conv_bn"
    if i == 5 and rest == ("conv",):
        return ("Stem", "Mixed_5a_b0_0"), "conv_bn"
    sub = branch(parts[:2], rest)
    if sub is None:
        return None
    if i == 4:
        return ("Stem", f"Mixed_4a_{sub}"), "conv_bn"
    scopes = [f"Mixed_5{c}" for c in "bcde"] + ["Mixed_6a"] + [f"Mixed_6{c}" for c in "bcdefgh"]
    scopes += ["Mixed_7a"] + [f"Mixed_7{c}" for c in "bcd"]
    if 6 <= i < 6 + len(scopes):
        return (scopes[i - 6], sub), "conv_bn"
    return None


def _ir_v2_path(parts: tuple[str, ...], branch: _BranchNames) -> tuple[Path, str] | None:
    stem = {"conv2d_1a": "Conv2d_1a_3x3", "conv2d_2a": "Conv2d_2a_3x3", "conv2d_2b": "Conv2d_2b_3x3"}
    stem |= {"conv2d_3b": "Conv2d_3b_1x1", "conv2d_4a": "Conv2d_4a_3x3"}
    if len(parts) == 1:
        if parts[0] in stem:
            return ("Stem", stem[parts[0]]), "conv_bn"
        return {"conv2d_7b": (("Conv2d_7b_1x1",), "conv_bn"), "classif": (("Logits",), "dense")}.get(parts[0])
    repeats = {"repeat": "Block35", "repeat_1": "Block17", "repeat_2": "Block8"}
    if parts[0] in repeats and parts[1].isdigit():
        block, scope, rest = parts[:2], f"{repeats[parts[0]]}_{int(parts[1]) + 1}", parts[2:]
    elif parts[0] == "block8":
        block, scope, rest = parts[:1], "Block8_10", parts[1:]
    elif parts[0] in ("mixed_5b", "mixed_6a", "mixed_7a"):
        block, scope, rest = parts[:1], parts[0].capitalize(), parts[1:]
    else:
        return None
    if rest == ("conv2d",) and scope.startswith("Block"):
        return (scope, "up"), "conv"
    sub = branch(block, rest)
    return ((scope, sub), "conv_bn") if sub else None


def _v3_path(parts: tuple[str, ...], branch: _BranchNames) -> tuple[Path, str] | None:
    del branch
    if parts[0].startswith("Conv2d_") and len(parts) == 1:
        return ("Stem", parts[0]), "conv_bn"
    if parts == ("fc",):
        return ("Logits",), "dense"
    if len(parts) != 2:
        return None
    scope, conv = parts
    if scope == "AuxLogits" and conv in _V3_AUX:
        return (scope, _V3_AUX[conv]), "dense" if conv == "fc" else "conv_bn"
    tables = {"Mixed_6a": _V3_MIXED_6A, "Mixed_7a": _V3_MIXED_7A}
    tables |= {f"Mixed_5{c}": _V3_BLOCK for c in "bcd"} | {f"Mixed_6{c}": _V3_MIXED_6X for c in "bcde"}
    tables |= {f"Mixed_7{c}": _V3_MIXED_7X for c in "bc"}
    if scope in tables and conv in tables[scope]:
        return (scope, tables[scope][conv]), "conv_bn"
    return None


_PATHS = {"inception_v3": _v3_path, "inception_v4": _v4_path, "inception_resnet_v2": _ir_v2_path}


def _split(key: str) -> tuple[tuple[str, ...], str]:
    """'features.6.branch1.0.bn.running_mean' -> (('features','6','branch1','0'), 'bn.running_mean')."""
    parts = key.split(".")
    if len(parts) >= 3 and ".".join(parts[-2:]) in _CONV_BN_LEAVES:
        return tuple(parts[:-2]), ".".join(parts[-2:])
    return tuple(parts[:-1]), parts[-1]


def from_timm(state_dict: Mapping[str, Any] | str | os.PathLike, name: str, *, bn_scale: bool = False) -> Variables:
    """Flax variables for `models.create(name, ...)` from a timm state dict.

    `state_dict` maps timm's names to numpy arrays or torch tensors, or is a path to a timm
    `.safetensors` file. The number of classes and the presence of an aux head (inception_v3)
    are read from the tensors; create the model with the same `num_classes`/`aux_logits`, plus
    `TIMM_MODEL_OPTIONS[name]` to reproduce timm's outputs.

    timm stores a BatchNorm gamma that its released (TF-ported) weights keep at 1. It is dropped
    for the default gamma-free model; a gamma that is not 1 is refused unless `bn_scale=True`
    (then create the model with `bn_scale=True` as well).
    """
    models.check_name(name)
    if name not in _PATHS:
        raise ValueError(f"timm has no {name}; from_timm supports {', '.join(sorted(_PATHS))}.")
    if isinstance(state_dict, str | os.PathLike):
        from safetensors.numpy import load_file  # optional dependency, only for paths

        state_dict = load_file(os.fspath(state_dict))
    tensors = {k: to_numpy(v) for k, v in state_dict.items() if not k.endswith("num_batches_tracked")}
    split = {key: _split(key) for key in tensors}
    branch = _BranchNames([module for module, _ in split.values()])

    flat: dict[Path, np.ndarray] = {}
    unmapped: list[str] = []
    for key, value in tensors.items():
        module, leaf = split[key]
        target = _PATHS[name](module, branch) if module else None
        if target is None:
            unmapped.append(f"{key} (timm)")
            continue
        path, kind = target
        if kind == "conv_bn":
            if leaf == "conv.weight":
                flat[("params", *path, "conv", "kernel")] = conv_kernel_from_oihw(value)
            elif leaf == "bn.bias":
                flat[("params", *path, "bn", "bias")] = value
            elif leaf == "bn.running_mean":
                flat[("batch_stats", *path, "bn", "mean")] = value
            elif leaf == "bn.running_var":
                flat[("batch_stats", *path, "bn", "var")] = value
            elif leaf == "bn.weight" and bn_scale:
                flat[("params", *path, "bn", "scale")] = value
            elif leaf == "bn.weight":
                if not np.allclose(value, 1.0):
                    raise ValueError(
                        f"{key} holds a BatchNorm gamma that is not 1 (max |gamma-1| = "
                        f"{np.max(np.abs(value - 1.0)):.3g}); the default model has no gamma. "
                        "Pass bn_scale=True here and to models.create to keep it."
                    )
            else:
                unmapped.append(f"{key} (timm)")
        elif leaf == "weight":
            kernel = value.T if kind == "dense" else conv_kernel_from_oihw(value)
            flat[("params", *path, "kernel")] = np.ascontiguousarray(kernel)
        elif leaf == "bias":
            flat[("params", *path, "bias")] = value
        else:
            unmapped.append(f"{key} (timm)")

    logits = flat.get(("params", "Logits", "kernel"))
    options: dict[str, Any] = {
        "num_classes": logits.shape[1] if logits is not None else 1000,
        "aux_logits": any(p[1] == "AuxLogits" for p in flat),
        "bn_scale": bn_scale,
    }
    return finish(flat, name, "timm", unmapped, **options)
