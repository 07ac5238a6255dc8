"""Import the original TF-slim checkpoints (`inception_v3_2016_08_28`, `inception_v4_2016_09_09`,
`inception_resnet_v2_2016_08_30`).

    variables = weights.from_slim("inception_v4.ckpt", "inception_v4")            # 1001 classes
    variables = weights.from_slim(path, "inception_v4", drop_background=True)     # 1000 classes

TensorFlow is imported only inside `from_slim` (to read the checkpoint). slim's networks have
1001 outputs, output 0 being a background class; `drop_background=True` removes it. When the
checkpoint holds slim's `ExponentialMovingAverage` shadow variables, those are the values taken.

Matching: layers with fixed names (stem convs, logits, aux head, up-projections) are looked up by
name; the convs of a branch (`.../Branch_k/`) are matched in order, which slim encodes in their
names (`Conv2d_0a_1x1` < `Conv2d_0b_1x7` < ... < `Conv2d_1a_3x3`; ties broken by kernel, 1x3
before 3x1). This absorbs slim's irregular names (`Conv_1_0c_5x5`, `Mixed_6a/.../Conv2d_1a_1x1`
for a 3x3 conv). Every pair is then checked for kernel shape.
"""

from __future__ import annotations

import os
import re
from typing import Any

import numpy as np

from inception_flax import models
from inception_flax.weights.common import Path, Variables, finish

SLIM_SCOPES = {"inception_v3": "InceptionV3", "inception_v4": "InceptionV4", "inception_resnet_v2": "InceptionResnetV2"}
_LOGITS = {
    "inception_v3": "Logits/Conv2d_1c_1x1",
    "inception_v4": "Logits/Logits",
    "inception_resnet_v2": "Logits/Logits",
}
_AUX = {
    "inception_v3": {"Conv2d_2a_5x5": "Conv2d_2a_5x5", "Logits": "Conv2d_2b_1x1"},
    "inception_v4": {"Conv2d_2a_5x5": "Conv2d_2a", "Logits": "Aux_logits"},
    "inception_resnet_v2": {"Conv2d_2a_5x5": "Conv2d_2a_5x5", "Logits": "Logits"},
}
_MODEL_LEAVES = ("weights", "biases", "beta", "gamma", "moving_mean", "moving_variance")
_BRANCH = re.compile(r"(?:(Mixed_\w+?)_)?b(\d)_\w+")


def _block_scope(block: str) -> str:
    """Flax block name -> slim scope (Inception-ResNet-v2's slim.repeat scopes)."""
    m = re.fullmatch(r"Block(35|17|8)_(\d+)", block)
    if not m:
        return block
    kind, i = m.group(1), int(m.group(2))
    if kind == "8" and i == 10:
        return "Block8"  # the final, unscaled block8 outside the repeat
    return f"{ {'35': 'Repeat', '17': 'Repeat_1', '8': 'Repeat_2'}[kind] }/block{kind}_{i}"


def _slim_unit(name: str, path: tuple[str, ...]) -> tuple[str, str]:
    """("exact", slim scope) for a named layer, or ("group", slim branch scope) for a branch conv."""
    leaf = path[-1]
    m = _BRANCH.fullmatch(leaf)
    if m:
        block = m.group(1) or _block_scope(path[-2])
        return "group", f"{block}/Branch_{m.group(2)}"
    if path == ("Logits",):
        return "exact", _LOGITS[name]
    if path[0] == "AuxLogits":
        return "exact", f"AuxLogits/{_AUX[name].get(leaf, leaf)}"
    if leaf == "up":
        return "exact", f"{_block_scope(path[-2])}/Conv2d_1x1"
    return "exact", leaf  # stem convs and Conv2d_7b_1x1 sit at the top of slim's scope


def _order(scope: str) -> tuple[int, str, str]:
    """Creation order of a conv inside a slim branch, read from its name."""
    m = re.search(r"_(\d)([a-z])_(\d+x\d+)$", scope)
    return (int(m.group(1)), m.group(2), m.group(3)) if m else (-1, "", scope)


class _Reader:
    """Values by slim name (relative to the network scope), preferring EMA shadows; tracks what is used."""

    def __init__(self, path: str, scope: str):
        import tensorflow as tf  # only here: the rest of inception_flax.weights stays TF-free

        try:
            self._reader = tf.train.load_checkpoint(path)
        except Exception as e:  # a missing or truncated file: TF's message names the file
            raise ValueError(f"Cannot read a TF checkpoint at {path}: {e}") from None
        shapes = self._reader.get_variable_to_shape_map()
        self.prefix = f"{scope}/"
        self.names = {n[len(self.prefix) :] for n in shapes if n.startswith(self.prefix)}
        model_vars = [n for n in shapes if n.rsplit("/", 1)[-1] in _MODEL_LEAVES]
        if not any(n.startswith(self.prefix) for n in model_vars):
            tops = sorted({n.split("/", 1)[0] for n in model_vars})
            raise ValueError(f"{path} holds no {scope}/ variables (it holds {tops}): not this network.")
        self.model_vars = {n[len(self.prefix) :] for n in model_vars if n.startswith(self.prefix)}
        self.used: set[str] = set()

    def has(self, name: str) -> bool:
        return name in self.names

    def get(self, name: str) -> np.ndarray:
        self.used.add(name)
        shadow = f"{name}/ExponentialMovingAverage"
        full = self.prefix + (shadow if shadow in self.names else name)
        try:
            return np.asarray(self._reader.get_tensor(full), np.float32)
        except Exception as e:  # tf.errors.DataLossError & co. for a truncated data file
            raise ValueError(f"Cannot read {full} from the checkpoint (damaged or truncated file?): {e}") from None

    def conv_scopes(self) -> list[str]:
        return [n.removesuffix("/weights") for n in self.model_vars if n.endswith("/weights")]


def from_slim(path: str | os.PathLike, name: str, *, drop_background: bool = False) -> Variables:
    """Flax variables for `models.create(name, num_classes=1001 (1000 with drop_background), ...)`.

    `path` is the checkpoint prefix (e.g. `inception_v4.ckpt`, as in slim's tarballs). The aux head
    is imported when the checkpoint has one (create the model with `aux_logits=True` then).
    """
    models.check_name(name)
    if name not in SLIM_SCOPES:
        raise ValueError(f"TF-slim released no {name}; from_slim supports {', '.join(SLIM_SCOPES)}.")
    reader = _Reader(os.fspath(path), SLIM_SCOPES[name])
    if not reader.has(f"{_LOGITS[name]}/weights"):
        raise ValueError(f"{path} has no {SLIM_SCOPES[name]}/{_LOGITS[name]}/weights: not a full {name} checkpoint.")
    num_classes = reader.get(f"{_LOGITS[name]}/weights").shape[-1] - int(drop_background)
    aux = any(n.startswith("AuxLogits/") for n in reader.model_vars)
    layers = models.trace_layers(models.create(name, num_classes=num_classes, aux_logits=aux))

    groups: dict[str, list[str]] = {}
    for scope in reader.conv_scopes():
        groups.setdefault(scope.rsplit("/", 1)[0], []).append(scope)
    flax_groups: dict[str, list[models.LayerInfo]] = {}
    units: list[tuple[models.LayerInfo, str]] = []
    for layer in layers:
        how, scope = _slim_unit(name, layer.path)
        if how == "group":
            flax_groups.setdefault(scope, []).append(layer)
        else:
            units.append((layer, scope))
    problems = []
    for group, members in flax_groups.items():
        found = sorted(groups.get(group, []), key=_order)
        if len(found) != len(members):
            problems.append(f"{group}: {len(found)} convs in the checkpoint, {len(members)} in {name}")
            continue
        units += list(zip(members, found, strict=True))
    if problems:
        raise ValueError(f"{path} does not fit {name}: " + "; ".join(problems))

    flat: dict[Path, np.ndarray] = {}
    for layer, scope in units:
        _convert(reader, layer, scope, drop_background, flat)
    unmapped = sorted(f"{v} (slim)" for v in reader.model_vars - reader.used)
    return finish(flat, name, "TF-slim", unmapped, num_classes=num_classes, aux_logits=aux)


def _convert(reader: _Reader, layer: Any, scope: str, drop_background: bool, flat: dict[Path, np.ndarray]) -> None:
    kernel_name = f"{scope}/weights"
    if not reader.has(kernel_name):
        raise ValueError(f"The checkpoint has no {reader.prefix}{kernel_name} for {'/'.join(layer.path)}.")
    kernel = reader.get(kernel_name)
    bias = None
    if layer.kind == "dense":
        kernel = kernel.reshape(kernel.shape[-2:])  # slim's v3 logits are 1x1 convs
        bias = reader.get(f"{scope}/biases")
        if drop_background:
            kernel, bias = kernel[:, 1:], bias[1:]
    if tuple(kernel.shape) != layer.kernel_shape:
        raise ValueError(
            f"{reader.prefix}{kernel_name} has shape {kernel.shape}, {'/'.join(layer.path)} needs {layer.kernel_shape}."
        )
    if layer.kind == "conv_bn":
        flat[("params", *layer.path, "conv", "kernel")] = kernel
        flat[("params", *layer.path, "bn", "bias")] = reader.get(f"{scope}/BatchNorm/beta")
        flat[("batch_stats", *layer.path, "bn", "mean")] = reader.get(f"{scope}/BatchNorm/moving_mean")
        flat[("batch_stats", *layer.path, "bn", "var")] = reader.get(f"{scope}/BatchNorm/moving_variance")
        gamma = f"{scope}/BatchNorm/gamma"
        if reader.has(gamma) and not np.allclose(reader.get(gamma), 1.0):
            raise ValueError(f"{reader.prefix}{gamma} is not 1; the networks here have no BatchNorm gamma.")
        return
    if bias is None:
        bias = reader.get(f"{scope}/biases")
    flat[("params", *layer.path, "kernel")] = np.ascontiguousarray(kernel)
    flat[("params", *layer.path, "bias")] = bias
