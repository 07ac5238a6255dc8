"""Shared test utilities."""

import math
import os
import subprocess
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import inception_resnet_v1
from inception_flax import checkpoint, metrics_log, models

ROOT = Path(__file__).resolve().parents[1]


def random_variables(model, image_size: int, seed: int = 0) -> dict:
    """He-scaled random weights and random BatchNorm statistics for `model`, without `model.init`.

    `model.init` compiles one RNG kernel per parameter (~20 s on 2 CPU cores); tests that only need
    *some* weights build them from the abstract shapes with numpy instead.
    """
    rng = np.random.default_rng(seed)
    abstract = models.abstract_variables(model, image_size)

    def fill(path, leaf):
        name = path[-1].key
        if name == "kernel":
            fan_in = math.prod(leaf.shape[:-1])
            return jnp.asarray(rng.normal(0, math.sqrt(2 / fan_in), leaf.shape), jnp.float32)
        if name == "var":
            return jnp.asarray(rng.uniform(0.5, 2.0, leaf.shape), jnp.float32)
        if name == "scale":
            return jnp.asarray(rng.uniform(0.5, 1.5, leaf.shape), jnp.float32)
        return jnp.asarray(rng.normal(0, 0.1, leaf.shape), jnp.float32)

    return {k: jax.tree_util.tree_map_with_path(fill, abstract[k]) for k in ("params", "batch_stats")}


def max_rel_error(out, ref) -> float:
    """max |out - ref| / max |ref|: one number per comparison, insensitive to near-zero logits."""
    out, ref = np.asarray(out, np.float64), np.asarray(ref, np.float64)
    return float(np.abs(out - ref).max() / np.abs(ref).max())


def make_image_folder(root, classes, per_class: int, split: str = "val", seed: int = 0) -> list[tuple[str, int]]:
    """Smooth random JPEGs in `root/<split>/<class>/` (and one per class in train/); returns (file, label)."""
    import io
    from pathlib import Path

    from PIL import Image
    from scipy.ndimage import zoom

    rng = np.random.default_rng(seed)
    files = []
    for label, name in enumerate(classes):
        for s, n in ((split, per_class), ("train", 1)):
            folder = Path(root) / s / name
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                low = rng.uniform(0, 255, (6, 8, 3))
                image = np.clip(zoom(low, (260 / 6, 330 / 8, 1), order=3), 0, 255).astype(np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, "JPEG", quality=95)
                path = folder / f"{name}_{i}.jpg"
                path.write_bytes(buffer.getvalue())
                if s == split:
                    files.append((str(path), label))
    return files


IMAGENET_SYNSETS = ["n01440764", "n01443537", "n01484850"]  # real synsets: labels 0, 1, 2


def make_imagenet_archives(manual) -> None:
    """A miniature ILSVRC2012_img_train.tar (4 JPEGs for each of 3 real synsets, one inner tar per
    synset) and ILSVRC2012_img_val.tar (5 JPEGs named as the real ones) in the folder `manual`."""
    import io
    import tarfile
    from pathlib import Path

    from PIL import Image

    def jpeg(seed):
        pixels = (np.random.default_rng(seed).random((40, 48, 3)) * 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "JPEG")
        return buf.getvalue()

    def add(tar, name, payload):
        info = tarfile.TarInfo(name)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))

    manual = Path(manual)
    manual.mkdir(parents=True, exist_ok=True)
    with tarfile.open(manual / "ILSVRC2012_img_train.tar", "w") as train:
        for i, synset in enumerate(IMAGENET_SYNSETS):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as sub:
                for j in range(4):
                    add(sub, f"{synset}_{j}.JPEG", jpeg(10 * i + j))
            add(train, f"{synset}.tar", inner.getvalue())
    with tarfile.open(manual / "ILSVRC2012_img_val.tar", "w") as val:
        for k in range(1, 6):
            add(val, f"ILSVRC2012_val_{k:08d}.JPEG", jpeg(100 + k))


# ------------------------------------------------------------------ tiny training runs
def tiny_config(tfds_dir, **overrides):
    """Inception-ResNet-v1 runlocal at batch 8 for 6 steps on the digits in `tfds_dir`."""
    c = inception_resnet_v1.get_config("runlocal")
    c.data_dir = tfds_dir
    c.batch_size = c.base_batch_size = 8
    c.num_train_steps = 6
    c.log_every_steps = 1
    c.eval_every_steps = 6
    c.checkpoint_every_steps = 2
    c.eval_split = "test[:20]"
    c.shuffle_buffer = 200
    for k, v in overrides.items():
        setattr(c, k, v)
    return c


def overrides_as_flags(tfds_dir, **overrides):
    """The same tiny config on the command line."""
    c = tiny_config(tfds_dir, **overrides)
    base = inception_resnet_v1.get_config("runlocal")
    flags = [f"--config={ROOT / 'configs' / 'inception_resnet_v1.py'}:runlocal"]
    for key, value in c.items():
        if key != "model_options" and base[key] != value:
            flags.append(f"--config.{key}={value}")
    return flags


def run_script(args, env_extra=None, script="train.py", **kwargs):
    """scripts/`script` with `args` in a subprocess (stdout and stderr together)."""
    env = {**os.environ, **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / script), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def loss_history(workdir) -> np.ndarray:
    """The mean training loss at each log step, as the run wrote it to metrics.jsonl."""
    return np.array([row["train_loss"] for row in metrics_log.read(str(workdir)) if "train_loss" in row])


def finished(proc, timeout: float = 900) -> str:
    """Waits for a run_script process; its output, asserting it succeeded."""
    out, _ = proc.communicate(timeout=timeout)
    # A crash ends with Python's list of extension modules: show what came before it too.
    assert proc.returncode == 0, out.split("Extension modules:")[0][-3000:]
    return out


def restore_state(workdir, step):
    """Every array of a saved training state, as numpy (whatever topology saved it)."""
    path = Path(checkpoint.checkpoint_dir(str(workdir))) / str(step) / "state"
    names = ("step", "params", "batch_stats", "opt_state", "ema_params", "rng")
    return checkpoint._restore_subtrees(str(path), names)


def counting(monkeypatch, owner, name):
    """Replaces owner.name by a wrapper that counts its calls."""
    calls, original = [], getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


class TinyNet(nn.Module):
    """A network with the train step's calling convention, small enough to compile in a second."""

    num_classes: int = 3

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(jnp.mean(x, axis=(1, 2)))
        return nn.Dense(self.num_classes)(x)
