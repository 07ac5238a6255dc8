"""Reference networks and weights for the equivalence and restore tests: timm (PyTorch) and Keras
networks with random weights, and the convert -> evaluate round trip. torch and timm are imported
inside the functions (test-only references, skipped where absent)."""

import json
import subprocess
import sys

import numpy as np
import tensorflow as tf

from inception_flax import checkpoint, evaluation
from tests.helpers import ROOT, make_image_folder

CLASSES = ["ant", "bee", "cat", "dog", "eel"]


def randomized_timm(name, seed=0, random_gamma=False, **kwargs):
    """A timm network with random weights, biases and moving statistics (gamma 1 unless `random_gamma`)."""
    import timm
    import torch

    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False, **kwargs).eval()
    new = {}
    for key, value in model.state_dict().items():
        if key.endswith(("running_mean", "bias")):
            new[key] = torch.randn_like(value) * 0.1
        elif key.endswith("running_var"):
            new[key] = torch.rand_like(value) * 1.5 + 0.5
        elif key.endswith("bn.weight"):
            new[key] = torch.rand_like(value) + 0.5 if random_gamma else torch.ones_like(value)
        elif key.endswith("weight"):
            new[key] = torch.randn_like(value) * np.sqrt(2 / np.prod(value.shape[1:]))
        else:
            new[key] = value
    model.load_state_dict(new)
    return model


def run_timm(model, x):
    """A timm network on NHWC numpy images, as numpy (a tuple with the aux head in training mode)."""
    import torch

    with torch.no_grad():
        out = model(torch.from_numpy(x).permute(0, 3, 1, 2))
    return [o.numpy() for o in out] if isinstance(out, tuple) else out.numpy()


def randomize(keras_model, seed=0):
    """Random kernels and BatchNorm statistics in a Keras model, in place."""
    rng = np.random.default_rng(seed)
    for layer in keras_model.layers:
        current = layer.get_weights()
        if not current:
            continue
        if type(layer).__name__ == "BatchNormalization":
            beta, mean, var = current  # scale=False in both Keras Inception models
            new = [rng.normal(0, 0.1, beta.shape), rng.normal(0, 0.1, mean.shape), rng.uniform(0.5, 2.0, var.shape)]
        else:
            kernel = current[0]
            fan_in = np.prod(kernel.shape[:-1])
            new = [rng.normal(0, np.sqrt(2 / fan_in), kernel.shape)] + [
                rng.normal(0, 0.1, w.shape) for w in current[1:]
            ]
        layer.set_weights([w.astype(np.float32) for w in new])
    return keras_model


def run_tool(script, *args):
    """One of scripts/ (not train.py) to its end, output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def convert(source, model, path, output, *extra):
    """scripts/convert_weights.py."""
    proc = run_tool(
        "convert_weights.py", f"--source={source}", f"--model={model}", f"--input={path}", f"--output={output}", *extra
    )
    return proc


def check_evaluate_matches(weights_dir, tmp_path, predict_logits, image_size):
    """evaluate.py on generated images with known labels == metrics from the reference's own logits."""
    files = make_image_folder(tmp_path / "images", CLASSES, per_class=2)
    out = tmp_path / "eval.json"
    proc = run_tool(
        "evaluate.py",
        f"--checkpoint={weights_dir}",
        f"--dataset=folder:{tmp_path / 'images'}",
        "--split=val",
        f"--image_size={image_size}",
        "--batch_size=4",
        f"--json={out}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    [result] = json.loads(out.read_text())
    info = checkpoint.describe(str(weights_dir))
    protocol = evaluation.Protocol("central", **info.meta["eval_defaults"])
    views = np.stack([protocol.views(tf.constant(open(f, "rb").read()), image_size).numpy()[0] for f, _ in files])
    logits = predict_logits(views)
    offset = 1 if info.meta["background_class"] else 0
    labels = np.array([y for _, y in files]) + offset
    ranks = np.argsort(-logits, -1)
    assert result["num_examples"] == len(files) == 10
    assert result["top1"] == np.mean(ranks[:, 0] == labels)
    assert result["top5"] == np.mean([y in r[:5] for y, r in zip(labels, ranks, strict=True)])
    return result
