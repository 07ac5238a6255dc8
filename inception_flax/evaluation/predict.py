"""Top-k predictions for image files from a workdir or converted weights (`scripts/predict.py`)."""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import tensorflow as tf

from inception_flax import checkpoint, paths
from inception_flax.evaluation import labels
from inception_flax.evaluation.protocols import Protocol
from inception_flax.evaluation.runner import NATIVE_IMAGE_SIZE


def load_image(path: str, protocol: Protocol, size: int) -> np.ndarray:
    """The network input for one file: TensorFlow's decoders first, PIL for anything else it opens."""
    raw = paths.path(path).read_bytes()
    try:
        return protocol.views(tf.constant(raw), size).numpy()[0]
    except (tf.errors.InvalidArgumentError, tf.errors.UnknownError):
        pass
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(raw)) as image:
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, "PNG")
    except (UnidentifiedImageError, OSError):
        raise ValueError(f"cannot decode {path}: not an image TensorFlow or PIL can read") from None
    return protocol.views(tf.constant(buffer.getvalue()), size).numpy()[0]


def predict(
    checkpoint_path: str,
    files: Sequence[str],
    top_k: int = 5,
    step: int | None = None,
    ema: bool = True,
    image_size: int | None = None,
) -> list[dict[str, Any]]:
    """One entry per file: {"file", "top": [{"index", "name", "probability"}...]} or {"file", "error"}."""
    model, variables, info = checkpoint.load_with_info(checkpoint_path, step, ema)
    config = info.config or {}
    size = image_size or config.get("image_size") or NATIVE_IMAGE_SIZE
    eval_defaults = info.meta.get("eval_defaults", {}) if info.kind == "weights" else {}
    protocol = Protocol("central", **eval_defaults)
    background = bool(info.meta.get("background_class"))
    names = labels.class_names(model.num_classes, config.get("dataset"), config.get("data_dir") or None, background)

    results: list[dict[str, Any]] = []
    images, positions = [], []
    for path in files:
        try:
            images.append(load_image(path, protocol, size))
            positions.append(len(results))
            results.append({"file": path})
        except (OSError, ValueError) as e:
            results.append({"file": path, "error": str(e)})
    if images:
        apply = jax.jit(lambda v, x: jax.nn.softmax(model.apply(v, x, train=False)))
        probs = np.asarray(apply(variables, np.stack(images)))
        k = min(top_k, model.num_classes)
        for position, p in zip(positions, probs, strict=True):
            order = np.argsort(-p)[:k]
            top = [{"index": int(i), "name": names[i], "probability": float(p[i])} for i in order]
            results[position]["top"] = top
    return results
