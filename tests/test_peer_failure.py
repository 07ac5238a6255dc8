"""CI's multi-process fault case: one of two jax.distributed processes raises.

Both must exit non-zero within seconds (not after `--shutdown_timeout`), each with a line naming
the process that failed; the same command then resumes from the checkpoint and recomputes the
steps the failed run had done bit for bit. This exercises the agreement of two processes, the
failure path and an exact resume in two launches; the rest of the fault suite (SIGTERM, SIGKILL,
topology changes) runs with `python -m pytest -m faults tests`.
"""

import json
from pathlib import Path

import pytest

from tests.procs import HEARTBEAT, SHUTDOWN, Processes, two_process_flags

FAULT_SCRIPT = Path(__file__).resolve().parent / "fault_train.py"
STEPS, RAISE_AT = 12, 6  # a process raises at global batch 6 (step 7), after the checkpoint of step 4


def _launch(tfds_dir, workdir, logdir, env=None, script=None):
    flags = [f"--heartbeat_timeout={HEARTBEAT}", f"--shutdown_timeout={SHUTDOWN}"]
    kwargs = {"script": script} if script else {}
    with Processes(
        2, two_process_flags(tfds_dir, workdir, STEPS), logdir, env=env, distributed_flags=flags, **kwargs
    ) as job:
        codes = job.wait(900)
        return [(code, ended, job.output(i)) for i, (code, ended) in enumerate(codes)]


# Process 1 in the default suite (CI); process 0, which also hosts jax's coordination service,
# with the rest of the fault suite.
@pytest.mark.parametrize("who", [1, pytest.param(0, marks=pytest.mark.faults)])
def test_a_raising_process_stops_both_within_seconds_and_the_rerun_resumes_bitwise(tfds_dir, tmp_path, who):
    workdir = tmp_path / "work"
    env = {"INCEPTION_FLAX_TEST_RAISE": f"{who}:{RAISE_AT}"}
    results = _launch(tfds_dir, workdir, tmp_path / "logs", env, FAULT_SCRIPT)
    line = f"error: process {who} failed: RuntimeError: injected fault at global batch {RAISE_AT}"
    for code, _, out in results:
        assert code not in (None, 0), out[-3000:]
        assert line in out, out[-3000:]
    assert f"Stopping process {1 - who} too" in results[1 - who][2]
    assert results[who][2].count("Traceback") == 1  # the raising process's own, once
    assert all("Check failure stack trace" not in out for _, _, out in results)  # no abort
    seconds = abs(results[0][1] - results[1][1])
    assert seconds < HEARTBEAT, f"the processes ended {seconds:.1f} s apart"
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["4"]

    for code, _, out in _launch(tfds_dir, workdir, tmp_path / "logs2"):
        assert code == 0 and "Resumed inception_resnet_v1 from step 4" in out, out[-3000:]
    # metrics.jsonl keeps both runs' rows: steps 5-6 were computed before the fault and again after it.
    rows = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    losses = {}
    for row in rows:
        if "train_loss" in row:
            losses.setdefault(row["step"], []).append(row["train_loss"])
    assert sorted(s for s, v in losses.items() if len(v) == 2) == [5, 6], losses
    assert all(v[0] == v[1] for s, v in losses.items() if s in (5, 6)), losses
    assert max(losses) == STEPS


@pytest.mark.faults
def test_a_full_disk_on_one_process_stops_both_with_the_storage_line(tfds_dir, tmp_path):
    """Process 1's checkpoint saves fail with ENOSPC from global batch 6 on (step 8's save): it says
    so in one line and stops; process 0, waiting in the same save, stops too, naming process 1."""
    workdir = tmp_path / "work"
    env = {"INCEPTION_FLAX_TEST_NO_SPACE": "1:6"}
    results = _launch(tfds_dir, workdir, tmp_path / "logs", env, FAULT_SCRIPT)
    cause = "Saving checkpoint step 8 failed: "
    for code, _, out in results:
        assert code not in (None, 0), out[-3000:]
    for _, _, out in results:  # the same line from both: the failing process's and its peer's
        assert f"error: process 1 failed: {cause}" in out and "no space left on the device" in out, out[-3000:]
    assert "Stopping process 0 too" in results[0][2]
    assert all("Check failure stack trace" not in out for _, _, out in results)  # no abort
    assert abs(results[0][1] - results[1][1]) < HEARTBEAT
    assert sorted(p.name for p in (workdir / "checkpoints").iterdir() if p.name.isdigit()) == ["4"]
    for code, _, out in _launch(tfds_dir, workdir, tmp_path / "logs2"):
        assert code == 0 and "Resumed inception_resnet_v1 from step 4" in out, out[-3000:]
