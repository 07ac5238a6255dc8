"""Statistics of a study: curves read back from disk, final errors, steps to a target, speed-ups.

Intervals are 95% over seeds: Student's t for means and for differences of means (Welch), and a
ratio of means with a percentile bootstrap over seeds (10,000 resamples, fixed seed). A run that
never reaches the target error is counted at its full length and marked: figures built on it are
bounds, said so in the verdict, never dropped.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

from inception_flax.train import METRICS_FILE

CURVE_METRICS = {"eval_top1_error": "val", "eval_top5_error": "val", "eval_loss": "val"}
CURVE_METRICS |= {"train_loss": "train", "train_top1": "train", "train_top5": "train"}


@dataclasses.dataclass(frozen=True)
class Point:
    arm: str
    seed: int
    step: int
    epoch: float
    split: str
    metric: str
    value: float


def read_curves(path: str, arm: str, seed: int) -> list[Point]:
    """Points of one run's metrics.jsonl; a step logged twice (replayed after a resume) counts once."""
    rows: dict[tuple[int, str], Point] = {}
    with open(os.path.join(path, METRICS_FILE)) as f:
        for line in f:
            row = json.loads(line)
            for key, split in CURVE_METRICS.items():
                if key in row:
                    metric = key.removeprefix("eval_").removeprefix("train_")
                    rows[(row["step"], key)] = Point(arm, seed, row["step"], row["epoch"], split, metric, row[key])
    return sorted(rows.values(), key=lambda p: (p.split, p.metric, p.step))


def series(points: Sequence[Point], arm: str, split: str, metric: str) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """{seed: (steps, values)} of one arm's curve."""
    out: dict[int, tuple[list, list]] = {}
    for p in points:
        if (p.arm, p.split, p.metric) == (arm, split, metric):
            out.setdefault(p.seed, ([], []))
            out[p.seed][0].append(p.step)
            out[p.seed][1].append(p.value)
    return {s: (np.array(a), np.array(b)) for s, (a, b) in sorted(out.items())}


def mean_ci(values: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t interval over seeds; (mean, nan, nan) for fewer than 2 values."""
    x = np.asarray(values, np.float64)
    m = float(x.mean())
    if len(x) < 2:
        return m, math.nan, math.nan
    half = scipy_stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return m, m - half, m + half


def diff_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, float]:
    """mean(a) - mean(b) with Welch's t interval."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = float(a.mean() - b.mean())
    if len(a) < 2 or len(b) < 2:
        return d, math.nan, math.nan
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb == 0:
        return d, d, d
    dof = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    half = scipy_stats.t.ppf(0.5 + level / 2, dof) * math.sqrt(va + vb)
    return d, d - half, d + half


def ratio_ci(a: Sequence[float], b: Sequence[float], level: float = 0.95, resamples: int = 10_000):
    """mean(a) / mean(b) with a percentile bootstrap over seeds (each arm resampled on its own)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    rng = np.random.default_rng(0)
    ra = a[rng.integers(0, len(a), (resamples, len(a)))].mean(1)
    rb = b[rng.integers(0, len(b), (resamples, len(b)))].mean(1)
    low, high = np.percentile(ra / rb, [50 * (1 - level), 50 * (1 + level)])
    return float(a.mean() / b.mean()), float(low), float(high)


def steps_to_target(steps: np.ndarray, errors: np.ndarray, target: float) -> int | None:
    """First evaluated step whose error is at or below `target`; None if the run never gets there."""
    hit = np.nonzero(errors <= target)[0]
    return int(steps[hit[0]]) if len(hit) else None


@dataclasses.dataclass(frozen=True)
class ArmSummary:
    arm: str
    seeds: int
    final_top1: tuple[float, float, float]  # mean, CI low, CI high (error, 0..1)
    final_top5: tuple[float, float, float]
    reached: int  # runs that reached the target
    steps: tuple[float, float, float]  # steps to target, non-reaching runs counted at full length
    run_steps: list[float]  # per seed (censored at the run length when the target was not reached)
    final_top1_runs: list[float]


def summarize_arm(points: Sequence[Point], arm: str, target: float) -> ArmSummary:
    top1 = series(points, arm, "val", "top1_error")
    top5 = series(points, arm, "val", "top5_error")
    if not top1:
        raise ValueError(f"No validation curve for arm {arm!r}: nothing to score against.")
    finals1 = [v[-1] for _, v in top1.values()]
    finals5 = [v[-1] for _, v in top5.values()]
    reach = [steps_to_target(s, v, target) for s, v in top1.values()]
    censored = [float(r) if r is not None else float(s[-1]) for r, (s, _) in zip(reach, top1.values(), strict=True)]
    return ArmSummary(
        arm=arm,
        seeds=len(top1),
        final_top1=mean_ci(finals1),
        final_top5=mean_ci(finals5),
        reached=sum(r is not None for r in reach),
        steps=mean_ci(censored),
        run_steps=censored,
        final_top1_runs=finals1,
    )


def verdict(plain: ArmSummary, residual: ArmSummary, target: float) -> str:
    """One line comparing two arms, computed from the numbers (the second arm against the first)."""
    ratio, low, high = ratio_ci(residual.run_steps, plain.run_steps)
    d, dlow, dhigh = diff_ci(residual.final_top1_runs, plain.final_top1_runs)
    if residual.reached == 0:
        speed = f"{residual.arm} never reaches {target:.0%} top-1 error ({residual.seeds} runs)"
    elif plain.reached == 0:
        # Every plain run is counted at its full length, so the ratio is an upper bound.
        speed = (
            f"{residual.arm} reaches {target:.0%} top-1 error in {residual.reached}/{residual.seeds} runs (mean step "
            f"{residual.steps[0]:.0f}); {plain.arm} never does within {max(plain.run_steps):.0f} steps "
            f"(0/{plain.seeds}): at most {ratio:.2f}x the steps of {plain.arm} (95% CI {low:.2f}-{high:.2f})"
        )
    else:
        notes = [
            f"{x.seeds - x.reached} of {x.seeds} {x.arm} runs never got there"
            for x in (plain, residual)
            if x.reached < x.seeds
        ]
        # A run that never gets there counts at its full length (a plain one makes the ratio an upper bound).
        note = f" ({'; '.join(notes)}; counted at their full length)" if notes else ""
        speed = (
            f"{residual.arm} reaches {target:.0%} top-1 error in {ratio:.2f}x the steps of {plain.arm} "
            f"(95% CI {low:.2f}-{high:.2f}){note}"
        )
    if math.isnan(dlow):
        final = f"final top-1 error differs by {100 * d:+.1f} points (one seed: no interval)"
    else:
        significant = "significant" if dlow > 0 or dhigh < 0 else "not significant"
        final = (
            f"final top-1 error differs by {100 * d:+.1f} points (CI {100 * dlow:+.1f} to {100 * dhigh:+.1f}): "
            f"{significant}"
        )
    return f"{speed}; {final}."
