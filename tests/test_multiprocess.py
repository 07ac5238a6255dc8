"""Two jax.distributed processes on 127.0.0.1: agreement with one, preemption of all or one, a dead worker.

One uninterrupted two-process run is the reference; each fault is injected into another run of the
same command, which is then restarted and must end on the reference's exact state. Each launch
compiles the tiny network afresh (about 2 min on 2 cores), so these run apart from the default
suite: `python -m pytest -m faults tests`.
"""

import re
import signal

import jax
import numpy as np
import pytest

from tests.helpers import finished, loss_history, restore_state, run_script
from tests.procs import HEARTBEAT, SHUTDOWN, Processes, two_process_flags

pytestmark = pytest.mark.faults

STEPS = 12


def _run(tfds_dir, workdir, logdir, fault=None, timeout=900):
    """Runs the two-process job to its end (or applies `fault(job)` first); returns [(code, output)]."""
    with Processes(
        2,
        two_process_flags(tfds_dir, workdir, STEPS),
        logdir,
        distributed_flags=[f"--heartbeat_timeout={HEARTBEAT}", f"--shutdown_timeout={SHUTDOWN}"],
    ) as job:
        extra = fault(job) if fault else None
        codes = job.wait(timeout)
        return [(code, job.output(i), ended) for i, (code, ended) in enumerate(codes)], extra


@pytest.fixture(scope="module")
def reference(tfds_dir, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("reference")
    results, _ = _run(tfds_dir, workdir, workdir / "logs")
    for code, out, _ in results:
        assert code == 0, out.split("Extension modules:")[0][-3000:]
    return workdir


def test_two_processes_match_one(tfds_dir, tmp_path, reference):
    single = run_script(
        two_process_flags(tfds_dir, tmp_path / "one", STEPS), {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    )
    finished(single)
    h_one = loss_history(tmp_path / "one")
    assert len(h_one) == STEPS
    np.testing.assert_allclose(loss_history(reference), h_one, rtol=1e-4)


def _after_first_checkpoint(workdir):
    return (workdir / "checkpoints" / "4").exists


@pytest.mark.parametrize("who", ["all", "one"])
def test_sigterm_stops_at_one_agreed_step_and_resumes_bitwise(tfds_dir, tmp_path, reference, who):
    workdir = tmp_path / "work"

    def sigterm(job):
        job.wait_for(_after_first_checkpoint(workdir))
        for i in range(2) if who == "all" else (1,):
            job.signal(i, signal.SIGTERM)

    results, _ = _run(tfds_dir, workdir, tmp_path / "logs", sigterm)
    stops = set()
    for code, out, _ in results:
        assert code == 0, out.split("Extension modules:")[0][-3000:]
        stops |= {int(s) for s in re.findall(r"Stopped at step (\d+) for preemption", out)}
    assert len(stops) == 1 and 4 <= next(iter(stops)) < STEPS, stops  # both stopped, at the same step
    assert (workdir / "checkpoints" / str(next(iter(stops)))).exists()
    results, _ = _run(tfds_dir, workdir, tmp_path / "logs2")
    for code, out, _ in results:
        assert code == 0 and "Resumed inception_resnet_v1 from step" in out, out[-3000:]
    jax.tree.map(np.testing.assert_array_equal, restore_state(reference, STEPS), restore_state(workdir, STEPS))


def _writing_a_checkpoint(workdir):
    """True while orbax writes a step (into a temporary directory it renames when complete)."""
    ckdir = workdir / "checkpoints"
    return lambda: ckdir.is_dir() and any("tmp" in p.name for p in ckdir.iterdir())


@pytest.mark.parametrize(
    ("moment", "restart"),
    [("after_first_checkpoint", "one_process_two_devices"), ("during_checkpoint_write", "two_processes")],
)
def test_sigkill_of_one_process_stops_the_other_and_a_restart_resumes(tfds_dir, tmp_path, reference, moment, restart):
    workdir = tmp_path / "work"

    def sigkill(job):
        ready = (
            _after_first_checkpoint(workdir) if moment == "after_first_checkpoint" else _writing_a_checkpoint(workdir)
        )
        job.wait_for(ready)
        return job.signal(1, signal.SIGKILL)

    bound = 3 * (HEARTBEAT + SHUTDOWN)
    results, killed_at = _run(tfds_dir, workdir, tmp_path / "logs", sigkill, timeout=bound)
    code, out, ended = results[0]
    assert code is not None, f"the surviving process still runs {bound} s after its peer died"
    assert code != 0, out[-3000:]
    seconds = ended - killed_at
    saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
    assert not saved or saved[-1] < STEPS
    if restart == "two_processes":  # the same command again: bitwise the reference
        results, _ = _run(tfds_dir, workdir, tmp_path / "logs2")
        for code2, out2, _ in results:
            assert code2 == 0, out2.split("Extension modules:")[0][-3000:]
        jax.tree.map(np.testing.assert_array_equal, restore_state(reference, STEPS), restore_state(workdir, STEPS))
    else:  # a changed topology: one process with two devices, the same two data shards
        single = run_script(
            two_process_flags(tfds_dir, workdir, STEPS), {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
        )
        out2, _ = single.communicate(timeout=900)
        assert single.returncode == 0 and "Resumed inception_resnet_v1 from step" in out2, out2[-3000:]
        a, b = restore_state(reference, STEPS), restore_state(workdir, STEPS)
        # Same data, same arithmetic up to the order of the cross-device sums (gloo vs. in-process).
        jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6), a, b)
    print(f"{moment}: saved steps {saved}; survivor exited with {code} {seconds:.1f} s after the kill")
