"""A study's outputs rebuilt from what is on disk: curves.csv, summary.json, summary.md and figures.

A pilot (a study over learning rates) gets pilot.json, pilot.md and pilot.png instead: each arm's
final validation error at each rate and the rate chosen.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from typing import Any

import ml_collections
import numpy as np

from inception_flax import models, paths, step
from inception_flax.ablation import plots, runner
from inception_flax.ablation.stats import (
    DIED_ERROR,
    ArmSummary,
    Point,
    clopper_pearson,
    holm,
    last_third_slope,
    paired,
    pooled_paired_sd,
    read_curves,
    series,
    summarize_arm,
    tost,
    tost_power,
)


def training_flops_per_image(config: ml_collections.ConfigDict) -> float:
    """Training FLOPs per image: 3 x the forward pass (2 FLOPs a MAC)."""
    model = models.create(config.model, **step.architecture(config, 10))
    return 6.0 * sum(layer.macs for layer in models.trace_layers(model, config.image_size))


def check_target(study: Any) -> None:
    """Refuses a target error no run can be scored against (before anything trains)."""
    if not 0.0 < study.target_top1_error < 1.0:
        raise ValueError(f"target_top1_error={study.target_top1_error}: no run can be scored against it; use (0, 1).")


def finished_points(workdir: str, runs) -> tuple[list[Point], list[str]]:
    """The curves of every finished run, and the names of the others."""
    points: list[Point] = []
    missing = []
    for arm, seed, _ in runs:
        path = runner.run_dir(workdir, arm, seed)
        if paths.path(paths.join(path, runner.DONE_FILE)).exists():
            points += read_curves(path, arm, seed)
        else:
            missing.append(f"{arm}/seed{seed}")
    return points, missing


def _done(workdir: str, arm: str, seed: int) -> dict[str, Any] | None:
    path = paths.join(runner.run_dir(workdir, arm, seed), runner.DONE_FILE)
    if not paths.path(path).exists():
        return None
    return json.loads(paths.read_text(path))


def read_curves_csv(path: str) -> list[Point]:
    """The points of a report's curves.csv (a committed study, without its run directories)."""
    rows = csv.DictReader(io.StringIO(paths.read_text(path)))
    return [
        Point(r["arm"], int(r["seed"]), int(r["step"]), float(r["epoch"]), r["split"], r["metric"], float(r["value"]))
        for r in rows
    ]


def plateau_markdown(points: list[Point]) -> str:
    """Per arm and seed: the last-third slope of the validation error, and whether it is flat."""
    lines = [
        "Least-squares slope of each run's validation top-1 error over the last third of its evaluations, "
        "in points per 100 steps, with a 95% t-interval; flat: the interval includes 0.",
        "",
        "| arm | seed | last step | final error % | slope | 95% CI | flat |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in dict.fromkeys(p.arm for p in points):
        for seed, (steps, errors) in series(points, arm, "val", "top1_error").items():
            m, low, high = last_third_slope(steps, errors)
            fit = (
                "too few evaluations | - | -"
                if math.isnan(m)
                else f"{100 * m:+.2f} | {100 * low:+.2f} to {100 * high:+.2f} | {'yes' if low <= 0 <= high else 'no'}"
            )
            lines.append(f"| {arm} | {seed} | {steps[-1]} | {100 * errors[-1]:.1f} | {fit} |")
    return "\n".join(lines) + "\n"


def write_curves(points: list[Point], path: str) -> None:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["arm", "seed", "step", "epoch", "split", "metric", "value"])
    writer.writerows(dataclasses.astuple(p) for p in points)
    paths.write_text(path, text.getvalue())


def write_report(workdir: str, runs, study: Any, out: str | None = None) -> dict[str, Any]:
    """Reads every finished run; writes the report to `out` (default `<workdir>/report`)."""
    check_target(study)
    out = out or paths.join(workdir, "report")
    paths.path(out).mkdir(parents=True, exist_ok=True)
    points, missing = finished_points(workdir, runs)
    if not points:
        raise ValueError(f"{workdir} holds no finished run of this study yet: nothing to report.")
    write_curves(points, paths.join(out, "curves.csv"))
    if getattr(study, "learning_rates", ()) or getattr(study, "extra_rates", ()):
        return write_pilot(points, runs, study, out, missing)
    return write_study(workdir, points, runs, study, out, missing)


# ---------------------------------------------------------------------------------------- pilot
def final_error(points: list[Point], run: str, last: int) -> float:
    """Mean over seeds of each run's mean of its last `last` validation errors."""
    return float(np.mean([np.mean(v[-last:]) for _, v in series(points, run, "val", "top1_error").values()]))


def write_pilot(points: list[Point], runs, study: Any, out: str, missing: list[str]) -> dict[str, Any]:
    grid: dict[str, dict[float, str]] = {}
    for name, _, _ in runs:
        arm, rate = runner.split_name(name)
        if any(p.arm == name for p in points):
            grid.setdefault(arm, {})[rate] = name
    errors = {
        arm: {rate: final_error(points, run, study.final_evals) for rate, run in g.items()} for arm, g in grid.items()
    }
    chosen = {arm: min(e, key=e.get) for arm, e in errors.items()}
    rates = sorted({r for g in grid.values() for r in g})
    lines = [
        f"Final validation top-1 error (%, mean of the last {study.final_evals} evaluations; {_seeds(points)}) per peak "
        "learning rate per 32 images. **Bold**: the rate chosen (lowest error).",
        "",
        "| arm | " + " | ".join(f"{r:g}" for r in rates) + " | chosen |",
        "|---|" + "---|" * (len(rates) + 1),
    ]
    for arm, e in errors.items():
        cells = [
            "-" if r not in e else (f"**{100 * e[r]:.1f}**" if r == chosen[arm] else f"{100 * e[r]:.1f}") for r in rates
        ]
        edge = " (edge of the grid)" if chosen[arm] in (rates[0], rates[-1]) else ""
        lines.append(f"| {arm} | " + " | ".join(cells) + f" | {chosen[arm]:g}{edge} |")
    paired = _paired_sd(points, grid, chosen, study)
    if paired:
        lines += ["", paired.pop("line")]
    if missing:
        lines += ["", f"Runs not finished yet (left out): {', '.join(missing)}."]
    figure = plots.pilot_figure(points, grid, chosen, paths.join(out, "pilot.png"))
    summary = {
        "final_evals": study.final_evals,
        "final_top1_error": {arm: {f"{r:g}": v for r, v in e.items()} for arm, e in errors.items()},
        "chosen_learning_rate": chosen,
        "missing_runs": missing,
        "figures": [figure.rsplit("/", 1)[-1]],
        **paired,
    }
    paths.write_text(paths.join(out, "pilot.json"), json.dumps(summary, indent=1))
    paths.write_text(paths.join(out, "summary.md"), "\n".join(lines) + "\n")  # what the script prints
    paths.write_text(paths.join(out, "pilot.md"), "\n".join(lines) + "\n")
    return summary


def _seeds(points: list[Point]) -> str:
    seeds = sorted({p.seed for p in points})
    return f"seed {seeds[0]}" if len(seeds) == 1 else f"mean over the seeds run of {', '.join(map(str, seeds))}"


def _paired_sd(points: list[Point], grid: dict, chosen: dict, study: Any) -> dict[str, Any]:
    """The paired final errors of the pilot's `pairs` at the chosen rates: per pair their mean and
    SD; pooled over the pairs whose arms both learn (mean final error below `learned_top1_error`),
    the SD and the TOST power at it that plan the study (empty without pairs). A pair with an arm
    that never learns is no question of equivalence, and its spread near chance (tens of points)
    says nothing about the other pairs'."""
    pairs = [(a, b) for a, b in getattr(study, "pairs", ()) if a in chosen and b in chosen]
    if not pairs:
        return {}
    finals = {
        arm: {
            seed: float(np.mean(v[-study.final_evals :]))
            for seed, (_, v) in series(points, g[chosen[arm]], "val", "top1_error").items()
        }
        for arm, g in grid.items()
    }
    learned = getattr(study, "learned_top1_error", 1.0)
    fails = {arm for arm in chosen if np.mean(list(finals[arm].values())) >= learned}
    per_pair, texts = {}, []
    for a, b in pairs:
        d = np.array([finals[a][s] - finals[b][s] for s in sorted(set(finals[a]) & set(finals[b]))])
        sd_ab = float(np.std(d, ddof=1)) if len(d) > 1 else math.nan
        planned = not {a, b} & fails
        per_pair[f"{a} - {b}"] = {"mean": float(d.mean()), "sd": sd_ab, "seeds": len(d), "planned": planned}
        texts.append(
            f"{a} - {b} {100 * d.mean():+.1f} (SD "
            + ("-" if math.isnan(sd_ab) else f"{100 * sd_ab:.2f}")
            + f", {len(d)} seeds"
            + (
                ""
                if planned
                else f"; {' and '.join(sorted({a, b} & fails))} "
                f"ends at or above {100 * learned:.0f}%, left out of the plan"
            )
            + ")"
        )
    kept = [(a, b) for a, b in pairs if not {a, b} & fails]
    sd, df = pooled_paired_sd(finals, kept)
    n, margin = study.planned_seeds, study.equivalence_margin
    power = tost_power(n, sd, margin) if df else math.nan
    line = (
        "Paired final errors at the chosen rates (points; seeds both arms ran): "
        + "; ".join(texts)
        + ". Pooled"
        + (f" over {', '.join(f'{a} - {b}' for a, b in kept)}" if kept else "")
        + ": SD "
        + (f"{100 * sd:.2f} points ({df} degrees of freedom)" if df else "not yet (no pair has 2 seeds)")
        + f"; the power of the TOST at +-{100 * margin:g} points with {n} seeds at that SD: "
        + (f"{100 * power:.0f}%." if df else "-.")
    )
    return {
        "paired_sd": sd,
        "paired_sd_df": df,
        "paired_sd_pairs": [list(p) for p in kept],
        "pairs": per_pair,
        "planned_seeds": n,
        "tost_power_at_paired_sd": power,
        "line": line,
    }


# ---------------------------------------------------------------------------------------- study
def compare(a: ArmSummary, b: ArmSummary, margin: float, planned_sd: float = math.nan) -> dict[str, Any]:
    """b against a, paired by seed: speed (restricted images), final validation error, test error,
    and the TOST's power at this many seeds (at the planned SD, and at the one observed)."""
    length = max(*a.images.values(), *b.images.values())
    speed = paired(a.images, b.images, bound=length)
    final = paired(a.final_val, b.final_val, bound=1.0)
    test = paired(a.test, b.test, bound=1.0) if a.test and b.test else None
    final90 = paired(a.final_val, b.final_val, level=0.90, bound=1.0)
    return {
        "plain": a.arm,
        "residual": b.arm,
        "speed": dataclasses.asdict(speed),
        "final_val": dataclasses.asdict(final),
        "final_val_ci90": [final90.low, final90.high],
        "tost_p": tost(final.diffs, margin),
        "tost_power_planned": tost_power(len(final.seeds), planned_sd, margin),
        "tost_power_observed": tost_power(len(final.seeds), float(np.std(final.diffs, ddof=1)), margin)
        if len(final.seeds) > 1
        else math.nan,
        "test": dataclasses.asdict(test) if test else None,
    }


def _k(images: float) -> str:
    return f"{images / 1000:.1f}k"


def _ci(low: float, high: float, fmt) -> str:
    """'95% CI a to b', or why there is none (a comparison needs 2 paired seeds)."""
    return "no interval with one seed" if math.isnan(low) else f"95% CI {fmt(low)} to {fmt(high)}"


def _p(p: float) -> str:
    return "no test with one seed" if math.isnan(p) else f"{p:.3g}"


def verdict(c: dict[str, Any], a: ArmSummary, b: ArmSummary, target: float, margin: float) -> str:
    """The comparison in words, every figure from `c` (b = the residual arm, a = its partner)."""
    s, f = c["speed"], c["final_val"]
    reach = lambda x: f"{sum(x.reached.values())}/{len(x.reached)}"  # noqa: E731
    speed = (
        f"to {100 * target:.0f}% validation error: {b.arm} {reach(b)} runs, {a.arm} {reach(a)}; restricted mean "
        f"{_k(b.rmst[0])} vs {_k(a.rmst[0])} images, paired difference {_k(s['mean'])} "
        f"({_ci(s['low'], s['high'], _k)}, Holm p = {_p(c['speed_p_holm'])})"
    )
    equivalent = c["tost_p"] < 0.05
    points = lambda x: f"{100 * x:+.1f}"  # noqa: E731
    final = (
        f"final validation error {100 * b.final_val_ci[0]:.1f}% vs {100 * a.final_val_ci[0]:.1f}%, paired "
        f"difference {points(f['mean'])} points ({_ci(f['low'], f['high'], points)}, Holm p = "
        f"{_p(c['final_p_holm'])}); {'equivalent' if equivalent else 'not shown equivalent'} within "
        f"+-{100 * margin:.0f} points (TOST p = {_p(c['tost_p'])}; power {_power(c)})"
    )
    test = ""
    if c["test"]:
        t = c["test"]
        test = (
            f"; test error {100 * b.test_ci[0]:.1f}% vs {100 * a.test_ci[0]:.1f}% (paired {points(t['mean'])}, "
            f"{_ci(t['low'], t['high'], points)})"
        )
    return f"Speed {speed}. Final: {final}{test}."


def _power(c: dict[str, Any]) -> str:
    """The TOST's power at a true difference of 0: at the SD planned before the study, and observed."""
    planned, observed = c["tost_power_planned"], c["tost_power_observed"]
    text = "not planned" if math.isnan(planned) else f"{100 * planned:.0f}% as planned"
    return text + ("" if math.isnan(observed) else f", {100 * observed:.0f}% at the observed SD")


def _pct(ci) -> str:
    m, low, high = ci
    return f"{100 * m:.1f} ({100 * low:.1f}-{100 * high:.1f})" if not math.isnan(low) else f"{100 * m:.1f}"


def _count(seeds, n: int) -> str:
    low, high = clopper_pearson(len(seeds), n)
    return f"{len(seeds)}/{n} ({100 * low:.0f}-{100 * high:.0f}%)"


def write_study(workdir: str, points: list[Point], runs, study: Any, out: str, missing: list[str]) -> dict[str, Any]:
    configs = {arm: cfg for arm, _, cfg in runs}
    arms = [a for a in study.arms if any(p.arm == a for p in points)]
    summaries, flops = {}, {}
    for arm in arms:
        done = {seed: _done(workdir, arm, seed) for a, seed, _ in runs if a == arm}
        done = {s: d for s, d in done.items() if d is not None}
        cfg = configs[arm]
        steps = max(p.step for p in points if p.arm == arm and p.split == "val")
        summaries[arm] = summarize_arm(
            points,
            arm,
            target=study.target_top1_error,
            final_evals=study.final_evals,
            images_per_step=cfg.batch_size,
            num_steps=steps,
            eval_examples=int(next(iter(done.values())).get("eval_num_examples", 300)),
            tests={s: d["test_top1_error"] for s, d in done.items() if "test_top1_error" in d},
            diverged=[s for s, d in done.items() if "diverged" in d],
            stall_error=study.stall_top1_error,
            died_error=_died_error(study),
        )
        flops[arm] = training_flops_per_image(cfg)
    pairs = [(a, b) for a, b in study.pairs if a in summaries and b in summaries]
    planned_sd = getattr(study, "planned_sd", math.nan)
    comparisons = [compare(summaries[a], summaries[b], study.equivalence_margin, planned_sd) for a, b in pairs]
    for key, name in (("speed", "speed_p_holm"), ("final_val", "final_p_holm")):
        for c, p in zip(comparisons, holm([c[key]["p"] for c in comparisons]), strict=True):
            c[name] = p
    for c in comparisons:
        c["verdict"] = verdict(
            c, summaries[c["plain"]], summaries[c["residual"]], study.target_top1_error, study.equivalence_margin
        )

    figures = [
        plots.curves_figure(
            points, pair, plots.figure_name(out, *pair), f"{pair[0]} vs {pair[1]}", study.target_top1_error
        )
        for pair in pairs
    ]
    sweep = [a for a in study.sweep if a in summaries]
    if sweep:
        figures.append(
            plots.curves_figure(
                points,
                sweep,
                paths.join(out, "residual_scale.png"),
                "Residual scale (IR-v2)",
                study.target_top1_error,
            )
        )
    length = max(max(s.images.values()) for s in summaries.values())
    figures.append(
        plots.time_to_target_figure(
            summaries, arms, length, study.target_top1_error, paths.join(out, "time_to_target.png")
        )
    )
    figures.append(plots.training_figure(points, arms, paths.join(out, "training.png")))

    summary = {
        "target_top1_error": study.target_top1_error,
        "final_evals": study.final_evals,
        "equivalence_margin": study.equivalence_margin,
        "stall_top1_error": study.stall_top1_error,
        "died_top1_error": _died_error(study),
        "learning_rates": {arm: configs[arm].learning_rate for arm in arms},
        "training_gflops_per_image": {arm: flops[arm] / 1e9 for arm in arms},
        "arms": {arm: _jsonable(dataclasses.asdict(s)) for arm, s in summaries.items()},
        "comparisons": comparisons,
        "missing_runs": missing,
        "figures": [f.rsplit("/", 1)[-1] for f in figures],
    }
    paths.write_text(paths.join(out, "summary.json"), json.dumps(summary, indent=1))
    paths.write_text(
        paths.join(out, "summary.md"), summary_markdown(summaries, comparisons, study, configs, flops, missing)
    )
    return summary


def _died_error(study: Any) -> float:
    """The study's threshold for "died" (studies written before it existed use the default)."""
    return getattr(study, "died_top1_error", DIED_ERROR)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    return x


def _slopes(slopes: dict[int, tuple[float, float, float]]) -> str:
    """Median slope over seeds and how many seeds' 95% intervals include 0 (flat)."""
    fitted = [s for s in slopes.values() if not math.isnan(s[0])]  # a short curve has no fit
    if not fitted:
        return "-"
    flat = sum(low <= 0 <= high for _, low, high in fitted)
    return f"{100 * float(np.median([m for m, _, _ in fitted])):+.2f} ({flat}/{len(fitted)} flat)"


def summary_markdown(summaries, comparisons, study, configs, flops, missing) -> str:
    target = study.target_top1_error
    lines = [
        f"Validation: {study.final_evals} last evaluations averaged; test: scored once after the last step. "
        "Errors in %, mean over seeds with a 95% t-interval on the logit scale (stays inside 0-100). "
        f"Images to {100 * target:.0f}%: restricted mean over seeds (runs that never get there count at the run's "
        "length) with a t-interval. Counts with exact (Clopper-Pearson) 95% intervals. Died: a non-finite loss, "
        f"or below 50% validation error once and at or above {100 * _died_error(study):.0f}% "
        "at every evaluation of the run's last third. Slope: least squares through the last third of each "
        "validation-error curve, median over seeds; flat: its 95% interval includes 0.",
        "",
        f"| arm | lr / 32 | train MFLOPs / image | seeds | final val. error % | test error % | reach {100 * target:.0f}% "
        f"| images to {100 * target:.0f}% (RMST) | stalled (> {100 * study.stall_top1_error:.0f}%) | diverged "
        "| died | last-third slope, points / 100 steps (flat) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, s in summaries.items():
        n = len(s.seeds)
        rmst = f"{_k(s.rmst[0])}" + (f" ({_k(s.rmst[1])}-{_k(s.rmst[2])})" if not math.isnan(s.rmst[1]) else "")
        lines.append(
            f"| {arm} | {configs[arm].learning_rate:g} | {flops[arm] / 1e6:.0f} | {n} | {_pct(s.final_val_ci)} | "
            f"{_pct(s.test_ci) if s.test else '-'} | {_count([k for k, v in s.reached.items() if v], n)} | {rmst} | "
            f"{_count(s.stalled, n)} | {_count(s.diverged, n)} | {_count(s.died, n)} | {_slopes(s.slopes)} |"
        )
    lines.append("")
    lines += [f"- **{c['plain']} vs {c['residual']}**: {c['verdict']}" for c in comparisons]
    if missing:
        lines += ["", f"Runs not finished yet (left out): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"
