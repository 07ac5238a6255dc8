"""Figures of a study, laid out like the paper's (arXiv v2 Figs. 21-26): error against epoch and FLOPs.

Each arm is drawn as the mean over seeds with the range across seeds shaded.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np

from inception_flax.ablation.stats import Point, series

DPI = 80  # small PNGs for the repository


def _band(ax, points, arm, split, metric, x_scale=1.0, x_of="epoch", label=None, color=None):
    runs = series(points, arm, split, metric)
    if not runs:
        return
    steps = min((s for s, _ in runs.values()), key=len)  # a common grid: the shortest run's steps
    values = np.stack([v[: len(steps)] for _, v in runs.values()])
    if x_of == "epoch":
        per_step = {p.step: p.epoch for p in points if p.arm == arm}
        x = np.array([per_step[s] for s in steps])
    else:
        x = steps * x_scale
    mean = values.mean(0)
    (line,) = ax.plot(x, 100 * mean if "error" in metric else mean, label=label or arm, color=color)
    low, high = values.min(0), values.max(0)
    scale = 100 if "error" in metric else 1
    ax.fill_between(x, scale * low, scale * high, alpha=0.2, color=line.get_color())


def _errors_figure(points, arms, path, title, x_of="epoch", flops_per_step=None):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, metric in zip(axes, ("top1_error", "top5_error"), strict=True):
        for arm in arms:
            scale = flops_per_step[arm] / 1e12 if flops_per_step else 1.0
            _band(ax, points, arm, "val", metric, x_scale=scale, x_of=x_of)
        ax.set_xlabel("epoch" if x_of == "epoch" else "training TFLOPs")
        ax.set_ylabel(f"validation {metric.replace('_', ' ')} (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)


def pair_figures(points: Sequence[Point], pairs, flops_per_step: dict[str, float], out: str) -> list[str]:
    """One figure per pair against epoch and one against training FLOPs (the pairs differ in cost)."""
    files = []
    for a, b in pairs:
        name = os.path.join(out, f"{a}_vs_{b}.png")
        _errors_figure(points, (a, b), name, f"{a} vs {b}: single-crop validation error")
        files.append(name)
        name = os.path.join(out, f"{a}_vs_{b}_flops.png")
        _errors_figure(points, (a, b), name, f"{a} vs {b} against training compute", "flops", flops_per_step)
        files.append(name)
    return files


def all_arms_figure(points: Sequence[Point], arms, out: str) -> str:
    name = os.path.join(out, "all_arms.png")
    _errors_figure(points, arms, name, "All arms: single-crop validation error")
    return name


def sweep_figure(points: Sequence[Point], arms, out: str) -> str:
    name = os.path.join(out, "residual_scale.png")
    _errors_figure(points, arms, name, "Residual scaling (Inception-ResNet-v2): 1.0 = unscaled")
    return name


def training_figure(points: Sequence[Point], arms, out: str) -> str:
    """Train-mode loss and top-1 of every run: a run that diverged or 'died' stands out here."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, arm in enumerate(arms):
        color = colors[i % len(colors)]
        for metric, ax in (("loss", axes[0]), ("top1", axes[1])):
            for j, (steps, values) in enumerate(series(points, arm, "train", metric).values()):
                ax.plot(steps, values, color=color, lw=1, alpha=0.8, label=arm if j == 0 else None)
    axes[0].set_yscale("log")
    axes[0].set_ylabel("train loss (with label smoothing)")
    axes[1].set_ylabel("train top-1 (augmented batches)")
    for ax in axes:
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[1].axhline(0.1, color="gray", ls=":", lw=1)  # chance on 10 classes
    axes[1].legend(fontsize=7, ncol=2)
    fig.suptitle("Training curves of every run (one line per seed)", fontsize=10)
    fig.tight_layout()
    name = os.path.join(out, "training.png")
    fig.savefig(name, dpi=DPI)
    plt.close(fig)
    return name
