"""The ablation study: statistics against hand-computed numbers, and a tiny study end to end."""

import dataclasses
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as scipy_stats

from inception_flax import ablation
from inception_flax.ablation.stats import (
    Point,
    clopper_pearson,
    holm,
    kaplan_meier,
    last_third_slope,
    paired,
    pooled_paired_sd,
    returned_to_chance,
    summarize_arm,
    tost,
    tost_power,
)
from inception_flax.config_base import ConfigError
from tests.helpers import ROOT, run_script


def curve(arm, seed, errors, steps=(10, 20, 30, 40)):
    return [Point(arm, seed, s, s / 10, "val", "top1_error", e) for s, e in zip(steps, errors, strict=True)]


# Three plain runs (one never reaches 0.3) and three residual runs, by hand:
PLAIN = [[0.9, 0.5, 0.3, 0.2], [0.9, 0.6, 0.4, 0.25], [0.9, 0.8, 0.6, 0.5]]
RESIDUAL = [[0.6, 0.3, 0.2, 0.2], [0.5, 0.25, 0.2, 0.1], [0.7, 0.4, 0.3, 0.3]]
POINTS = [p for i, e in enumerate(PLAIN) for p in curve("plain", i, e)]
POINTS += [p for i, e in enumerate(RESIDUAL) for p in curve("residual", i, e)]
ARGS = {"target": 0.3, "final_evals": 2, "images_per_step": 8, "num_steps": 40, "eval_examples": 300}


def test_statistics_match_hand_computation():
    plain = summarize_arm(POINTS, "plain", **ARGS)
    residual = summarize_arm(POINTS, "residual", **ARGS)
    # Steps to 0.3: plain 30, 40, never (censored at the run's 40 steps, the same number); residual 20, 20, 30. 8 images a step.
    assert plain.images == {0: 240.0, 1: 320.0, 2: 320.0} and plain.reached == {0: True, 1: True, 2: False}
    assert residual.images == {0: 160.0, 1: 160.0, 2: 240.0} and all(residual.reached.values())
    assert plain.rmst[0] == pytest.approx(880 / 3)
    # Final error: the mean of the last 2 evaluations per seed.
    assert plain.final_val == pytest.approx({0: 0.25, 1: 0.325, 2: 0.55})
    assert plain.stalled == () and plain.diverged == ()
    # Paired differences residual - plain: images -80, -160, -80 (mean -106.67, sd 46.19, t(0.975, 2) = 4.3027).
    c = paired(plain.images, residual.images)
    assert c.mean == pytest.approx(-320 / 3)
    assert c.high - c.mean == pytest.approx(4.302653 * 46.188022 / math.sqrt(3), rel=1e-5)
    assert c.p == pytest.approx(2 * scipy_stats.t.sf((320 / 3) / (46.188022 / math.sqrt(3)), 2), rel=1e-6)
    # Final errors residual 0.2, 0.15, 0.3 minus plain 0.25, 0.325, 0.55: -0.05, -0.175, -0.25.
    f = paired(plain.final_val, residual.final_val)
    assert f.diffs == pytest.approx((-0.05, -0.175, -0.25))
    # TOST at a 0.5 margin: the larger one-sided p; at 0.05, far from equivalent.
    se = scipy_stats.tstd(f.diffs) / math.sqrt(3)
    assert tost(f.diffs, 0.5) == pytest.approx(scipy_stats.t.sf((f.mean + 0.5) / se, 2))  # nearer -0.5 than +0.5
    assert tost(f.diffs, 0.5) < 0.05 < tost(f.diffs, 0.05)
    # A diverged run counts at chance and never reaches the target.
    div = summarize_arm(POINTS, "residual", **ARGS, diverged=[1])
    assert div.final_val[1] == 0.9 and div.reached[1] is False and div.images[1] == 320.0 and div.diverged == (1,)
    assert div.died == (1,) and plain.died == ()  # a non-finite loss is a death


def test_interval_helpers():
    assert clopper_pearson(0, 5) == (0.0, pytest.approx(1 - 0.025 ** (1 / 5)))
    assert clopper_pearson(5, 5) == (pytest.approx(0.025 ** (1 / 5)), 1.0)
    low, high = clopper_pearson(2, 5)
    assert low == pytest.approx(0.0527, abs=1e-4) and high == pytest.approx(0.8534, abs=1e-4)
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(holm([math.nan, 0.02])[0]) and holm([math.nan, 0.02])[1] == 0.02
    # With two seeds a t-interval of error differences overruns [-1, 1]; it is cut there.
    wide = paired({0: 0.9, 1: 0.05}, {0: 0.05, 1: 0.05})
    cut = paired({0: 0.9, 1: 0.05}, {0: 0.05, 1: 0.05}, bound=1.0)
    assert wide.low < -1 < 1 < wide.high and (cut.low, cut.high) == (-1.0, 1.0) and cut.mean == wide.mean
    # Kaplan-Meier: 4 runs reach at 10, 20, 20; one censored at 40.
    t, s = kaplan_meier([10, 20, 20, 40], [True, True, True, False])
    assert list(t) == [0, 10, 20] and s == pytest.approx([1, 0.75, 0.25])


@pytest.mark.parametrize("true_diff", [0.0, 0.01, 0.02])
def test_tost_power_is_the_rate_at_which_tost_calls_equivalence(true_diff):
    """Simulated paired studies of 10 seeds (SD 2 points, margin 2 points) through `tost` itself."""
    rng = np.random.default_rng(0)
    trials = 4000
    hits = sum(tost(rng.normal(true_diff, 0.02, 10), 0.02) < 0.05 for _ in range(trials))
    power = tost_power(10, 0.02, 0.02, true_diff)
    assert abs(hits / trials - power) < 3.5 * math.sqrt(power * (1 - power) / trials) + 1e-3
    if true_diff == 0.02:  # at the margin: the test's size, at most 5%
        assert power <= 0.05
    assert math.isnan(tost_power(1, 0.02, 0.02))


def test_last_third_slope_and_the_return_to_chance():
    steps = np.arange(0, 1000, 50)
    slope, low, high = last_third_slope(steps, 0.5 - 0.0004 * steps)  # -0.04 per 100 steps, exactly
    assert slope == pytest.approx(-0.04) and low == pytest.approx(-0.04) and high == pytest.approx(-0.04)
    noisy = 0.1 + np.random.default_rng(1).normal(0, 0.01, len(steps))
    slope, low, high = last_third_slope(steps, noisy)
    assert low < 0 < high  # a flat curve: the interval includes 0
    assert returned_to_chance(steps, np.r_[np.linspace(0.9, 0.3, 10), np.full(10, 0.9)], 0.85)
    assert not returned_to_chance(steps, np.full(20, 0.9), 0.85)  # never learned: stalled, not died
    assert not returned_to_chance(steps, np.r_[np.full(16, 0.3), np.full(4, 0.9)], 0.85)  # not the whole last third


def test_curves_csv_round_trip_and_the_plateau_table(tmp_path):
    from inception_flax.ablation import report

    report.write_curves(POINTS, str(tmp_path / "curves.csv"))
    assert report.read_curves_csv(str(tmp_path / "curves.csv")) == POINTS
    steps = range(0, 100, 10)
    linear = curve("v4", 0, [0.5 - 0.001 * s for s in steps], steps)  # -10 points per 100 steps
    rows = [line.split(" | ") for line in report.plateau_markdown(POINTS + linear).splitlines()]
    assert [r[4:] for r in rows if r[0] == "| v4"] == [["-10.00", "-10.00 to -10.00", "no |"]]
    # 4 evaluations leave 2 in the last third: no line to fit
    assert [r[4] for r in rows if r[0] == "| plain"] == ["too few evaluations"] * 3


def test_pooled_paired_sd_and_the_pilot_line_that_plans_the_study(tmp_path):
    from inception_flax.ablation import report

    # Pair (a, b): differences 0.1, 0.3 (mean 0.2, squares 0.02); pair (c, b): 0.0, 0.1, 0.5 over
    # the seeds they share (mean 0.2, squares 0.14); 1 + 2 degrees of freedom.
    finals = {"a": {0: 0.5, 1: 0.6}, "b": {0: 0.4, 1: 0.3, 2: 0.1}, "c": {0: 0.4, 1: 0.4, 2: 0.6}, "d": {0: 0.2}}
    sd, df = pooled_paired_sd(finals, [("a", "b"), ("c", "b"), ("d", "b")])
    assert df == 3 and sd == pytest.approx(math.sqrt(0.16 / 3))
    assert pooled_paired_sd(finals, [("d", "b")]) == (pytest.approx(math.nan, nan_ok=True), 0)

    # A two-seed pilot of two arms at two rates: the paired SD is taken at each arm's chosen rate.
    def runs(arm, rate, finals_by_seed):
        return [p for seed, e in finals_by_seed.items() for p in curve(f"{arm}@lr{rate:g}", seed, [0.9, 0.5, e, e])]

    points = runs("p", 0.1, {0: 0.10, 1: 0.20}) + runs("p", 0.3, {0: 0.5, 1: 0.5})
    points += runs("r", 0.1, {0: 0.12, 1: 0.18}) + runs("r", 0.3, {0: 0.05, 1: 0.05})
    # q never learns (at or above 50% at both rates): its pair is reported, not pooled.
    points += runs("q", 0.1, {0: 0.9, 1: 0.6}) + runs("q", 0.3, {0: 0.9, 1: 0.9})
    study = dataclasses.make_dataclass(
        "S",
        [("final_evals", int, 2), ("pairs", tuple, (("q", "r"), ("p", "r"))), ("planned_seeds", int, 10)],
    )
    study.equivalence_margin, study.learned_top1_error = 0.02, 0.5
    names = [(f"{a}@lr{r:g}", s, None) for a in "pqr" for r in (0.1, 0.3) for s in (0, 1)]
    summary = report.write_pilot(points, names, study(), str(tmp_path), [])
    assert summary["chosen_learning_rate"] == {"p": 0.1, "q": 0.1, "r": 0.3}
    # p at 0.1 minus r at 0.3: 0.05 and 0.15 -> SD sqrt(0.005); q - r (0.85, 0.55) is left out
    assert summary["paired_sd"] == pytest.approx(math.sqrt(0.005)) and summary["paired_sd_df"] == 1
    assert summary["paired_sd_pairs"] == [["p", "r"]]
    q = summary["pairs"]["q - r"]
    assert q["mean"] == pytest.approx(0.7) and q["sd"] == pytest.approx(math.sqrt(0.045)) and not q["planned"]
    assert summary["pairs"]["p - r"]["planned"] and summary["pairs"]["p - r"]["mean"] == pytest.approx(0.1)
    assert summary["tost_power_at_paired_sd"] == pytest.approx(tost_power(10, math.sqrt(0.005), 0.02))
    text = (tmp_path / "pilot.md").read_text()
    assert "q - r +70.0 (SD 21.21, 2 seeds; q ends at or above 50%, left out of the plan)" in text
    assert "p - r +10.0 (SD 7.07, 2 seeds)" in text
    assert "Pooled over p - r: SD 7.07 points (1 degrees of freedom)" in text


def test_summary_refuses_an_arm_without_a_curve():
    with pytest.raises(ValueError, match="nothing to score against"):
        summarize_arm(POINTS, "v4", **ARGS)


def run(args, **kwargs):
    return run_script(args, {"PYTHONPATH": str(ROOT)}, script="ablation.py", **kwargs)


def tiny_config(tmp_path):
    """tests/ablation_tiny.py with its data in a fresh TFDS dir under `tmp_path`."""
    from inception_flax import data

    tfds_dir = str(tmp_path / "tfds")
    data.get_source("inception_digits", tfds_dir)
    config = tmp_path / "tiny_config.py"
    config.write_text(
        (ROOT / "tests" / "ablation_tiny.py").read_text().replace('DATA_DIR = ""', f"DATA_DIR = {tfds_dir!r}")
    )
    return config


def test_tiny_study_resumes_skips_and_reports(tmp_path, monkeypatch):
    config = tiny_config(tmp_path)
    work = tmp_path / "study"
    args = [f"--config={config}", "--study=tiny", f"--workdir={work}"]

    # Kill the first run as soon as its first checkpoint exists.
    victim = run(args)
    deadline = time.time() + 600
    while not (work / "plain" / "seed0" / "checkpoints" / "2").exists():
        assert victim.poll() is None and time.time() < deadline, victim.communicate()[0][-3000:]
        time.sleep(0.1)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (work / "plain" / "seed0" / "done.json").exists()

    # Two workers, one CPU each: worker 0 resumes plain/seed0 and trains plain/seed1, worker 1 the residual runs.
    proc = run([*args, "--parallel=2"])
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    assert "Resumed inception_resnet_v1 from step 2" in out and "[run 2/2] residual seed 1" in out
    assert "worker 1/2 on CPUs" in out
    for arm in ("plain", "residual"):
        for seed in (0, 1):
            done = json.loads((work / arm / f"seed{seed}" / "done.json").read_text())
            assert done["test_num_examples"] == 16 and 0 <= done["test_top1_error"] <= 1  # scored once, at the end
    report = work / "report"
    for name in (
        "curves.csv",
        "summary.json",
        "summary.md",
        "plain_vs_residual.png",
        "time_to_target.png",
        "training.png",
    ):
        assert (report / name).stat().st_size > 0, name
    rows = (report / "curves.csv").read_text().splitlines()
    assert rows[0] == "arm,seed,step,epoch,split,metric,value"
    steps = {r.split(",")[2] for r in rows[1:] if ",val,top1_error," in r and r.startswith("plain,0,")}
    assert steps == {"2", "4"}  # the step replayed after the kill counts once
    text = (report / "summary.md").read_text()
    assert "**plain vs residual**" in text and "TOST p =" in text and "test error" in text
    summary = json.loads((report / "summary.json").read_text())
    assert summary["arms"]["plain"]["test"] == {
        "0": pytest.approx(json.loads((work / "plain" / "seed0" / "done.json").read_text())["test_top1_error"]),
        "1": pytest.approx(json.loads((work / "plain" / "seed1" / "done.json").read_text())["test_top1_error"]),
    }

    # Again: everything is finished, nothing trains; the report is rebuilt.
    proc = run(args)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0 and "All 4 runs finished (0 trained now" in out
    (report / "summary.md").unlink()
    proc = run([*args, "--report_only"])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0 and (report / "summary.md").exists()

    # The same workdir with other settings is refused, nothing touched.
    config.write_text(config.read_text().replace("c.num_train_steps = 4", "c.num_train_steps = 5"))
    proc = run(args)
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0 and "other settings" in out and "num_train_steps: 4 -> 5" in out
    config.write_text(config.read_text().replace("target_top1_error: float = 0.85", "target_top1_error: float = 1.5"))
    proc = run([f"--config={config}", "--study=tiny", f"--workdir={tmp_path / 'other'}"])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0 and "target_top1_error=1.5: no run can be scored against it" in out
    proc = run([f"--config={config}", "--study=huge", f"--workdir={work}"])
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode != 0 and "Unknown study 'huge'; studies: tiny" in out


def test_tiny_pilot_chooses_the_rate_with_the_lowest_validation_error(tmp_path):
    config = tiny_config(tmp_path)
    work = tmp_path / "pilot"
    proc = run([f"--config={config}", "--study=tiny_pilot", f"--workdir={work}"])
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    for rate in ("0.01", "0.05"):
        settings = json.loads((work / f"residual@lr{rate}" / "seed0" / "run.json").read_text())
        assert settings["learning_rate"] == float(rate)
    pilot = json.loads((work / "report" / "pilot.json").read_text())
    errors = pilot["final_top1_error"]["residual"]
    assert set(errors) == {"0.01", "0.05"}
    assert pilot["chosen_learning_rate"]["residual"] == float(min(errors, key=errors.get))
    assert (work / "report" / "pilot.png").stat().st_size > 0 and "| residual |" in out


def test_scaling_interval_on_the_logit_scale_stays_inside_0_1():
    from scipy import stats as scipy_stats

    from inception_flax.ablation.scaling import logit_ci

    errors = [0.0, 0.01, 0.03]  # a t-interval of the raw rates would go below 0
    mean, low, high = logit_ci(errors, num_examples=300)
    z = [math.log(e / (1 - e)) for e in (0.5 / 300, 0.01, 0.03)]  # 0 moved half an example inwards
    half = scipy_stats.t.ppf(0.975, 2) * scipy_stats.tstd(z) / math.sqrt(3)
    m = sum(z) / 3
    assert mean == pytest.approx(sum(errors) / 3)
    assert low == pytest.approx(1 / (1 + math.exp(-(m - half)))) and high == pytest.approx(
        1 / (1 + math.exp(-(m + half)))
    )
    assert 0 < low < high < 1


def test_study_runs_pilot_rates_extensions_and_factor():
    module = ablation.load_config_module(str(ROOT / "configs" / "ablation.py"))
    pilot = module.get_study("pilot")
    extra = sum(len(rates) for _, rates in pilot.extra_rates)
    assert len(ablation.run_configs(module.get_config, pilot)) == len(pilot.arms) * len(pilot.learning_rates) + extra
    pilot = dataclasses.replace(pilot, extra_rates=())
    runs = ablation.run_configs(module.get_config, pilot)
    assert {(n, c.learning_rate) for n, _, c in runs if n.startswith("v4@")} == {
        (f"v4@lr{r:g}", r) for r in pilot.learning_rates
    }
    extended = dataclasses.replace(pilot, extra_rates=(("v4", (0.5,)),))
    names = [n for n, _, _ in ablation.run_configs(module.get_config, extended)]
    assert len(names) == len(runs) + 1 and "v4@lr0.5" in names
    scaling = module.get_study("scaling")
    for arm, _, config in ablation.run_configs(module.get_config, scaling):
        assert config.learning_rate == pytest.approx(module.SCALING_FACTOR * module.RATES[arm])
    # Every run of the cpu study: validation carved from the training digits, never the test digits.
    for _, _, config in ablation.run_configs(module.get_config, module.get_study("cpu")):
        assert (config.train_split, config.eval_split) == ("train[300:]", "train[:300]")
    assert ablation.shard(list(range(5)), 1, 2) == [1, 3]


def test_the_claim_studies_are_fixed_before_they_run():
    """Pilots on seeds the studies never use; claim 2 with 10 paired seeds and the faithful twin
    first; claim 3 at a width whose widest stream exceeds 1,000 channels, at the rate and 3x it."""
    from inception_flax import models, step

    module = ablation.load_config_module(str(ROOT / "configs" / "ablation.py"))
    pilots = {s for name in ("length", "rates") for s in module.get_study(name).seeds}
    claim2, claim3 = module.get_study("claim2"), module.get_study("claim3")
    assert not pilots & (set(claim2.seeds) | set(claim3.seeds))
    assert len(claim2.seeds) >= 10 and claim2.pairs[0] == ("twin", "ir_v2") and claim2.test_split
    twin = module.get_config("twin,long")
    assert dict(twin.model_options) == {"residual": False, "plain_bn": False}
    assert twin.num_epochs == module.LONG_EPOCHS and twin.eval_every_steps == 37  # one evaluation an epoch
    wide = module.get_config("scale1.0,wide")
    layers = models.trace_layers(models.create(wide.model, **step.architecture(wide, 10)), wide.image_size)
    assert max(layer.output_shape[-1] for layer in layers) == 1040
    fast = {a: c.learning_rate for a, _, c in ablation.run_configs(module.get_config, module.get_study("claim3_fast"))}
    slow = {a: c.learning_rate for a, _, c in ablation.run_configs(module.get_config, claim3)}
    assert fast == pytest.approx({a: 3 * r for a, r in slow.items()})


def test_parallel_workers_get_their_cpus_and_a_share_of_a_gpu(tmp_path):
    from inception_flax.ablation import runner

    script = "import os, sys; open(sys.argv[1] + sys.argv[2][-3:].replace('/', '_'), 'w').write("
    script += "os.environ['XLA_PYTHON_CLIENT_MEM_FRACTION'] + ' ' + str(sorted(os.sched_getaffinity(0))))"
    runner.run_parallel([sys.executable, "-c", script, str(tmp_path / "w")], 2, progress=lambda _: None)
    said = {p.name: p.read_text().split(" ", 1) for p in tmp_path.iterdir()}
    assert {k: v[0] for k, v in said.items()} == {"w0_2": "0.450", "w1_2": "0.450"}
    assert said["w0_2"][1] != said["w1_2"][1]  # disjoint CPU sets
    assert runner.worker_env(4, {"XLA_PYTHON_CLIENT_MEM_FRACTION": "0.2"})["XLA_PYTHON_CLIENT_MEM_FRACTION"] == "0.2"


def test_parallel_deals_only_the_unfinished_runs_so_no_worker_idles(tmp_path):
    """A study resumed with runs 0, 1 and 3 of 6 finished: static shards would give worker 0 runs
    2 and 4 and worker 1 run 5; dealt, the three left go 2, 5 to one and 4 to the other, each
    worker on its own CPUs. With one run left, one worker gets every CPU; with none, none starts."""
    from inception_flax.ablation import runner

    runs = [(arm, seed, None) for seed in range(3) for arm in ("plain", "residual")]
    work = str(tmp_path / "study")
    for i in (0, 1, 3):
        arm, seed, _ = runs[i]
        Path(runner.run_dir(work, arm, seed)).mkdir(parents=True)
        Path(runner.run_dir(work, arm, seed), runner.DONE_FILE).write_text("{}")
    assert ablation.deal(work, runs, 2) == [[2, 5], [4]]
    assert ablation.deal(work, runs, 4) == [[2], [4], [5]]
    assert ablation.select(runs, "2,5") == [runs[2], runs[5]] and ablation.select(runs, "1/2") == runs[1::2]
    with pytest.raises(ValueError, match="runs 0 to 5"):
        ablation.select(runs, "2,6")

    script = "import os, sys; open(os.path.join(sys.argv[1], str(os.getpid())), 'w').write("
    script += "sys.argv[2] + ' ' + str(sorted(os.sched_getaffinity(0))))"
    out = tmp_path / "said"
    out.mkdir()
    said = []
    runner.run_parallel([sys.executable, "-c", script, str(out)], 2, progress=said.append, shares=[[2, 5], [4]])
    told = sorted(p.read_text().split(" ", 1) for p in out.iterdir())
    assert [t[0] for t in told] == ["--shard=2,5", "--shard=4"] and told[0][1] != told[1][1]
    assert said[0].startswith("worker 0/2 on CPUs") and said[0].endswith("--shard=2,5")
    for p in out.iterdir():
        p.unlink()
    runner.run_parallel([sys.executable, "-c", script, str(out)], 2, progress=lambda _: None, shares=[[5]])
    ((spec, cpus),) = (p.read_text().split(" ", 1) for p in out.iterdir())
    assert spec == "--shard=5" and cpus == str(sorted(os.sched_getaffinity(0)))
    runner.run_parallel([sys.executable, "-c", "raise SystemExit(1)"], 2, progress=lambda _: None, shares=[])


def test_records_carry_a_study_across_machines_that_keep_nothing(tmp_path, monkeypatch):
    """Each finished run is kept in the records folder; a fresh workdir with those records trains
    only what is missing, and the report reads the records' metrics as its own."""
    from inception_flax import metrics_log
    from inception_flax.ablation import runner

    module = ablation.load_config_module(str(ROOT / "configs" / "ablation.py"))
    runs = ablation.run_configs(module.get_config, module.get_study("cpu"))[:3]
    monkeypatch.setattr(runner.preflight, "validate", lambda config, workdir: None)
    trained = []

    def fake_train(config, path, plan):
        trained.append(path)
        metrics_log.append(path, 444, 12.0, {"eval_top1_error": 0.25})
        return {"step": 444}

    monkeypatch.setattr(runner.train, "train_and_evaluate", fake_train)
    records, first, second = (str(tmp_path / name) for name in ("records", "sitting1", "sitting2"))
    runner.train_or_check(first, runs[:2], False, records=records)  # the first sitting ends after 2 runs
    assert len(trained) == 2
    assert sorted(p.name for p in (tmp_path / "records" / runs[0][0] / "seed0").iterdir()) == sorted(
        runner.RECORD_FILES
    )
    runner.train_or_check(second, runs, False, records=records)  # a new machine: only the third trains
    assert trained[2:] == [runner.run_dir(second, runs[2][0], 0)]
    assert metrics_log.read(runner.run_dir(second, runs[0][0], 0)) == [
        {"step": 444, "epoch": 12.0, "eval_top1_error": 0.25}
    ]
    # Records made with other settings are refused before anything is copied.
    other = [(arm, seed, config.copy_and_resolve_references()) for arm, seed, config in runs]
    other[0][2].learning_rate *= 2
    with pytest.raises(ConfigError, match="other settings"):
        runner.train_or_check(str(tmp_path / "sitting3"), other, False, records=records)
    assert not (tmp_path / "sitting3").exists()


def test_a_preempted_run_is_not_finished_and_the_study_stops(tmp_path, monkeypatch):
    """SIGTERM: the run saved and returned early (no done.json, no test score, nothing new starts);
    SIGTERM in a run's last step: that run is finished, and nothing new starts either."""
    from inception_flax.ablation import runner

    module = ablation.load_config_module(str(ROOT / "configs" / "ablation.py"))
    runs = ablation.run_configs(module.get_config, module.get_study("cpu"))[:3]
    monkeypatch.setattr(runner.preflight, "validate", lambda config, workdir: None)
    results = iter([{"step": 444, "preempted": False, "stop_requested": True}, {"step": 40, "preempted": True}])
    monkeypatch.setattr(runner.train, "train_and_evaluate", lambda config, path, plan: next(results))
    monkeypatch.setattr(runner, "score_test", lambda path, config, split: {"test_top1_error": 0.5})
    said = []
    runner.run_study(str(tmp_path), runs, progress=said.append, test_split="test")
    assert (tmp_path / runs[0][0] / "seed0" / "done.json").exists() and "which finished; stopping here" in said[-1]
    assert not (tmp_path / runs[1][0]).exists()
    runner.run_study(str(tmp_path), runs, progress=said.append, test_split="test")
    assert "stopped at step 40 for preemption" in said[-1]
    assert not (tmp_path / runs[1][0] / "seed0" / "done.json").exists() and not (tmp_path / runs[2][0]).exists()


def test_a_resumed_run_reports_the_time_of_all_its_segments(tmp_path, monkeypatch):
    """done.json's `seconds` adds up every segment that returned (preempted, raised, finished)."""
    import types

    from inception_flax.ablation import runner

    module = ablation.load_config_module(str(ROOT / "configs" / "ablation.py"))
    runs = ablation.run_configs(module.get_config, module.get_study("cpu"))[:1]
    monkeypatch.setattr(runner.preflight, "validate", lambda config, workdir: None)
    clock = [1000.0]
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(time=lambda: clock[0]))

    def segments():
        clock[0] += 30.0
        yield {"step": 40, "preempted": True}
        clock[0] += 5.0
        yield RuntimeError("the host went away")
        clock[0] += 70.0
        yield {"step": 444}

    results = segments()

    def fake_train(config, path, plan):
        result = next(results)
        if isinstance(result, Exception):
            raise result
        return result

    monkeypatch.setattr(runner.train, "train_and_evaluate", fake_train)
    runner.run_study(str(tmp_path), runs, progress=lambda _: None)
    with pytest.raises(RuntimeError, match="went away"):
        runner.run_study(str(tmp_path), runs, progress=lambda _: None)
    (done,) = runner.run_study(str(tmp_path), runs, progress=lambda _: None)
    assert (done["seconds"], done["segments"], done["segments_killed"], done["step"]) == (105.0, 3, 0, 444)


def test_a_run_killed_outright_still_counts_its_time_to_the_last_heartbeat(tmp_path, monkeypatch):
    """SIGKILL runs no handler: the clock file on disk at that moment (stamped by the heartbeat)
    is all the next segment has, and it counts the killed segment from it."""
    import shutil
    import types

    from inception_flax.ablation import runner

    module = ablation.load_config_module(str(ROOT / "configs" / "ablation.py"))
    runs = ablation.run_configs(module.get_config, module.get_study("cpu"))[:1]
    monkeypatch.setattr(runner.preflight, "validate", lambda config, workdir: None)
    monkeypatch.setattr(runner, "HEARTBEAT_SECONDS", 0.01)
    clock = [1000.0]
    monkeypatch.setattr(runner, "time", types.SimpleNamespace(time=lambda: clock[0]))
    file = tmp_path / "at_the_kill.json"

    def killed(config, path, plan):
        clock[0] += 40.0  # trains 40 s, stamped alive, then 3 s more that no stamp saw
        stamp = Path(path) / runner.CLOCK_FILE
        deadline = time.time() + 30
        while json.loads(stamp.read_text())["open"]["alive"] != 1040.0:
            assert time.time() < deadline, "the heartbeat never stamped the clock"
            time.sleep(0.005)
        monkeypatch.setattr(runner, "HEARTBEAT_SECONDS", 3600.0)  # no stamp after the one taken
        time.sleep(0.05)
        shutil.copy(stamp, file)  # what a SIGKILL now would leave on disk
        clock[0] += 3.0
        raise SystemExit("killed")

    def finishes(config, path, plan):
        clock[0] += 70.0
        return {"step": 444}

    monkeypatch.setattr(runner.train, "train_and_evaluate", killed)
    with pytest.raises(SystemExit):
        runner.run_study(str(tmp_path), runs, progress=lambda _: None)
    run = Path(runner.run_dir(str(tmp_path), runs[0][0], runs[0][1]))
    shutil.copy(file, run / runner.CLOCK_FILE)  # the handler that counted the 43 s never ran
    monkeypatch.setattr(runner.train, "train_and_evaluate", finishes)
    (done,) = runner.run_study(str(tmp_path), runs, progress=lambda _: None)
    assert (done["seconds"], done["segments"], done["segments_killed"]) == (110.0, 2, 1)
    assert "open" not in json.loads((run / runner.CLOCK_FILE).read_text())


@pytest.mark.parametrize("scale", ["cpu", "long", "wide", "imagenet"])
def test_arms_share_the_recipe_and_differ_only_in_the_network(scale):
    """A fair ablation: each arm changes the network (and its own learning rate at CPU scale), nothing
    else; no arm runs under a gradient clip that would freeze the plain twin."""
    module = ablation.load_config_module(str(ROOT / "configs" / "ablation.py"))
    reference = module.get_config(f"ir_v2,{scale}").to_dict()
    per_arm = {"model", "model_options", "learning_rate", "weight_decay_biases"}
    for arm in module.ARMS:
        config = module.get_config(f"{arm},{scale}").to_dict()
        assert config["grad_clip_norm"] == 0.0, arm
        assert {k for k in config if config[k] != reference[k]} <= per_arm, arm
    if scale == "imagenet":  # one recipe at ImageNet scale: no arm has a rate of its own yet
        rates = {module.get_config(f"{arm},{scale}").learning_rate for arm in module.ARMS}
        assert len(rates) == 1


def test_run_health_plots_runs_from_their_metrics_logs(tmp_path):
    run = tmp_path / "twin@lr0.05" / "seed100"
    run.mkdir(parents=True)
    rows = [
        {"step": 37 * e, "epoch": float(e), "train_top1": 0.1, "train_grad_norm": 10.0**-e, "train_l2_loss": 4e3}
        for e in (1, 2, 3)
    ]
    rows += [{"step": 37 * e, "epoch": float(e), "eval_top1_error": 0.9 - 0.1 * e} for e in (1, 2, 3)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "health.png"
    proc = run_script([f"--out={out}", str(run)], script="run_health.py")
    text, _ = proc.communicate()
    assert proc.returncode == 0 and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", text
    proc = run_script([f"--out={out}", str(tmp_path)], script="run_health.py")
    text, _ = proc.communicate()
    assert proc.returncode != 0 and "no metrics.jsonl in" in text
