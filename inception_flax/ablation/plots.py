"""Figures of a study: validation error against epoch (one thin line per seed, the mean thick),
time to the target error (Kaplan-Meier), training curves, and the learning-rate pilot.

Readable at README width: 100 dpi, fonts of 9 pt or more, errors in % on a log axis (the curves
run from chance, 90%, down to a few %), chance drawn.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter

from inception_flax import paths
from inception_flax.ablation.stats import CHANCE_ERROR, Point, kaplan_meier, series

DPI = 100


def save(fig, path: str, dpi: int | None = DPI) -> None:
    """Writes `fig` as PNG to `path`, local or in a bucket."""
    with paths.path(path).open("wb") as f:
        fig.savefig(f, format="png", dpi=dpi)


FONT = 9
COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _epochs(points: Sequence[Point], arm: str) -> dict[int, float]:
    return {p.step: p.epoch for p in points if p.arm == arm}


def _log_percent(ax) -> None:
    """A log axis of errors in % with plain tick labels (1, 2, 5, 10, 20, 50, 90)."""
    ax.set_yscale("log")
    ax.yaxis.set_major_locator(FixedLocator([1, 2, 5, 10, 20, 50, 90]))
    ax.yaxis.set_major_formatter(ScalarFormatter())
    ax.yaxis.set_minor_formatter(NullFormatter())


def _error_axes(ax, target: float | None = None) -> None:
    ax.axhline(100 * CHANCE_ERROR, color="gray", ls=":", lw=1, label="chance (90%)")
    if target is not None:
        ax.axhline(100 * target, color="gray", ls="--", lw=1, label=f"target ({100 * target:.0f}%)")
    _log_percent(ax)
    ax.set_xlabel("epoch", fontsize=FONT + 1)
    ax.set_ylabel("validation top-1 error (%)", fontsize=FONT + 1)
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3, which="both")


def _curves(ax, points: Sequence[Point], arm: str, color: str, label: str) -> None:
    runs = series(points, arm, "val", "top1_error")
    epoch = _epochs(points, arm)
    for steps, values in runs.values():
        ax.plot([epoch[s] for s in steps], 100 * values, color=color, lw=0.7, alpha=0.45)
    steps = min((s for s, _ in runs.values()), key=len)  # a common grid: the shortest run's evaluations
    mean = np.mean([v[: len(steps)] for _, v in runs.values()], axis=0)
    ax.plot([epoch[s] for s in steps], 100 * mean, color=color, lw=2, label=f"{label} (mean of {len(runs)})")


def curves_figure(points: Sequence[Point], arms: Sequence[str], path: str, title: str, target: float) -> str:
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    for i, arm in enumerate(arms):
        _curves(ax, points, arm, COLORS[i % len(COLORS)], arm)
    _error_axes(ax, target)
    ax.set_title(f"{title}\nthin: one seed; thick: mean over seeds", fontsize=FONT + 1)
    ax.legend(fontsize=FONT)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path


def time_to_target_figure(summaries: dict, arms: Sequence[str], length: float, target: float, path: str) -> str:
    """Kaplan-Meier: the fraction of each arm's runs not yet at the target after so many images."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, arm in enumerate(arms):
        s = summaries[arm]
        xs, ys = kaplan_meier(list(s.images.values()), list(s.reached.values()))
        xs, ys = np.append(xs, length), np.append(ys, ys[-1])
        style = ("-", "--", "-.", ":")[i % 4]  # arms that never reach the target overlap at 100%
        ax.step(xs / 1000, 100 * ys, where="post", color=COLORS[i % len(COLORS)], lw=1.8, ls=style, label=arm)
    ax.set_xlabel("training images (thousands); runs end at the right edge", fontsize=FONT + 1)
    ax.set_ylabel(f"runs not yet at {100 * target:.0f}% error (%)", fontsize=FONT + 1)
    ax.set_ylim(-3, 103)
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=FONT, ncol=2)
    ax.set_title(f"Time to {100 * target:.0f}% validation top-1 error (Kaplan-Meier)", fontsize=FONT + 1)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path


def training_figure(points: Sequence[Point], arms: Sequence[str], path: str) -> str:
    """Train-mode loss of every run: a run that diverged or 'died' stands out here."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for i, arm in enumerate(arms):
        epoch = _epochs(points, arm)
        for j, (steps, values) in enumerate(series(points, arm, "train", "loss").values()):
            color = COLORS[i % len(COLORS)]
            ax.plot([epoch[s] for s in steps], values, color=color, lw=0.8, alpha=0.7, label=arm if j == 0 else None)
    ax.axhline(np.log(10), color="gray", ls=":", lw=1, label="ln 10 (uniform)")
    ax.set_yscale("log")
    ax.set_xlabel("epoch", fontsize=FONT + 1)
    ax.set_ylabel("training loss (label smoothing 0.1)", fontsize=FONT + 1)
    ax.tick_params(labelsize=FONT)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=FONT, ncol=2)
    ax.set_title("Training loss of every run (one line per seed)", fontsize=FONT + 1)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path


def pilot_figure(
    points: Sequence[Point], grid: dict[str, dict[float, str]], chosen: dict[str, float], path: str
) -> str:
    """One panel per arm: the validation curve at each pilot rate; the chosen one drawn thick."""
    arms = list(grid)
    rates = sorted({r for g in grid.values() for r in g})
    cols = min(4, len(arms))
    rows = -(-len(arms) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.4 * rows), sharex=True, sharey=True, squeeze=False)
    for ax, arm in zip(axes.flat, arms, strict=False):
        for rate, run in sorted(grid[arm].items()):
            epoch = _epochs(points, run)
            for steps, values in series(points, run, "val", "top1_error").values():
                lw = 2.2 if rate == chosen[arm] else 1.0
                ax.plot([epoch[s] for s in steps], 100 * values, color=COLORS[rates.index(rate)], lw=lw)
        ax.axhline(100 * CHANCE_ERROR, color="gray", ls=":", lw=1)
        _log_percent(ax)
        ax.set_title(f"{arm} (chosen {chosen[arm]:g})", fontsize=FONT + 1)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3, which="both")
    for ax in axes.flat[len(arms) :]:
        ax.axis("off")
    for ax in axes[:, 0]:
        ax.set_ylabel("val. top-1 error (%)", fontsize=FONT)
    for ax in axes[-1, :]:
        ax.set_xlabel("epoch", fontsize=FONT)
    handles = [Line2D([], [], color=COLORS[i], label=f"{r:g}") for i, r in enumerate(rates)]
    handles.append(Line2D([], [], color="gray", ls=":", label="chance"))
    fig.legend(handles=handles, title="lr per 32", fontsize=FONT, title_fontsize=FONT, loc="center right")
    fig.suptitle(
        "Learning-rate pilot, one line per seed: thick = the rate chosen (lowest final validation error)", fontsize=10
    )
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    save(fig, path)
    plt.close(fig)
    return path


def figure_name(out: str, a: str, b: str) -> str:
    return paths.join(out, f"{a}_vs_{b}.png")


# (metric in metrics.jsonl, axis label, log scale): what a run's health is read from
HEALTH = (
    ("eval_top1_error", "val. top-1 error (%)", True),
    ("train_top1", "training top-1 accuracy (%)", False),
    ("train_grad_norm", "gradient norm", True),
    ("train_l2_loss", "L2 term of the loss (sum of w^2 / 2)", True),
)


def health_figure(runs: dict[str, list[dict]], path: str, title: str) -> str:
    """Four panels against epoch for each run (`{label: metrics_log rows}`): validation error,
    training accuracy (train mode, one logging interval), gradient norm and the weights' L2 term."""
    fig, axes = plt.subplots(1, 4, figsize=(12.8, 3.0))
    for i, (label, rows) in enumerate(runs.items()):
        for ax, (key, _, _) in zip(axes, HEALTH, strict=True):
            xy = [(r["epoch"], r[key]) for r in rows if key in r]
            scale = 100 if key in ("eval_top1_error", "train_top1") else 1
            ax.plot([x for x, _ in xy], [scale * y for _, y in xy], color=COLORS[i % len(COLORS)], lw=1.0, label=label)
    for ax, (key, name, log) in zip(axes, HEALTH, strict=True):
        if key == "eval_top1_error":
            ax.axhline(100 * CHANCE_ERROR, color="gray", ls=":", lw=1)
            _log_percent(ax)
        elif log:
            ax.set_yscale("log")
        ax.set_title(name, fontsize=FONT + 1)
        ax.set_xlabel("epoch", fontsize=FONT)
        ax.tick_params(labelsize=FONT)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=FONT - 1)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    save(fig, path)
    plt.close(fig)
    return path
