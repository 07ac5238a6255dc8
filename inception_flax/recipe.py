"""What a config's recipe will do, in steps, images and epochs, without data or compiling.

`summarize` is what `scripts/schedule.py` prints (and writes as JSON and a plot) and what
`scripts/train.py` logs at start; `check_resume` refuses to resume a workdir whose recorded recipe
this config would silently reinterpret. Imports no TensorFlow.
"""

from __future__ import annotations

import json
import math
from typing import Any

import ml_collections
import numpy as np

from inception_flax import optim

# Training images of the datasets whose size is known without reading them (split "train").
TRAIN_IMAGES = {"imagenet2012": 1_281_167, "inception_digits": 1_497}


def known_train_images(config: ml_collections.ConfigDict) -> int | None:
    """The train split's size for a known dataset, or None (then it must be read or given)."""
    if config.train_split != "train":
        return None
    return TRAIN_IMAGES.get(config.dataset)


def steps_per_epoch(config: ml_collections.ConfigDict, train_images: int) -> int:
    """Global steps in one epoch, as the input pipeline counts them (the last partial batch is dropped)."""
    return train_images // config.batch_size


def epoch_start(config: ml_collections.ConfigDict, epoch: int, steps_per_epoch: int, train_images: int) -> int:
    """The first step of `epoch` as the schedule counts epochs ("tpu_v4": train_images / batch steps)."""
    if config.lr_schedule == "tpu_v4":
        return -(-epoch * train_images // config.batch_size)
    return epoch * steps_per_epoch


def window_epochs(decay: float, batch_size: int, train_images: int) -> float:
    """The averaging window 1 / (1 - decay) steps, in epochs."""
    return math.inf if decay >= 1.0 else batch_size / (1.0 - decay) / train_images


def summarize(config: ml_collections.ConfigDict, train_images: int) -> dict[str, Any]:
    """The schedule and averaging windows of `config` on a train split of `train_images` images."""
    per_epoch = steps_per_epoch(config, train_images)
    if per_epoch == 0:
        raise ValueError(f"{train_images} training images are fewer than one global batch of {config.batch_size}.")
    total = config.num_train_steps if config.num_train_steps > 0 else int(config.num_epochs * per_epoch)
    schedule = optim.learning_rate_schedule(config, per_epoch, train_images)
    epochs = total / per_epoch
    starts = [epoch_start(config, e, per_epoch, train_images) for e in range(total // per_epoch + 1)]
    ema = optim.per_step_decay(config.ema_decay, config)
    bn = optim.bn_momentum(config)
    scale = config.batch_size / config.base_batch_size
    return {
        "dataset": config.dataset,
        "train_images": train_images,
        "batch_size": config.batch_size,
        "steps_per_epoch": per_epoch,
        "total_steps": total,
        "total_images": total * config.batch_size,
        "epochs": epochs,
        "lr_schedule": config.lr_schedule,
        "peak_learning_rate": optim.highest_learning_rate(config, per_epoch, train_images),
        "cold_learning_rate": config.cold_learning_rate * scale if config.cold_epochs else 0.0,
        "cold_epochs": config.cold_epochs,
        "warmup_epochs": config.warmup_epochs,
        "lr_decay": f"x{config.lr_decay_rate:g} every {config.lr_decay_epochs:g} epochs (staircase, "
        + ("counted from the end of warm-up)" if config.lr_schedule == "linear_warmup" else "counted from step 0)"),
        "final_learning_rate": float(schedule(max(total - 1, 0))),
        "learning_rate_per_epoch": [float(schedule(t)) for t in starts],
        "ema_decay_per_step": ema,
        "ema_warmup": config.ema_warmup,
        "ema_window_epochs": window_epochs(ema, config.batch_size, train_images),
        "ema_batch_stats": config.ema_batch_stats,
        "bn_momentum_per_step": bn,
        "bn_window_epochs": window_epochs(bn, config.batch_size, train_images),
    }


def format_summary(s: dict[str, Any]) -> str:
    """A few lines a person reads before launching."""
    lrs = s["learning_rate_per_epoch"]
    shown = ", ".join(f"{e}: {lr:.4g}" for e, lr in enumerate(lrs) if e < 6 or e % 10 == 0 or e == len(lrs) - 1)
    warm = (
        (f"{s['cold_epochs']:g} epoch(s) at {s['cold_learning_rate']:.4g}, then " if s["cold_epochs"] else "")
        + f"{s['warmup_epochs']:g} epoch(s) {'in per-epoch stairs' if s['lr_schedule'] == 'tpu_v4' else 'linear'} to the peak"
    )
    return "\n".join(
        [
            f"{s['dataset']}: {s['train_images']:,} train images, global batch {s['batch_size']}: "
            f"{s['steps_per_epoch']:,} steps per epoch",
            f"{s['total_steps']:,} steps = {s['total_images']:,} images = {s['epochs']:.2f} epochs",
            f"learning rate ({s['lr_schedule']}): peak {s['peak_learning_rate']:.4g}; warm-up {warm}; {s['lr_decay']}; "
            f"final {s['final_learning_rate']:.4g}",
            f"learning rate at epoch boundaries: {shown}",
            f"weight EMA: {s['ema_decay_per_step']:.6g} per step{' (after TF warm-up)' if s['ema_warmup'] else ''}"
            f" = a window of {s['ema_window_epochs']:.3g} epochs"
            f"{'; averages the BatchNorm statistics too' if s['ema_batch_stats'] else ''}",
            f"BatchNorm statistics: momentum {s['bn_momentum_per_step']:.6g} per step = a window of "
            f"{s['bn_window_epochs']:.3g} epochs",
        ]
    )


def plot(config: ml_collections.ConfigDict, s: dict[str, Any], path: str, title: str = "") -> None:
    """PNG of the learning rate against epoch, for `config` and its `summarize` result `s`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    schedule = optim.learning_rate_schedule(config, s["steps_per_epoch"], s["train_images"])
    steps = np.unique(np.linspace(0, max(s["total_steps"] - 1, 0), 2000).astype(int))
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.plot(steps / s["steps_per_epoch"], [float(schedule(int(t))) for t in steps], lw=1.4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(title or f"{config.model}, global batch {config.batch_size}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ----------------------------------------------------------------------- resuming old workdirs
# Workdirs written before the recipe became per-image record configs without these fields; their
# meaning then was: decays per step at any batch, no cold phase, no EMA warm-up.
_IMPLIED_BEFORE = {
    "decay_batch_size": 0,
    "cold_epochs": 0.0,
    "ema_warmup": False,
    "ema_batch_stats": False,
    # Added 2026-12-03: the schedule's shape and BatchNorm's groups before them.
    "lr_schedule": "linear_warmup",
    "bn_group_size": 0,
}


def implied_before(settings: dict[str, Any]) -> dict[str, Any]:
    """The values a config recorded before the per-image recipe implied for the fields it lacks
    (`cold_learning_rate` did nothing then: taken as `settings` has it)."""
    return {**_IMPLIED_BEFORE, "cold_learning_rate": settings.get("cold_learning_rate")}


_RECIPE = (
    "batch_size",
    "base_batch_size",
    "learning_rate",
    "lr_decay_rate",
    "lr_decay_epochs",
    "cold_epochs",
    "warmup_epochs",
    "ema_decay",
    "bn_momentum",
    "decay_batch_size",
    "ema_warmup",
)


def check_resume(recorded: dict[str, Any] | None, config: ml_collections.ConfigDict) -> list[str]:
    """The `--config.x=y` flags a workdir written before the per-image recipe needs to resume as
    it was trained; empty when `config` already says that (or the workdir is newer)."""
    if not recorded or "decay_batch_size" in recorded:
        return []
    then = {**_IMPLIED_BEFORE, **recorded}
    return [f"--config.{k}={then[k]}" for k in _RECIPE if k in then and then[k] != config[k]]


def report(
    config: ml_collections.ConfigDict, train_images: int, json_path: str = "", plot_path: str = ""
) -> dict[str, Any]:
    """`summarize`, written as JSON and plotted where paths are given (what scripts/schedule.py does)."""
    s = summarize(config, train_images)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(s, f, indent=1)
    if plot_path:
        plot(config, s, plot_path)
    return s
