r"""Train on a Cloud TPU VM slice with one command per step (docs/tpu.md is the runbook).

    python scripts/tpu_vm.py create --name N --zone Z --accelerator_type v5p-128 [--spot] [--queued]
    python scripts/tpu_vm.py setup  --name N --zone Z --accelerator_type v5p-128
    python scripts/tpu_vm.py train  --name N --zone Z --accelerator_type v5p-128 --workdir gs://B/run -- \
        --config configs/inception_v4.py --config.batch_size=4096 --config.data_dir=gs://B/tfds
    python scripts/tpu_vm.py logs|status|stop|delete --name N --zone Z [--follow] [--worker 3]
    python scripts/tpu_vm.py resume ...   # after a preemption: the train command again (recreates a lost VM)
    python scripts/tpu_vm.py evaluate --name N --zone Z --workdir gs://B/run -- --split validation

`setup` ships this repository at its current commit (`git archive HEAD`: uncommitted changes are
not shipped) to every worker and installs it and `jax[tpu]` into the same virtualenv on each.
`train` starts `scripts/train.py --jax_distributed` detached on every worker with the flags after
`--`; each worker's log is copied to `<workdir>/logs/` every 30 s. `--dry_run` prints every
command instead of running it. Needs the Google Cloud CLI (`gcloud`) and git.
"""

import os
import subprocess
import sys
import tempfile
from collections.abc import Sequence

from absl import app, flags

from inception_flax import tpu_vm

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMANDS = ("create", "setup", "train", "logs", "status", "stop", "resume", "evaluate", "delete", "worker")

_NAME = flags.DEFINE_string("name", None, "The TPU VM (and queued resource) name.")
_ZONE = flags.DEFINE_string("zone", None, "Its zone, e.g. us-east5-a.")
_PROJECT = flags.DEFINE_string("project", "", "Google Cloud project (default: gcloud's configured one).")
_TYPE = flags.DEFINE_string("accelerator_type", "v4-8", "Slice type: v4-8, v5litepod-8 (v5e-8), v5p-128, v6e-8, ...")
_VERSION = flags.DEFINE_string("runtime_version", "", "TPU software version (default: by generation).")
_SPOT = flags.DEFINE_bool("spot", False, "Spot capacity: cheaper, preemptible (then `resume`).")
_QUEUED = flags.DEFINE_bool("queued", False, "Create through a queued resource (waits for capacity).")
_WORKDIR = flags.DEFINE_string("workdir", "", "train/resume/evaluate/worker: the run's gs:// workdir.")
_JAX = flags.DEFINE_string("jax_version", "", "setup: the jax[tpu] version (default: requirements.txt's jax).")
_WORKER = flags.DEFINE_string("worker", "0", "logs: which worker's log.")
_FOLLOW = flags.DEFINE_bool("follow", False, "logs: keep printing as it grows.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print every command instead of running it.")


def _jax_version() -> str:
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        for line in f:
            if line.startswith("jax=="):
                return line.strip().split("==")[1]
    raise tpu_vm.LaunchError("requirements.txt pins no jax version: pass --jax_version.")


def _commit() -> str:
    return subprocess.run(
        ["git", "-C", ROOT, "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _run(commands: Sequence[Sequence[str]], check: bool = True) -> int:
    code = 0
    for argv in commands:
        print("+ " + tpu_vm.format_command(argv), flush=True)
        if not _DRY_RUN.value:
            code = subprocess.run(list(argv), check=False).returncode
            if code and check:
                raise SystemExit(f"error: the command above failed (exit code {code}).")
    return code


def _setup(target: tpu_vm.Target) -> None:
    commit = _commit()
    dirty = subprocess.run(
        ["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, check=True
    )
    if dirty.stdout.strip():
        print("warning: uncommitted changes are not shipped; the workers get commit " + commit, file=sys.stderr)
    archive = os.path.join(tempfile.gettempdir(), f"inception_flax-{commit[:12]}.tar.gz")
    _run([["git", "-C", ROOT, "archive", "--format=tar.gz", f"--output={archive}", commit]])
    _run(tpu_vm.setup(target, archive, commit, _JAX.value or _jax_version()))


def _state(target: tpu_vm.Target) -> str:
    """READY, PREEMPTED, ... or MISSING (asked even under --dry_run: it only reads)."""
    print("+ " + tpu_vm.format_command(tpu_vm.describe(target)), flush=True)
    found = subprocess.run(tpu_vm.describe(target), capture_output=True, text=True, check=False)
    return found.stdout.strip() if found.returncode == 0 else "MISSING"


def main(argv: Sequence[str]) -> None:
    if len(argv) < 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"First argument: one of {', '.join(COMMANDS)}.")
    command, rest = argv[1], list(argv[2:])
    if rest and rest[0] == "--":
        rest = rest[1:]
    if command == "worker":  # on a worker, started by `train`
        raise SystemExit(tpu_vm.worker_main(_WORKDIR.value, rest))
    try:
        target = tpu_vm.Target(
            _NAME.value, _ZONE.value, _TYPE.value, _PROJECT.value, _VERSION.value, _SPOT.value, _QUEUED.value
        )
        if command in ("train", "resume", "evaluate") and not _WORKDIR.value:
            raise tpu_vm.LaunchError(f"{command} needs --workdir (a gs:// path every worker reaches).")
        if command in ("train", "resume") and not _WORKDIR.value.startswith("gs://"):
            print("warning: a workdir outside gs:// is per worker and lost with the VM", file=sys.stderr)
        if command == "create":
            _run(tpu_vm.create(target))
        elif command == "setup":
            _setup(target)
        elif command == "train":
            _run(tpu_vm.train(target, _WORKDIR.value, rest))
        elif command == "resume":
            if _DRY_RUN.value:
                print("(dry run: showing what happens when the VM is gone)", flush=True)
            state = "MISSING" if _DRY_RUN.value else _state(target)
            if state != "READY":  # preempted or gone: a new VM, set up as before, then the same job
                print(f"{target.name} is {state}: recreating it", flush=True)
                if state != "MISSING":
                    _run(tpu_vm.delete(target))
                _run(tpu_vm.create(target))
                _setup(target)
            _run(tpu_vm.train(target, _WORKDIR.value, rest))
        elif command == "logs":
            _run(tpu_vm.logs(target, _WORKER.value, _FOLLOW.value), check=False)
        elif command == "status":
            _run(tpu_vm.status(target), check=False)
        elif command == "stop":
            _run(tpu_vm.stop(target))
        elif command == "evaluate":
            _run(tpu_vm.evaluate(target, _WORKDIR.value, rest))
        elif command == "delete":
            _run(tpu_vm.delete(target))
    except tpu_vm.LaunchError as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    app.run(main)
