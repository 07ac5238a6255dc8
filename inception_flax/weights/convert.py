"""Released weights (timm, Keras, TF-slim) -> a converted-weights directory that `checkpoint.load` reads.

    convert("slim", "inception_v4", "inception_v4.ckpt", "weights/inception_v4_slim")

The directory records the model, its options and how the publisher evaluated the weights
(`eval_defaults`), so `scripts/evaluate.py --checkpoint DIR` reproduces their protocol by default.
"""

from __future__ import annotations

import io
import os
from typing import Any

from inception_flax import models
from inception_flax.weights.common import Variables, model_options
from inception_flax.weights.keras import from_keras, keras_model
from inception_flax.weights.slim import from_slim
from inception_flax.weights.timm import TIMM_MODEL_OPTIONS, from_timm

SOURCES = ("timm", "keras", "slim")

# How each publisher measured its top-1 (timm: pretrained_cfg of the `.tf_in1k` weights; slim and
# Keras: slim's eval, a central 87.5% crop resized bilinearly).
SLIM_EVAL = {"crop_fraction": 0.875, "interpolation": "bilinear", "resize": "fraction"}
TIMM_EVAL = {"crop_fraction": 0.875, "interpolation": "bicubic", "resize": "shorter_side"}
TIMM_CROP_FRACTION = {"inception_resnet_v2": 0.8975}


def read_source(source: str, name: str, path: str, drop_background: bool = False) -> Variables:
    """The released file at `path` as Flax variables for `name` (checked tensor by tensor)."""
    models.check_name(name)
    if source not in SOURCES:
        raise ValueError(f"Unknown source {source!r}; choose one of {', '.join(SOURCES)}.")
    if source != "slim" and drop_background:
        raise ValueError("--drop_background applies to TF-slim's 1001-class checkpoints only.")
    from inception_flax import paths  # etils: only when reading a file

    path = paths.resolve(path)
    if source == "slim":  # TensorFlow reads a checkpoint in a bucket itself
        if not (paths.path(path).exists() or paths.path(f"{path}.index").exists()):
            raise FileNotFoundError(f"No TF checkpoint at {path} (give the prefix, e.g. inception_v4.ckpt).")
        return from_slim(path, name, drop_background=drop_background)
    if not paths.path(path).is_file():
        raise FileNotFoundError(f"No file at {path}.")
    try:  # a damaged or foreign file fails inside the reader; say which file and why
        if source == "keras":
            loaded = _keras_model(path, name)
        elif path.endswith(".safetensors"):
            from safetensors.numpy import load

            loaded = load(paths.path(path).read_bytes())
        else:
            loaded = _torch_state_dict(paths.path(path).read_bytes(), path)
    except (ValueError, ImportError):
        raise
    except Exception as e:
        raise ValueError(f"Cannot read {path} as {source} weights: {type(e).__name__}: {e}") from None
    return from_keras(loaded, name) if source == "keras" else from_timm(loaded, name)


def _keras_model(path: str, name: str) -> Any:
    """Keras opens local files only: a file in a bucket is read into a temporary local copy, then removed."""
    from inception_flax import paths

    if not paths.is_url(path):
        return keras_model(path, name)
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, path.rsplit("/", 1)[-1])
        with open(local, "wb") as f:
            f.write(paths.path(path).read_bytes())
        return keras_model(local, name)


def _torch_state_dict(raw: bytes, path: str) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        raise ValueError(f"{path} is a torch file and torch is not installed; use the .safetensors file.") from None
    # weights_only: tensors only, no arbitrary unpickling.
    state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    return state.get("state_dict", state) if isinstance(state, dict) else state


def metadata(source: str, name: str, path: str, variables: Variables, drop_background: bool) -> dict[str, Any]:
    options = model_options(variables)
    if source == "timm":
        options |= TIMM_MODEL_OPTIONS.get(name, {})
        eval_defaults = {**TIMM_EVAL, "crop_fraction": TIMM_CROP_FRACTION.get(name, TIMM_EVAL["crop_fraction"])}
    else:
        eval_defaults = dict(SLIM_EVAL)
    return {
        "model": name,
        "options": options,
        "source": source,
        "input": os.fspath(path).rsplit("/", 1)[-1],
        # TF-slim's output 0 is "background"; ImageNet labels are then shifted by one.
        "background_class": source == "slim" and not drop_background,
        "eval_defaults": eval_defaults,
    }


def convert(source: str, name: str, path: str, output: str, drop_background: bool = False) -> dict[str, Any]:
    """Reads, checks and writes; returns the metadata written. Nothing is written on any error."""
    from inception_flax import checkpoint, paths  # orbax, etils: only when writing

    out = paths.path(output)
    if out.exists() and any(out.iterdir()):
        raise FileExistsError(f"{output} exists and is not empty; nothing was written.")
    variables = read_source(source, name, os.fspath(path), drop_background)
    meta = metadata(source, name, path, variables, drop_background)
    checkpoint.save_weights(output, variables, meta)
    return meta
