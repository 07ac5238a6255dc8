"""The gcloud commands of a TPU VM run: create, set up, train, follow, resume, evaluate, delete.

Every command is built here as an argv list (`scripts/tpu_vm.py` prints or runs them), so
`--dry_run` shows exactly what a launch does. On the workers everything lives in the home
directory: the repository at one commit in `~/inception_flax`, its virtualenv in
`~/inception_flax_venv`, the running job's pid, exit code and log in `~/inception_flax_run`.
`worker_main` is what each worker runs detached: `scripts/train.py` with `--jax_distributed`, its
output copied into `<workdir>/logs/` every half minute so the log outlives a preempted VM.
Imports no jax and no TensorFlow (`paths` is imported where a log is copied).
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence

REMOTE_DIR = "~/inception_flax"
VENV = "~/inception_flax_venv"
RUN_DIR = "~/inception_flax_run"
PYTHON = "3.11"  # the workers' Python (the version this project is tested on)

# Software per TPU generation (cloud.google.com/tpu/docs/runtimes): the base image jax runs on.
RUNTIME_VERSIONS = {
    "v4": "tpu-ubuntu2204-base",
    "v5litepod": "v2-alpha-tpuv5-lite",
    "v5p": "v2-alpha-tpuv5",
    "v6e": "v2-alpha-tpuv6e",
}


class LaunchError(ValueError):
    """A launch that cannot work, found before any gcloud command runs."""


def parse_accelerator(accelerator_type: str) -> tuple[str, int]:
    """'v5p-128' -> ('v5p', 128); 'v5e-8' is gcloud's 'v5litepod-8'."""
    m = re.fullmatch(r"(v4|v5e|v5litepod|v5p|v6e)-(\d+)", accelerator_type)
    if not m:
        raise LaunchError(
            f"Unknown accelerator type {accelerator_type!r}: expected e.g. v4-8, v5litepod-8, v5p-128 or v6e-8."
        )
    generation = "v5litepod" if m.group(1) == "v5e" else m.group(1)
    return generation, int(m.group(2))


def chips(accelerator_type: str) -> int:
    """TPU chips in a slice: v4 and v5p count TensorCores (2 per chip), v5e and v6e count chips."""
    generation, n = parse_accelerator(accelerator_type)
    return n // 2 if generation in ("v4", "v5p") else n


def hosts(accelerator_type: str) -> int:
    """TPU VM workers (hosts) of a slice: 4 chips each, except single-host v5e/v6e slices of 8."""
    generation, n = parse_accelerator(accelerator_type)
    if generation in ("v5litepod", "v6e") and n <= 8:
        return 1
    return max(1, chips(accelerator_type) // 4)


@dataclasses.dataclass(frozen=True)
class Target:
    """One TPU VM (or queued resource) and how to reach it."""

    name: str
    zone: str
    accelerator_type: str = "v4-8"
    project: str = ""
    runtime_version: str = ""  # empty: RUNTIME_VERSIONS of the accelerator's generation
    spot: bool = False
    queued: bool = False  # create through a queued resource (the way to get large v5p/v6e slices)

    def __post_init__(self):
        if not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", self.name or ""):
            raise LaunchError(f"--name {self.name!r}: lower-case letters, digits and dashes, starting with a letter.")
        if not self.zone:
            raise LaunchError("--zone is required (e.g. us-central2-b for v4, us-east5-a for v5p).")
        parse_accelerator(self.accelerator_type)

    @property
    def gcloud_type(self) -> str:
        generation, n = parse_accelerator(self.accelerator_type)
        return f"{generation}-{n}"

    @property
    def version(self) -> str:
        return self.runtime_version or RUNTIME_VERSIONS[parse_accelerator(self.accelerator_type)[0]]

    def _where(self) -> list[str]:
        return [f"--zone={self.zone}", *([f"--project={self.project}"] if self.project else [])]

    def tpu_vm(self, verb: str, *args: str) -> list[str]:
        return ["gcloud", "compute", "tpus", "tpu-vm", verb, self.name, *args, *self._where()]

    def ssh(self, command: str, worker: str = "all") -> list[str]:
        return self.tpu_vm("ssh", f"--worker={worker}", f"--command={command}")


def create(t: Target) -> list[list[str]]:
    spot = ["--spot"] if t.spot else []
    if t.queued:
        return [
            ["gcloud", "compute", "tpus", "queued-resources", "create", t.name, f"--node-id={t.name}",
             f"--accelerator-type={t.gcloud_type}", f"--runtime-version={t.version}", *spot, *t._where()]
        ]  # fmt: skip
    return [t.tpu_vm("create", f"--accelerator-type={t.gcloud_type}", f"--version={t.version}", *spot)]


def delete(t: Target) -> list[list[str]]:
    if t.queued:
        return [["gcloud", "compute", "tpus", "queued-resources", "delete", t.name, "--force", "--quiet", *t._where()]]
    return [t.tpu_vm("delete", "--quiet")]


def describe(t: Target) -> list[str]:
    return t.tpu_vm("describe", "--format=value(state)")


def _running() -> str:
    """Shell: true when this worker's job is alive."""
    return f"[ -f {RUN_DIR}/pid ] && kill -0 $(cat {RUN_DIR}/pid) 2>/dev/null"


def setup(t: Target, archive: str, commit: str, jax_version: str) -> list[list[str]]:
    """Copy `archive` (`git archive` of `commit`) to every worker, unpack it, install it into one venv."""
    remote = f"inception_flax-{commit[:12]}.tar.gz"
    script = " && ".join(
        [
            f"if {_running()}; then echo 'a job is running on this worker: stop it first' >&2; exit 1; fi",
            f"rm -rf {REMOTE_DIR} && mkdir -p {REMOTE_DIR} {RUN_DIR}",
            f"tar -xzf ~/{remote} -C {REMOTE_DIR} && echo {commit} > {REMOTE_DIR}/COMMIT",
            # The TPU images' Python is 3.10 (Ubuntu 22.04) and jax needs 3.11: uv brings its own.
            f"([ -x {VENV}/bin/python ] || ((command -v uv >/dev/null || curl -LsSf https://astral.sh/uv/install.sh | sh)"
            f" && $(command -v uv || echo $HOME/.local/bin/uv) venv --seed --python {PYTHON} {VENV}))",
            f"{VENV}/bin/pip install --quiet -r {REMOTE_DIR}/requirements.txt 'jax[tpu]=={jax_version}'",
            f"{VENV}/bin/pip install --quiet --no-deps -e {REMOTE_DIR}",
        ]
    )
    scp = ["gcloud", "compute", "tpus", "tpu-vm", "scp", archive, f"{t.name}:{remote}", "--worker=all", *t._where()]
    return [scp, t.ssh(script)]


def train(t: Target, workdir: str, train_flags: Sequence[str]) -> list[list[str]]:
    """Start `scripts/train.py` detached on every worker (refused where a job still runs)."""
    worker = [f"{VENV}/bin/python", "scripts/tpu_vm.py", "worker", f"--workdir={workdir}", "--", *train_flags]
    # `~` must expand on the worker: the first word is left unquoted, the rest quoted.
    command = " ".join([worker[0], *(shlex.quote(w) for w in worker[1:])])
    script = " && ".join(
        [
            f"mkdir -p {RUN_DIR}",
            f"if {_running()}; then echo 'a job is already running on this worker' >&2; exit 1; fi",
            f"cd {REMOTE_DIR}",
            f"rm -f {RUN_DIR}/exit_code",
            f"(PYTHONPATH=$PWD nohup {command} > {RUN_DIR}/worker.log 2>&1 < /dev/null & echo $! > {RUN_DIR}/pid)",
        ]
    )
    return [t.ssh(script)]


def logs(t: Target, worker: str = "0", follow: bool = False, lines: int = 200) -> list[list[str]]:
    return [t.ssh(f"tail -n {lines}{' -f' if follow else ''} {RUN_DIR}/train.log", worker=worker)]


def status(t: Target) -> list[list[str]]:
    job = (
        f'if [ -f {RUN_DIR}/exit_code ]; then echo "$(hostname): finished, exit code $(cat {RUN_DIR}/exit_code)"; '
        f'elif {_running()}; then echo "$(hostname): running"; '
        f'else echo "$(hostname): not running (no exit code: killed, or never started)"; fi; '
        f"tail -n 1 {RUN_DIR}/train.log 2>/dev/null || true"
    )
    return [describe(t), t.ssh(job)]


def stop(t: Target) -> list[list[str]]:
    """SIGTERM to every worker's job: it saves a checkpoint at one agreed step and exits."""
    return [t.ssh(f"if {_running()}; then kill -TERM $(cat {RUN_DIR}/pid); fi")]


def evaluate(t: Target, workdir: str, eval_flags: Sequence[str]) -> list[list[str]]:
    """`scripts/evaluate.py` on the workdir's newest checkpoint, on worker 0 (single-host slices)."""
    if hosts(t.accelerator_type) > 1:
        raise LaunchError(
            f"{t.accelerator_type} has {hosts(t.accelerator_type)} hosts and evaluate.py runs on one: evaluate "
            "from a single-host TPU VM (e.g. --accelerator_type=v4-8 under another --name) or any machine "
            "that reads the workdir."
        )
    args = [f"--checkpoint={workdir}", *eval_flags]
    command = f"cd {REMOTE_DIR} && PYTHONPATH=$PWD {VENV}/bin/python scripts/evaluate.py " + " ".join(
        shlex.quote(a) for a in args
    )
    return [t.ssh(command, worker="0")]


def format_command(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


# ----------------------------------------------------------------------------- on each worker
def worker_name() -> str:
    """This worker's name in `<workdir>/logs/`: GKE's TPU_WORKER_ID, else the host name."""
    return f"worker{os.environ['TPU_WORKER_ID']}" if "TPU_WORKER_ID" in os.environ else socket.gethostname()


def worker_main(workdir: str, train_flags: Sequence[str], every_s: float = 30.0) -> int:
    """Run `scripts/train.py --jax_distributed` here; copy its log into the workdir; return its code.

    A SIGTERM (the VM's preemption notice, or `tpu_vm.py stop`) is passed on to the job, which
    saves a checkpoint at one agreed step before it exits.
    """
    from inception_flax import paths

    run = os.path.expanduser(RUN_DIR)
    os.makedirs(run, exist_ok=True)
    local = os.path.join(run, "train.log")
    dest = paths.join(paths.resolve(workdir), "logs", f"train-{worker_name()}.log")
    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "scripts", "train.py")
    with open(local, "ab") as out:
        job = subprocess.Popen(
            [sys.executable, script, "--jax_distributed", f"--workdir={workdir}", *train_flags],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    signal.signal(signal.SIGTERM, lambda *_: job.send_signal(signal.SIGTERM))

    def copy_log():
        try:
            with open(local, "rb") as f:
                paths.write_text(dest, f.read().decode(errors="replace"))
        except Exception as e:  # a failing copy must not stop the job
            print(f"could not copy the log to {dest}: {e}", file=sys.stderr)

    copied = time.monotonic()
    while job.poll() is None:
        time.sleep(0.5)
        if time.monotonic() - copied >= every_s:
            copy_log()
            copied = time.monotonic()
    copy_log()
    with open(os.path.join(run, "exit_code"), "w") as f:
        f.write(f"{job.returncode}\n")
    return job.returncode
