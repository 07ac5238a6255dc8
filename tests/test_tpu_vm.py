"""scripts/tpu_vm.py against a fake `gcloud` on PATH (tests/fake_gcloud/gcloud).

The fake records every call and runs `tpu-vm ssh --worker=all` commands as one local process per
worker, in the environment jax's cluster detection reads, so the launcher's own command line starts
a real two-process job of this project; killing it and `resume` continue from its checkpoint. The
fake VM image holds a Python (this test's) and a `pip` that records its arguments: installing
`jax[tpu]` cannot work on this machine, so setup's installs are checked as commands, not run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from inception_flax import metrics_log, tpu_vm
from tests.procs import ROOT

SCRIPT = [sys.executable, str(ROOT / "scripts" / "tpu_vm.py")]
VM = ["--name=pod", "--zone=us-central2-b", "--accelerator_type=v4-16"]  # 8 chips: 2 hosts


@pytest.fixture
def cloud(tmp_path):
    """PATH with the fake gcloud first; its state folder and VM image."""
    image = tmp_path / "image" / "inception_flax_venv" / "bin"
    image.mkdir(parents=True)
    (image / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    (image / "pip").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/pip_calls\n')
    for f in image.iterdir():
        f.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{ROOT / 'tests' / 'fake_gcloud'}{os.pathsep}{os.environ['PATH']}",
        "FAKE_GCLOUD_DIR": str(tmp_path / "gcloud"),
        "FAKE_GCLOUD_IMAGE": str(tmp_path / "image"),
        "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
    }
    return tmp_path, env


def launch(env, *args, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([*SCRIPT, *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    if check:
        assert done.returncode == 0, done.stdout + done.stderr
    return done


def calls(tmp_path) -> list[list[str]]:
    lines = (tmp_path / "gcloud" / "calls.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def homes(tmp_path) -> list[Path]:
    return sorted((tmp_path / "gcloud" / "pod").glob("worker*"))


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_dry_run_prints_every_command_and_runs_none(cloud):
    tmp_path, env = cloud
    out = launch(
        env, "train", "--dry_run", "--name=big", "--zone=us-east5-a", "--accelerator_type=v5p-128",
        "--workdir=gs://bucket/v4", "--", "--config", "configs/inception_v4.py", "--config.batch_size=4096",
    ).stdout  # fmt: skip
    assert out.startswith("+ gcloud compute tpus tpu-vm ssh big --worker=all '--command=")
    assert "scripts/tpu_vm.py worker --workdir=gs://bucket/v4 -- --config configs/inception_v4.py" in out
    assert "--zone=us-east5-a" in out
    resume = launch(env, "resume", "--dry_run", "--spot", "--queued", "--name=big", "--zone=z", "--accelerator_type=v5p-128",
                    "--workdir=gs://bucket/v4", "--", "--config", "configs/inception_v4.py").stdout  # fmt: skip
    assert (
        "queued-resources create big --node-id=big --accelerator-type=v5p-128 --runtime-version=v2-alpha-tpuv5 --spot"
        in resume
    )
    assert "tpu-vm scp" in resume and "pip install" in resume and "scripts/tpu_vm.py worker" in resume
    assert not (tmp_path / "gcloud").exists()  # nothing ran


def test_launch_errors_before_any_gcloud_call(cloud):
    tmp_path, env = cloud
    bad = launch(env, "create", "--name=pod", "--zone=z", "--accelerator_type=v9-8", check=False)
    assert bad.returncode == 1 and "error: Unknown accelerator type 'v9-8'" in bad.stderr
    bad = launch(env, "train", *VM, "--", "--config", "configs/demo.py", check=False)
    assert "error: train needs --workdir" in bad.stderr
    bad = launch(env, "evaluate", *VM, "--workdir=gs://b/r", check=False)
    assert "v4-16 has 2 hosts and evaluate.py runs on one" in bad.stderr
    assert not (tmp_path / "gcloud").exists()


def test_hosts_and_chips_of_the_slices_in_the_runbook():
    assert [tpu_vm.hosts(t) for t in ("v4-8", "v5e-8", "v5litepod-16", "v5p-128", "v5p-512")] == [1, 1, 4, 16, 64]
    assert [tpu_vm.chips(t) for t in ("v4-8", "v5e-8", "v5p-128", "v5p-512")] == [4, 8, 64, 256]


def test_create_setup_train_preempt_resume_on_two_workers(cloud, tfds_dir):
    tmp_path, env = cloud
    workdir = tmp_path / "run"  # one folder both fake hosts reach, as a bucket is
    job = [
        f"--workdir={workdir}", "--",
        "--config", "configs/inception_resnet_v1.py:runlocal", f"--config.data_dir={tfds_dir}",
        "--config.num_train_steps=30", "--config.checkpoint_every_steps=10", "--config.eval_every_steps=30",
        # The compilation cache beside the checkpoints, as docs/tpu.md advises: both workers compile
        # afresh in the first run and both find every program in the resumed one.
        f"--config.compilation_cache_dir={workdir}/xla_cache",
    ]  # fmt: skip
    launch(env, "create", *VM)
    launch(env, "setup", *VM)
    for home in homes(tmp_path):  # this commit, unpacked on each worker
        commit = subprocess.run(
            ["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout
        assert (home / "inception_flax" / "COMMIT").read_text() == commit
        assert (home / "inception_flax" / "scripts" / "train.py").exists()
    pip = (tmp_path / "pip_calls").read_text().splitlines()
    assert len(pip) == 4  # two installs on each worker
    assert any("jax[tpu]==0.10.2" in line for line in pip)

    launch(env, "train", *VM, *job)
    assert "a job is already running" in launch(env, "train", *VM, *job, check=False).stderr
    wait_for((workdir / "checkpoints" / "10").exists, 600, "the first checkpoint")
    for home in homes(tmp_path):  # the VM is preempted: every process on it dies at once
        os.killpg(os.getpgid(int((home / "inception_flax_run" / "pid").read_text())), signal.SIGKILL)
    state = tmp_path / "gcloud" / "tpus" / "pod.json"
    state.write_text(json.dumps({**json.loads(state.read_text()), "state": "PREEMPTED"}))

    resumed = launch(env, "resume", *VM, *job)
    assert "pod is PREEMPTED: recreating it" in resumed.stdout
    verbs = [c[3] for c in calls(tmp_path) if c[:3] == ["compute", "tpus", "tpu-vm"]]
    assert verbs[-6:] == ["describe", "delete", "create", "scp", "ssh", "ssh"]
    exit_codes = [home / "inception_flax_run" / "exit_code" for home in homes(tmp_path)]
    wait_for(lambda: all(p.exists() for p in exit_codes), 600, "the resumed job to end")
    assert [p.read_text().strip() for p in exit_codes] == ["0", "0"], (
        workdir / "logs" / "train-worker0.log"
    ).read_text()[-3000:]

    # metrics.jsonl: the first run's steps, then the resumed run's from its checkpoint (not from 0).
    raw = [json.loads(line)["step"] for line in (workdir / metrics_log.FILE).read_text().splitlines()]
    restart = next(i for i in range(1, len(raw)) if raw[i] <= raw[i - 1])
    assert raw.count(5) == 1 and raw[restart] >= 15 and raw[-1] == 30
    for i in range(2):  # each worker's log, copied into the workdir
        assert "Resumed inception_resnet_v1 from step" in (workdir / "logs" / f"train-worker{i}.log").read_text()

    status = launch(env, "status", *VM).stdout
    assert "READY" in status and status.count("finished, exit code 0") == 2
    assert "Finished" in launch(env, "logs", *VM, "--worker=1", check=False).stdout
    launch(env, "delete", *VM)
    assert not (tmp_path / "gcloud" / "tpus" / "pod.json").exists()
