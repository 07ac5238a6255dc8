"""Statistics of a study: curves read back from disk, and the endpoints fixed before it ran.

Each arm's runs are paired with the other arms' by seed (same data order; the same initial weights
where the arms share layers), so comparisons are paired differences over seeds:

- speed: training images until the validation top-1 error first reaches the target. A run that
  never gets there is censored at its length; every run stops at the same length, so the
  restricted time min(T, length) is known for every run, its mean is the restricted mean time
  (RMST, the area under the Kaplan-Meier curve up to that length) and paired differences of it
  need no assumption on the censored runs. A ratio of censored counts is never formed.
- final error: the mean of the last few validation evaluations (and, separately, the test score),
  a paired t-interval of the difference, and two one-sided tests (TOST) against a margin.
- an arm's mean error: a t-interval of the per-seed logits mapped back, so it stays in [0, 100]%
  (a t-interval of the raw rates goes below 0 when errors are near 0 and seeds few). Other
  t-intervals (RMST, paired differences) are cut to the range their quantity can take.
- counts of runs (diverged, stalled, reached): exact Clopper-Pearson intervals.
Intervals are 95% unless said; TOST uses the 90% interval (5% each side). Multiple comparisons:
p-values of the pairs are Holm-adjusted within each endpoint.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats as scipy_stats

from inception_flax import metrics_log

CURVE_METRICS = {"eval_top1_error": "val", "eval_loss": "val", "train_loss": "train", "train_top1": "train"}
CHANCE_ERROR = 0.9  # 10 classes; also the final error counted for a run that diverged
DIED_ERROR = 0.85  # a study's default `died_top1_error`: back at chance, give or take 15 examples in 300


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
    """Points of one run's metrics log (a step replayed after a resume counts once)."""
    points = [
        Point(arm, seed, row["step"], row["epoch"], split, key.removeprefix("eval_").removeprefix("train_"), row[key])
        for row in metrics_log.read(path)
        for key, split in CURVE_METRICS.items()
        if key in row
    ]
    return sorted(points, key=lambda p: (p.split, p.metric, p.step))


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
    """mean(a) - mean(b) with Welch's t interval (unpaired)."""
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


def logit_ci(errors: Sequence[float], num_examples: int, level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high) of error rates: a t-interval of their logits, mapped back (inside [0, 1]).

    A rate of 0 or 1 is moved half an example inwards before the logit."""
    x = np.clip(np.asarray(errors, np.float64), 0.5 / num_examples, 1 - 0.5 / num_examples)
    z = np.log(x / (1 - x))
    mean = float(np.mean(errors))
    if len(z) < 2:
        return mean, math.nan, math.nan
    half = scipy_stats.t.ppf(0.5 + level / 2, len(z) - 1) * z.std(ddof=1) / math.sqrt(len(z))
    low, high = (1 / (1 + math.exp(-(z.mean() + s * half))) for s in (-1, 1))
    return mean, low, high


@dataclasses.dataclass(frozen=True)
class Paired:
    """b - a over the seeds both arms ran: mean, t-interval, two-sided p (paired t-test)."""

    seeds: tuple[int, ...]
    diffs: tuple[float, ...]
    mean: float
    low: float
    high: float
    p: float


def paired(a: dict[int, float], b: dict[int, float], level: float = 0.95, bound: float = math.inf) -> Paired:
    """`bound`: |b - a| can be no larger (1 for error rates, the run's length for times); the
    t-interval is cut there, which with few seeds it can otherwise overrun."""
    seeds = tuple(sorted(a.keys() & b.keys()))
    d = np.array([b[s] - a[s] for s in seeds], np.float64)
    if len(d) < 2:
        m = float(d.mean()) if len(d) else math.nan
        return Paired(seeds, tuple(d.tolist()), m, math.nan, math.nan, math.nan)
    m, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return Paired(seeds, tuple(d.tolist()), m, m, m, 1.0 if m == 0 else 0.0)
    se = sd / math.sqrt(len(d))
    half = scipy_stats.t.ppf(0.5 + level / 2, len(d) - 1) * se
    p = 2 * scipy_stats.t.sf(abs(m) / se, len(d) - 1)
    return Paired(seeds, tuple(d.tolist()), m, max(m - half, -bound), min(m + half, bound), float(p))


def tost(diffs: Sequence[float], margin: float) -> float:
    """p-value of two one-sided paired t-tests that |mean difference| < margin (equivalent if < 0.05)."""
    d = np.asarray(diffs, np.float64)
    if len(d) < 2:
        return math.nan
    m, sd = float(d.mean()), float(d.std(ddof=1))
    if sd == 0:
        return 0.0 if abs(m) < margin else 1.0
    se = sd / math.sqrt(len(d))
    lower = scipy_stats.t.sf((m + margin) / se, len(d) - 1)  # H0: mean <= -margin
    upper = scipy_stats.t.cdf((m - margin) / se, len(d) - 1)  # H0: mean >= +margin
    return float(max(lower, upper))


def tost_power(n: int, sd: float, margin: float, true_diff: float = 0.0, alpha: float = 0.05) -> float:
    """Power of `tost` with n paired seeds whose differences have standard deviation `sd`.

    Exact for the paired t-statistic: the probability, over the sample mean and the sample SD,
    that both one-sided tests reject, i.e. that |mean - (+-margin)| clears t * SD / sqrt(n) on
    both sides. Integrated over the chi distribution of the sample SD (Owen's formulation).
    """
    if n < 2 or sd <= 0 or margin <= 0:
        return math.nan
    df, crit = n - 1, scipy_stats.t.ppf(1 - alpha, n - 1)
    se = sd / math.sqrt(n)
    # Given the sample SD s = sd * sqrt(v / df) with v ~ chi2(df), TOST rejects when the mean lies in
    # (-margin + crit * s / sqrt(n), margin - crit * s / sqrt(n)), an interval that closes as s grows.
    v = np.linspace(1e-9, scipy_stats.chi2.ppf(1 - 1e-10, df), 20_001)
    half = margin - crit * sd * np.sqrt(v / df) / math.sqrt(n)
    inside = np.clip(
        scipy_stats.norm.cdf((half - true_diff) / se) - scipy_stats.norm.cdf((-half - true_diff) / se), 0.0, None
    )
    inside[half <= 0] = 0.0
    return float(np.trapezoid(inside * scipy_stats.chi2.pdf(v, df), v))


def pooled_paired_sd(finals: Mapping[str, Mapping[int, float]], pairs: Sequence[tuple[str, str]]) -> tuple[float, int]:
    """(SD, degrees of freedom) of paired differences a - b, pooled over `pairs`.

    `finals[arm][seed]`: one value per run. Each pair contributes its differences over the seeds both
    arms have, with their own mean (n - 1 degrees of freedom); a pair with fewer than 2 shared seeds
    contributes nothing. (nan, 0) when no pair does.
    """
    squares, df = 0.0, 0
    for a, b in pairs:
        seeds = sorted(set(finals.get(a, {})) & set(finals.get(b, {})))
        if len(seeds) < 2:
            continue
        d = np.array([finals[a][s] - finals[b][s] for s in seeds])
        squares += float(np.sum(np.square(d - d.mean())))
        df += len(seeds) - 1
    return (math.sqrt(squares / df), df) if df else (math.nan, 0)


def last_third_slope(steps: np.ndarray, values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """(slope, low, high) per 100 steps of a least-squares line through the last third of a curve.

    A curve that has flattened has an interval that includes 0 (the study's length is chosen so
    the slowest plain arm's does)."""
    steps, values = np.asarray(steps, np.float64), np.asarray(values, np.float64)
    keep = steps >= steps[-1] - (steps[-1] - steps[0]) / 3
    x, y = steps[keep] / 100.0, values[keep]
    if len(x) < 3:
        return math.nan, math.nan, math.nan
    fit = scipy_stats.linregress(x, y)
    half = scipy_stats.t.ppf(0.5 + level / 2, len(x) - 2) * fit.stderr
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half)


def clopper_pearson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial interval of k successes in n trials."""
    alpha = 1 - level
    low = 0.0 if k == 0 else float(scipy_stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(scipy_stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return low, high


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjustment (family-wise error), in the input order; NaN stays NaN."""
    order = sorted((p, i) for i, p in enumerate(pvalues) if not math.isnan(p))
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def time_to_target(steps: np.ndarray, errors: np.ndarray, target: float, length: int) -> tuple[int, bool]:
    """(first evaluated step with error <= target, True), or (`length`, False): censored at the run's end."""
    hit = np.nonzero(errors <= target)[0]
    return (int(steps[hit[0]]), True) if len(hit) else (length, False)


def kaplan_meier(times: Sequence[float], events: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    """(times, fraction of runs not yet at the target just after each time), starting at (0, 1)."""
    t = np.asarray(times, np.float64)
    e = np.asarray(events, bool)
    xs, ys, alive = [0.0], [1.0], 1.0
    for time in np.unique(t[e]):
        at_risk = np.sum(t >= time)
        alive *= 1 - np.sum((t == time) & e) / at_risk
        xs.append(float(time))
        ys.append(alive)
    return np.array(xs), np.array(ys)


def _within(ci: tuple[float, float, float], low: float, high: float) -> tuple[float, float, float]:
    """A t-interval cut to the values the quantity can take (an RMST lies in [0, run length])."""
    return ci[0], max(ci[1], low), min(ci[2], high)


@dataclasses.dataclass(frozen=True)
class ArmSummary:
    """One arm over its seeds; errors are rates in [0, 1], times in training images."""

    arm: str
    seeds: tuple[int, ...]
    final_val: dict[int, float]  # per seed: mean of the last `final_evals` validation errors
    final_val_ci: tuple[float, float, float]  # mean, logit-t 95% interval
    test: dict[int, float]  # per seed: the test score after the last step (empty without a test split)
    test_ci: tuple[float, float, float]
    images: dict[int, float]  # per seed: images to the target, censored at the run's length
    reached: dict[int, bool]
    rmst: tuple[float, float, float]  # restricted mean images, t-interval over seeds
    diverged: tuple[int, ...]  # seeds that stopped on a non-finite loss
    stalled: tuple[int, ...]  # seeds whose final validation error is above the stall threshold
    died: tuple[int, ...] = ()  # diverged, or learned and then went back to chance for the last third
    slopes: dict[int, tuple[float, float, float]] = dataclasses.field(default_factory=dict)  # last third, per 100 steps


def returned_to_chance(steps: np.ndarray, errors: np.ndarray, chance_error: float, learned_error: float = 0.5) -> bool:
    """A run that got below `learned_error` and whose every evaluation in the last third of the run
    is at or above `chance_error`: it learned, then went back to chance and stayed there."""
    steps, errors = np.asarray(steps), np.asarray(errors)
    last_third = steps >= steps[-1] - (steps[-1] - steps[0]) / 3
    return bool(errors.min() <= learned_error and np.all(errors[last_third] >= chance_error))


def summarize_arm(
    points: Sequence[Point],
    arm: str,
    *,
    target: float,
    final_evals: int,
    images_per_step: int,
    num_steps: int,
    eval_examples: int,
    tests: dict[int, float] | None = None,
    diverged: Sequence[int] = (),
    stall_error: float = 0.8,
    died_error: float = DIED_ERROR,
) -> ArmSummary:
    curves = series(points, arm, "val", "top1_error")
    if not curves:
        raise ValueError(f"No validation curve for arm {arm!r}: nothing to score against.")
    final, images, reached = {}, {}, {}
    for seed, (steps, errors) in curves.items():
        # A diverged run ends at chance: its last evaluations are not a final accuracy.
        final[seed] = CHANCE_ERROR if seed in diverged else float(np.mean(errors[-final_evals:]))
        step, hit = time_to_target(steps, errors, target, num_steps)
        hit = hit and seed not in diverged
        images[seed], reached[seed] = float((step if hit else num_steps) * images_per_step), hit
    tests = tests or {}
    return ArmSummary(
        arm=arm,
        seeds=tuple(curves),
        final_val=final,
        final_val_ci=logit_ci(list(final.values()), eval_examples),
        test=tests,
        test_ci=logit_ci(list(tests.values()), eval_examples) if tests else (math.nan,) * 3,
        images=images,
        reached=reached,
        rmst=_within(mean_ci(list(images.values())), 0.0, num_steps * images_per_step),
        diverged=tuple(sorted(diverged)),
        stalled=tuple(s for s in curves if s not in diverged and final[s] > stall_error),
        died=tuple(s for s, (st, e) in curves.items() if s in diverged or returned_to_chance(st, e, died_error)),
        slopes={s: last_third_slope(st, e) for s, (st, e) in curves.items()},
    )
