"""Report of a batch-size scaling study (`scripts/batch_scaling.py`): curves, table, figure.

One arm per global batch, the same recipe per image; every run's validation curve is read back
from its `metrics.jsonl`. The table gives each batch's final validation top-1 error (the last
evaluation) over seeds with a 95% Student-t interval computed on the logit scale and mapped back,
so it stays inside [0, 100]%, and the difference to the base batch with Welch's interval.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from inception_flax import paths
from inception_flax.ablation import plots
from inception_flax.ablation.report import finished_points, write_curves
from inception_flax.ablation.stats import Point, diff_ci, logit_ci, series

METRIC = ("val", "top1_error")


def _final_errors(points: list[Point], arm: str) -> dict[int, float]:
    return {seed: float(v[-1]) for seed, (_, v) in series(points, arm, *METRIC).items()}


def _figure(points: list[Point], arms: list[str], batches: dict[str, int], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    for i, arm in enumerate(arms):
        color = f"C{i}"
        runs = series(points, arm, *METRIC)
        epoch = {p.step: p.epoch for p in points if p.arm == arm}
        for steps, values in runs.values():
            ax.plot([epoch[s] for s in steps], 100 * values, color=color, lw=0.6, alpha=0.45)
        steps = min((s for s, _ in runs.values()), key=len)
        mean = np.mean([v[: len(steps)] for _, v in runs.values()], axis=0)
        ax.plot([epoch[s] for s in steps], 100 * mean, color=color, lw=2, label=f"batch {batches[arm]}")
    ax.axhline(90, color="gray", ls=":", lw=1, label="chance (90%)")
    ax.set_yscale("log")
    ax.set_xlabel("epoch (1,497 training digits)", fontsize=10)
    ax.set_ylabel("validation top-1 error (%)", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.set_title("Same recipe per image at 4 global batches: thin = one seed, thick = mean", fontsize=10)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    fig.tight_layout()
    plots.save(fig, path, dpi=None)
    plt.close(fig)


def write_report(
    workdir: str, runs: list, batches: dict[str, int], base_arm: str, out: str, eval_examples: int
) -> dict[str, Any]:
    """Reads every finished run; writes curves.csv, summary.json, summary.md and errors.png to `out`.

    `eval_examples` (the validation split's size) bounds how far a 0% or 100% rate moves for its logit."""
    paths.path(out).mkdir(parents=True, exist_ok=True)
    points, _ = finished_points(workdir, runs)
    arms = [a for a in batches if any(p.arm == a for p in points)]
    if not arms:
        raise ValueError(f"{workdir} holds no finished run of this study yet: nothing to report.")
    write_curves(points, paths.join(out, "curves.csv"))
    base = _final_errors(points, base_arm)
    rows = []
    for arm in arms:
        finals = _final_errors(points, arm)
        mean, low, high = logit_ci(list(finals.values()), eval_examples)
        d, dlow, dhigh = diff_ci(list(finals.values()), list(base.values())) if base else (math.nan,) * 3
        rows.append(
            {
                "arm": arm,
                "batch_size": batches[arm],
                "seeds": sorted(finals),
                "final_top1_error_per_seed": [finals[s] for s in sorted(finals)],
                "final_top1_error_mean": mean,
                "final_top1_error_ci95": [low, high],
                f"difference_to_{base_arm}": d,
                f"difference_to_{base_arm}_ci95": [dlow, dhigh],
            }
        )
    summary = {"metric": f"validation top-1 error after the last epoch ({eval_examples} examples)", "rows": rows}
    paths.write_text(paths.join(out, "summary.json"), json.dumps(summary, indent=1))
    lines = [
        "| global batch | final val top-1 error, mean (95% CI, logit t) | per seed | minus batch "
        f"{batches[base_arm]} (95% CI, Welch) |",
        "|---|---|---|---|",
    ]
    for r in rows:
        low, high = r["final_top1_error_ci95"]
        dlow, dhigh = r[f"difference_to_{base_arm}_ci95"]
        per_seed = ", ".join(f"{100 * e:.1f}" for e in r["final_top1_error_per_seed"])
        diff = (
            "-"
            if r["arm"] == base_arm
            else f"{100 * r[f'difference_to_{base_arm}']:+.1f} ({100 * dlow:+.1f} to {100 * dhigh:+.1f})"
        )
        lines.append(
            f"| {r['batch_size']} | {100 * r['final_top1_error_mean']:.1f}% ({100 * low:.1f}-{100 * high:.1f}) "
            f"| {per_seed} | {diff} |"
        )
    paths.write_text(paths.join(out, "summary.md"), "\n".join(lines) + "\n")
    _figure(points, arms, batches, paths.join(out, "errors.png"))
    return summary
