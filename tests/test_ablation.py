"""The ablation study: statistics against hand-computed numbers, and a tiny study end to end."""

import math
import os
import signal
import subprocess
import sys
import time

import pytest

from inception_flax import ablation
from inception_flax.ablation.stats import Point, diff_ci, summarize_arm
from tests.test_train import ROOT


def curve(arm, seed, errors, steps=(10, 20, 30, 40)):
    return [Point(arm, seed, s, s / 10, "val", "top1_error", e) for s, e in zip(steps, errors, strict=True)] + [
        Point(arm, seed, s, s / 10, "val", "top5_error", e / 2) for s, e in zip(steps, errors, strict=True)
    ]


# Three plain runs (one never reaches 0.3) and three residual runs, by hand:
PLAIN = [[0.9, 0.5, 0.3, 0.2], [0.9, 0.6, 0.4, 0.25], [0.9, 0.8, 0.6, 0.5]]
RESIDUAL = [[0.6, 0.3, 0.2, 0.2], [0.5, 0.25, 0.2, 0.1], [0.7, 0.4, 0.3, 0.3]]
POINTS = [p for i, e in enumerate(PLAIN) for p in curve("plain", i, e)]
POINTS += [p for i, e in enumerate(RESIDUAL) for p in curve("residual", i, e)]


def test_statistics_match_hand_computation():
    plain = summarize_arm(POINTS, "plain", 0.3)
    residual = summarize_arm(POINTS, "residual", 0.3)
    # Steps to 0.3: plain 30, 40, never (counted at 40); residual 20, 20, 30.
    assert plain.run_steps == [30.0, 40.0, 40.0] and plain.reached == 2
    assert residual.run_steps == [20.0, 20.0, 30.0] and residual.reached == 3
    # Final top-1 errors: plain 0.2, 0.25, 0.5: mean 0.31667, sd 0.16073, t(0.975, 2) = 4.3027.
    m, low, high = plain.final_top1
    assert m == pytest.approx(0.316667, abs=1e-6)
    assert high - m == pytest.approx(4.302653 * 0.160728 / math.sqrt(3), rel=1e-5)
    assert low == pytest.approx(2 * m - high)
    assert residual.steps[0] == pytest.approx(70 / 3)
    # Welch difference of final errors: residual 0.2, 0.1, 0.3 (mean 0.2) minus plain (0.31667).
    d, dlow, dhigh = diff_ci(residual.final_top1_runs, plain.final_top1_runs)
    assert d == pytest.approx(-0.116667, abs=1e-6) and dlow < d < dhigh
    text = ablation.verdict(plain, residual, 0.3)
    ratio = (70 / 3) / (110 / 3)
    assert f"in {ratio:.2f}x the steps of plain" in text
    assert "1 of 3 plain runs never got there" in text and "not significant" in text


def test_summary_refuses_an_arm_without_a_curve():
    with pytest.raises(ValueError, match="nothing to score against"):
        summarize_arm(POINTS, "v4", 0.3)


def run(args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "ablation.py"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


def test_tiny_study_resumes_skips_and_reports(tmp_path, monkeypatch):
    from inception_flax import data

    tfds_dir = str(tmp_path / "tfds")
    data.get_source("inception_digits", tfds_dir)
    config = tmp_path / "tiny_config.py"
    config.write_text(
        (ROOT / "tests" / "ablation_tiny.py").read_text().replace('DATA_DIR = ""', f"DATA_DIR = {tfds_dir!r}")
    )
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

    proc = run(args)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-3000:]
    assert "Resumed inception_resnet_v1 from step 2" in out and "[run 4/4] residual seed 1" in out
    for arm in ("plain", "residual"):
        for seed in (0, 1):
            assert (work / arm / f"seed{seed}" / "done.json").exists()
    report = work / "report"
    for name in (
        "curves.csv",
        "summary.json",
        "summary.md",
        "plain_vs_residual.png",
        "plain_vs_residual_flops.png",
        "all_arms.png",
        "training.png",
    ):
        assert (report / name).stat().st_size > 0, name
    rows = (report / "curves.csv").read_text().splitlines()
    assert rows[0] == "arm,seed,step,epoch,split,metric,value"
    steps = {r.split(",")[2] for r in rows[1:] if ",val,top1_error," in r and r.startswith("plain,0,")}
    assert steps == {"2", "4"}  # the step replayed after the kill counts once
    assert "plain vs residual" in (report / "summary.md").read_text()

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
