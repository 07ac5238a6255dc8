"""A study's outputs rebuilt from what is on disk: curves.csv, summary.json, summary.md and figures."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
from typing import Any

import ml_collections

from inception_flax import models
from inception_flax.ablation import plots, runner
from inception_flax.ablation.stats import Point, read_curves, summarize_arm, verdict


def training_flops_per_step(config: ml_collections.ConfigDict) -> float:
    """Training FLOPs of one step: 3 x the forward pass (2 FLOPs a MAC) over the global batch."""
    model = models.create(config.model, width=config.width, num_classes=10, **config.model_options.to_dict())
    macs = sum(layer.macs for layer in models.trace_layers(model, config.image_size))
    return 6.0 * macs * config.batch_size


def check_target(study: Any) -> None:
    """Refuses a target error no run can be scored against (before anything trains)."""
    if not 0.0 < study.target_top1_error < 1.0:
        raise ValueError(f"target_top1_error={study.target_top1_error}: no run can be scored against it; use (0, 1).")


def finished_points(workdir: str, runs) -> tuple[list[Point], list[str]]:
    """The curves of every finished run (same length for all), and the names of the others."""
    points: list[Point] = []
    missing = []
    for arm, seed, _ in runs:
        path = runner.run_dir(workdir, arm, seed)
        if os.path.exists(os.path.join(path, runner.DONE_FILE)):
            points += read_curves(path, arm, seed)
        else:
            missing.append(f"{arm}/seed{seed}")
    return points, missing


def write_curves(points: list[Point], path: str) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["arm", "seed", "step", "epoch", "split", "metric", "value"])
        writer.writerows(dataclasses.astuple(p) for p in points)


def write_report(workdir: str, runs, study: Any, out: str | None = None) -> dict[str, Any]:
    """Reads every run with a metrics file; writes the report to `out` (default `<workdir>/report`)."""
    check_target(study)
    out = out or os.path.join(workdir, "report")
    os.makedirs(out, exist_ok=True)
    points, missing = finished_points(workdir, runs)
    arms = [a for a in study.arms if any(p.arm == a for p in points)]
    if not arms:
        raise ValueError(f"{workdir} holds no run of this study yet: nothing to report.")
    write_curves(points, os.path.join(out, "curves.csv"))

    summaries = {arm: summarize_arm(points, arm, study.target_top1_error) for arm in arms}
    alias = {"residual": "ir_v2", "ir_v2": "residual"}  # the same runs under the paper's pair name

    def arm_of(name):
        return name if name in summaries else alias.get(name)

    def named(name):  # the pair's own name (ir_v2) on the runs it shares with another arm (residual)
        return dataclasses.replace(summaries[arm_of(name)], arm=name)

    comparisons = [
        {
            "plain": a,
            "residual": b,
            "verdict": verdict(named(a), named(b), study.target_top1_error),
        }
        for a, b in study.pairs
        if arm_of(a) in summaries and arm_of(b) in summaries
    ]
    configs = {arm: cfg for arm, _, cfg in runs}  # seeds share an arm's network: trace each arm once
    flops = {arm: training_flops_per_step(cfg) for arm, cfg in configs.items()}
    for name in alias:
        if name not in flops and arm_of(name) in flops:
            flops[name] = flops[arm_of(name)]
    pairs = [(arm_of(a), arm_of(b)) for a, b in study.pairs if arm_of(a) in summaries and arm_of(b) in summaries]
    figures = plots.pair_figures(points, pairs, flops, out)
    figures.append(plots.all_arms_figure(points, arms, out))
    sweep = [arm_of(a) for a in study.sweep if arm_of(a) in summaries]
    if sweep:
        figures.append(plots.sweep_figure(points, sweep, out))
    figures.append(plots.training_figure(points, arms, out))

    summary = {
        "target_top1_error": study.target_top1_error,
        "arms": {arm: dataclasses.asdict(s) for arm, s in summaries.items()},
        "comparisons": comparisons,
        "missing_runs": missing,
        "figures": [os.path.basename(f) for f in figures],
    }
    with open(os.path.join(out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write(summary_markdown(summaries, comparisons, study.target_top1_error, missing))
    return summary


def _pct(ci) -> str:
    m, low, high = ci
    return f"{100 * m:.1f} ({100 * low:.1f}-{100 * high:.1f})" if not math.isnan(low) else f"{100 * m:.1f}"


def summary_markdown(summaries, comparisons, target: float, missing) -> str:
    lines = [
        f"| arm | seeds | final top-1 error % (95% CI) | final top-5 error % (95% CI) | runs reaching {target:.0%} top-1 error | steps to reach it (95% CI) |",
        "|---|---|---|---|---|---|",
    ]
    for s in summaries.values():
        steps = (
            f"{s.steps[0]:.0f} ({s.steps[1]:.0f}-{s.steps[2]:.0f})"
            if not math.isnan(s.steps[1])
            else f"{s.steps[0]:.0f}"
        )
        if s.reached < s.seeds:
            steps = f">= {steps}"  # a run that never got there counts at its full length
        lines.append(
            f"| {s.arm} | {s.seeds} | {_pct(s.final_top1)} | {_pct(s.final_top5)} | {s.reached}/{s.seeds} | {steps} |"
        )
    lines.append("")
    lines += [f"- **{c['plain']} vs {c['residual']}**: {c['verdict']}" for c in comparisons]
    if missing:
        lines += ["", f"Runs not finished yet (left out): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"
