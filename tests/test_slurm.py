"""scripts/train.sbatch on a real SLURM (tests/slurm.py), each task a CPU device.

One reference job trains the tiny config to the end as 2 tasks; a job requeued by `scontrol
requeue` and then by its own time-limit signal resumes twice and ends bitwise equal to it; a job
cancelled for good leaves committed checkpoints only; a task SIGKILLed ends the job in seconds.
The cases share one cluster, one reference run and one XLA cache, so they run on one xdist worker
(`--dist loadscope` in pyproject.toml: a module's tests stay together). Two clusters on one machine
would hand out the same job ids, and jax derives its coordinator port from the job id.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np
import pytest

from tests.helpers import ROOT, overrides_as_flags, restore_state
from tests.procs import HEARTBEAT
from tests.slurm import pids

SBATCH = ROOT / "scripts" / "train.sbatch"
STEPS = 12


def on_cluster(test):
    """A case that submits jobs to the cluster."""
    return pytest.mark.slurm(test)


def _flags(tfds_dir, workdir: Path, cache: Path | None = None) -> list[str]:
    overrides = dict(num_train_steps=STEPS, eval_every_steps=STEPS, checkpoint_every_steps=4, data_shards=2)
    flags = [*overrides_as_flags(tfds_dir, **overrides), f"--heartbeat_timeout={HEARTBEAT}", "--workdir", str(workdir)]
    return flags + ([f"--config.compilation_cache_dir={cache}"] if cache else [])


class Job:
    """One submission of train.sbatch as 2 tasks on the node, from `folder` (its output lands there)."""

    def __init__(self, slurm, folder: Path, flags: list[str]):
        self.slurm, self.folder = slurm, folder
        folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHON": sys.executable, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
        env.pop("JAX_COMPILATION_CACHE_DIR", None)  # the script's own cache setting, as for a user
        options = ["--nodes=1", "--ntasks-per-node=2", f"--output={folder}/job.out"]
        self.id = slurm.sbatch(options, SBATCH, flags, env, cwd=folder)

    def output(self) -> str:
        return (self.folder / "job.out").read_text(errors="replace")

    def task_log(self, task: int) -> str:
        return (self.folder / f"slurm-{self.id}" / f"task{task}.log").read_text(errors="replace")

    def wait_for_checkpoint(self, workdir: Path, step: int, timeout: float = 600) -> None:
        deadline = time.time() + timeout
        while not (workdir / "checkpoints" / str(step)).exists():  # orbax renames a step into place when complete
            state = self.slurm.job(self.id)["JobState"]
            assert state in ("PENDING", "RUNNING"), f"{state}: {self.output()}"
            assert time.time() < deadline, f"no checkpoint {step}: {self.output()}"
            time.sleep(0.2)

    def ended(self, timeout: float = 600) -> dict[str, str]:
        return self.slurm.wait_until_ended(self.id, timeout)


class Reference(NamedTuple):
    job: Job
    fields: dict[str, str]
    workdir: Path


def _steps(workdir: Path) -> list[str]:
    return sorted(p.name for p in (workdir / "checkpoints").iterdir())


@pytest.fixture(scope="module")
def reference(slurm, tfds_dir, tmp_path_factory):
    """A 2-task job trained to the end uninterrupted: its job, workdir and XLA cache."""
    folder = tmp_path_factory.mktemp("slurm_reference")
    workdir = folder / "run"
    job = Job(slurm, folder, _flags(tfds_dir, workdir))
    return Reference(job, job.ended(), workdir)


def _job_past_step_4(slurm, reference, tfds_dir, folder: Path) -> tuple[Job, Path]:
    """A 2-task job like the reference (reading its XLA cache), once its step-4 checkpoint is complete."""
    workdir = folder / "run"
    job = Job(slurm, folder, _flags(tfds_dir, workdir, reference.workdir / "xla_cache"))
    job.wait_for_checkpoint(workdir, 4)
    return job, workdir


@on_cluster
def test_a_two_task_job_trains_to_the_end_on_two_processes(reference):
    job, fields, workdir = reference
    assert fields["JobState"] == "COMPLETED" and fields["ExitCode"] == "0:0", job.output()
    assert "2 tasks on 1 node(s), 2 per node" in job.output()
    for task in range(2):  # one log per task, each a process of two
        log = job.task_log(task)
        assert f"JAX process {task}/2, 1 local devices" in log, log[-3000:]
        assert "Finished: {'step': 12, 'preempted': False" in log
    assert _steps(workdir) == ["12", "4", "8"]
    assert any((workdir / "xla_cache").iterdir())  # the script's default: the cache beside the checkpoints


@on_cluster
def test_a_requeued_job_resumes_from_its_checkpoint_and_ends_bitwise_equal(slurm, reference, tfds_dir, tmp_path):
    """Requeued by `scontrol requeue` (a preemption) after step 4, then by its own USR1 handler (what
    `--signal=B:USR1@300` sends before the time limit) after step 8: it resumes twice."""
    job, workdir = _job_past_step_4(slurm, reference, tfds_dir, tmp_path)
    slurm.requeue(job.id)
    job.wait_for_checkpoint(workdir, 8)
    assert slurm.job(job.id)["Restarts"] == "1"
    slurm.scancel("--signal=USR1", "--batch", str(job.id))
    # The script requeued itself. SLURM's own two-minute hold is kept here: lifting it early, as
    # `slurm.requeue` does, made this third run fail to launch in 2 of 5 runs of this test.
    slurm.wait_for(job.id, lambda j: j["Restarts"] == "2", 300)
    fields = job.ended()

    out = job.output()
    assert fields["JobState"] == "COMPLETED" and fields["Restarts"] == "2", out + slurm.logs()
    assert "SIGTERM: the tasks save a checkpoint" in out
    assert "the time limit is near" in out and f"requeueing job {job.id} to resume" in out
    assert [f"(restart {n})" in out for n in range(3)] == [True] * 3
    resumed = [line for line in job.task_log(0).splitlines() if "Resumed inception_resnet_v1 from step" in line]
    assert len(resumed) == 2, job.task_log(0)[-3000:]
    stops = [int(line.split("from step ")[1].split()[0]) for line in resumed]
    assert 4 < stops[0] < stops[1] < STEPS, stops  # each run went on past the checkpoint it resumed from

    ours, theirs = restore_state(workdir, STEPS), restore_state(reference.workdir, STEPS)
    different = [
        jax.tree_util.keystr(path)
        for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(ours), jax.tree.leaves(theirs), strict=True)
        if not np.array_equal(np.asarray(a), np.asarray(b))
    ]
    assert not different, different[:5]


@on_cluster
def test_a_cancelled_job_leaves_committed_checkpoints_only(slurm, reference, tfds_dir, tmp_path):
    job, workdir = _job_past_step_4(slurm, reference, tfds_dir, tmp_path)
    slurm.scancel(str(job.id))
    fields = job.ended()
    assert fields["JobState"] == "CANCELLED" and fields["Restarts"] == "0", job.output()
    steps = _steps(workdir)
    assert all(s.isdigit() for s in steps), steps  # no `<step>.orbax-checkpoint-tmp*` left behind
    last = max(int(s) for s in steps)
    assert 4 < last < STEPS, steps  # SIGTERM saved the step both tasks agreed on
    assert int(restore_state(workdir, last)["step"]) == last
    assert f"Stopped at step {last} for preemption" in job.task_log(0)


def _task_pid(job_id: int, task: int) -> int:
    found = pids(b"train.py", environ=[f"SLURM_JOB_ID={job_id}".encode(), f"SLURM_PROCID={task}".encode()])
    assert found, f"no process of task {task} of job {job_id}"
    return found[0]


@on_cluster
def test_a_killed_task_ends_the_whole_job_within_seconds_naming_it(slurm, reference, tfds_dir, tmp_path):
    job, workdir = _job_past_step_4(slurm, reference, tfds_dir, tmp_path)
    os.kill(_task_pid(job.id, 1), 9)
    killed = time.time()
    fields = job.ended(timeout=120)
    seconds = time.time() - killed
    out = job.output()
    assert seconds < 15, f"{seconds:.1f} s: {out}"
    assert fields["JobState"] == "FAILED" and fields["Restarts"] == "0", out
    assert f"srun: error: {slurm.host}: task 1: Killed" in out
    assert "train.sbatch: error: the training tasks failed" in out
    left = subprocess.run(["pgrep", "-f", f"--workdir {workdir}"], capture_output=True, text=True, check=False)
    assert not left.stdout.strip(), "a task outlived the job"
    assert "4" in _steps(workdir)  # what was committed stays for the resubmitted job


def test_the_script_refuses_a_node_local_workdir_on_several_nodes(tmp_path):
    """Before any srun: run as the batch step of a 2-node job would be."""
    env = {**os.environ, "SLURM_JOB_ID": "7", "SLURM_JOB_NUM_NODES": "2", "SLURM_SUBMIT_DIR": str(ROOT)}
    done = subprocess.run(["bash", str(SBATCH), "--config", "configs/demo.py", "--workdir=/tmp/run"],
                          env=env, capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 2
    assert (
        "train.sbatch: error: --workdir=/tmp/run is under /tmp, which each of the 2 nodes has for itself" in done.stderr
    )
    done = subprocess.run(["bash", str(SBATCH), "--config", "configs/demo.py"], env=env, capture_output=True,
                          text=True, timeout=30, check=False)  # fmt: skip
    assert done.returncode == 2 and "pass train.py's --workdir" in done.stderr
