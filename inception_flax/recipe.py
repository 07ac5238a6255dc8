"""What a config's recipe will do, in steps, images and epochs, without data or compiling.

`resolve` turns a config and the size of its train split into a `Recipe`: steps per epoch, total
steps, the learning-rate schedule, the per-step decays at this batch and the loss's numbers, each
derived here once. `summarize` is what `scripts/schedule.py` prints (and writes as JSON and a
plot) and what `scripts/train.py` logs at start. Imports no TensorFlow.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from inception_flax import optim

# Training images of the datasets whose size is known without reading them (split "train").
TRAIN_IMAGES = {"imagenet2012": 1_281_167, "inception_digits": 1_497}


def known_train_images(config: ml_collections.ConfigDict) -> int | None:
    """The train split's size for a known dataset, or None (then it must be read or given)."""
    if config.train_split != "train":
        return None
    return TRAIN_IMAGES.get(config.dataset)


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A config's recipe resolved for one train split: every number derived from the config, once.

    Built by `resolve` (the preflight does it for a launch; `scripts/schedule.py` and the benchmarks
    too). The loop, the jitted step, the input pipeline and the reports take these values; no other
    module derives them from the config again.
    """

    train_images: int
    batch_size: int
    steps_per_epoch: int  # global steps per epoch (the last partial batch is dropped)
    total_steps: int
    lr_schedule: str  # the schedule's name (config.lr_schedule)
    learning_rate: optax.Schedule = dataclasses.field(compare=False, repr=False)  # step -> rate
    peak_learning_rate: float  # the schedule's highest rate (tpu_v4: above the config's by the stairs given back)
    cold_learning_rate: float  # per step at this batch; 0 without a cold phase
    ema_decay: float  # the weight EMA's decay per step at this batch
    ema_warmup: bool  # TF's min(decay, (1 + t) / (10 + t))
    bn_momentum: float  # BatchNorm's moving-statistics momentum per step at this batch
    # The loss (the paper's): label smoothing, auxiliary head weight, slim's L2.
    label_smoothing: float
    aux_loss_weight: float
    weight_decay: float
    weight_decay_biases: bool

    def ema_decay_at(self, updates: jnp.ndarray) -> jnp.ndarray:
        """The weight-EMA decay of the update that makes `updates` steps in total (1 for the first)."""
        return optim.warm_decay(self.ema_decay, self.ema_warmup, updates)

    def epoch_start(self, epoch: int) -> int:
        """The first step of `epoch` as the schedule counts epochs ("tpu_v4": train_images / batch steps)."""
        if self.lr_schedule == "tpu_v4":
            return -(-epoch * self.train_images // self.batch_size)
        return epoch * self.steps_per_epoch

    def window_epochs(self, decay: float) -> float:
        """An averaging window, 1 / (1 - decay) steps, in epochs."""
        return math.inf if decay >= 1.0 else self.batch_size / (1.0 - decay) / self.train_images


def resolve(config: ml_collections.ConfigDict, train_images: int, split: str = "The train split") -> Recipe:
    """`config`'s recipe on a train split of `train_images` images (named `split` in errors).
    ValueError where the split cannot fill one global batch or a decay's window is shorter than one step."""
    batch = config.batch_size
    per_epoch = train_images // batch
    if per_epoch == 0:
        raise ValueError(f"{split} has {train_images} examples, fewer than one global batch of {batch}.")
    total = config.num_train_steps if config.num_train_steps > 0 else int(config.num_epochs * per_epoch)
    decays = {}
    for name in ("ema_decay", "bn_momentum"):
        try:
            decays[name] = optim.per_step_decay(config[name], batch, config.decay_batch_size)
        except ValueError as e:
            raise ValueError(f"config.{name}={config[name]}: {e}") from None
    schedule = optim.learning_rate_schedule(config, per_epoch, train_images)
    return Recipe(
        train_images=train_images,
        batch_size=batch,
        steps_per_epoch=per_epoch,
        total_steps=total,
        lr_schedule=config.lr_schedule,
        learning_rate=schedule,
        peak_learning_rate=optim.highest_learning_rate(config, schedule, train_images),
        cold_learning_rate=config.cold_learning_rate * batch / config.base_batch_size if config.cold_epochs else 0.0,
        ema_decay=decays["ema_decay"],
        ema_warmup=config.ema_warmup,
        bn_momentum=decays["bn_momentum"],
        label_smoothing=config.label_smoothing,
        aux_loss_weight=config.aux_loss_weight,
        weight_decay=config.weight_decay,
        weight_decay_biases=config.weight_decay_biases,
    )


def summarize(config: ml_collections.ConfigDict, r: Recipe) -> dict[str, Any]:
    """The schedule and averaging windows of `config` as resolved in `r` (what a person reads)."""
    starts = [r.epoch_start(e) for e in range(r.total_steps // r.steps_per_epoch + 1)]
    return {
        "dataset": config.dataset,
        "train_images": r.train_images,
        "batch_size": r.batch_size,
        "steps_per_epoch": r.steps_per_epoch,
        "total_steps": r.total_steps,
        "total_images": r.total_steps * r.batch_size,
        "epochs": r.total_steps / r.steps_per_epoch,
        "lr_schedule": r.lr_schedule,
        "peak_learning_rate": r.peak_learning_rate,
        "cold_learning_rate": r.cold_learning_rate,
        "cold_epochs": config.cold_epochs,
        "warmup_epochs": config.warmup_epochs,
        "lr_decay": f"x{config.lr_decay_rate:g} every {config.lr_decay_epochs:g} epochs (staircase, "
        + ("counted from the end of warm-up)" if r.lr_schedule == "linear_warmup" else "counted from step 0)"),
        "final_learning_rate": float(r.learning_rate(max(r.total_steps - 1, 0))),
        "learning_rate_per_epoch": [float(r.learning_rate(t)) for t in starts],
        "ema_decay_per_step": r.ema_decay,
        "ema_warmup": r.ema_warmup,
        "ema_window_epochs": r.window_epochs(r.ema_decay),
        "ema_batch_stats": config.ema_batch_stats,
        "bn_momentum_per_step": r.bn_momentum,
        "bn_window_epochs": r.window_epochs(r.bn_momentum),
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


def plot(config: ml_collections.ConfigDict, r: Recipe, path: str, title: str = "") -> None:
    """PNG of the learning rate against epoch, for `config` resolved as `r`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.unique(np.linspace(0, max(r.total_steps - 1, 0), 2000).astype(int))
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.plot(steps / r.steps_per_epoch, [float(r.learning_rate(int(t))) for t in steps], lw=1.4)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.set_title(title or f"{config.model}, global batch {config.batch_size}", fontsize=10)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def report(
    config: ml_collections.ConfigDict, train_images: int, json_path: str = "", plot_path: str = ""
) -> dict[str, Any]:
    """`summarize`, written as JSON and plotted where paths are given (what scripts/schedule.py does)."""
    r = resolve(config, train_images)
    s = summarize(config, r)
    if json_path:
        with open(json_path, "w") as f:
            json.dump(s, f, indent=1)
    if plot_path:
        plot(config, r, plot_path)
    return s
