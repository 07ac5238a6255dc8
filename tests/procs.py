"""Runs N `scripts/train.py` processes over jax.distributed on 127.0.0.1, injects faults, cleans up.

    with Processes(2, flags, tmp_path) as job:
        job.wait_for(lambda: (workdir / "checkpoints" / "2").exists())
        job.kill(1)
        codes = job.wait(timeout=120)

Whatever happens in the test, leaving the `with` block kills every process still alive.
Each process writes its output to `<logdir>/process<i>.log` (pipes could fill and block it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.helpers import ROOT, overrides_as_flags

TRAIN = ROOT / "scripts" / "train.py"


HEARTBEAT = 10  # s; --heartbeat_timeout
# s; --shutdown_timeout: the final barrier (process 0 finishes its last save and eval up to ~45 s after the others here)
SHUTDOWN = 120


def two_process_flags(tfds_dir, workdir, steps: int) -> list[str]:
    """The tiny run's train.py flags for two processes (two data shards, a checkpoint every 4 steps)."""
    overrides = dict(num_train_steps=steps, eval_every_steps=steps, checkpoint_every_steps=4, data_shards=2)
    return [*overrides_as_flags(tfds_dir, **overrides), f"--workdir={workdir}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Processes:
    def __init__(
        self,
        n: int,
        flags: Sequence[str],
        logdir: Path,
        env: dict[str, str] | None = None,
        distributed_flags: Sequence[str] = (),
        script: Path = TRAIN,
    ):
        self.n, self.flags, self.logdir = n, list(flags), Path(logdir)
        # One CPU device per process; no persistent compile cache: a process that finds its program
        # cached reaches the first collective far ahead of one that compiles, and CPU (gloo)
        # collectives wait only 30 s for a peer.
        self.env = {
            **os.environ,
            "XLA_FLAGS": "--xla_force_host_platform_device_count=1",
            "JAX_ENABLE_COMPILATION_CACHE": "false",
            **(env or {}),
        }
        self.distributed_flags = list(distributed_flags)
        self.script = script
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []
        self.ended: dict[int, float] = {}

    def __enter__(self) -> Processes:
        self.logdir.mkdir(parents=True, exist_ok=True)
        port = free_port()
        for i in range(self.n):
            log = self.logdir / f"process{i}.log"
            distributed = [
                "--jax_distributed",
                f"--coordinator_address=127.0.0.1:{port}",
                f"--num_processes={self.n}",
                f"--process_id={i}",
                *self.distributed_flags,
            ]
            with open(log, "w") as out:
                self.procs.append(
                    subprocess.Popen(
                        [sys.executable, str(self.script), *self.flags, *distributed],
                        cwd=ROOT,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # a signal to the test runner's group never reaches it
                    )
                )
            self.logs.append(log)
        return self

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for p in self.procs:
            p.wait()

    def output(self, i: int) -> str:
        return self.logs[i].read_text(errors="replace")

    def alive(self) -> list[bool]:
        return [p.poll() is None for p in self.procs]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 600) -> None:
        """Polls every 20 ms until `condition()`; fails if a process ends first or time runs out."""
        deadline = time.time() + timeout
        while not condition():
            if not all(self.alive()):
                raise AssertionError(f"a process ended before the fault:\n{self.output(0)[-3000:]}")
            if time.time() > deadline:
                raise AssertionError("timed out waiting for the moment of the fault")
            time.sleep(0.02)

    def signal(self, i: int, sig: int = signal.SIGTERM) -> float:
        """Sends `sig` to process i; returns the time it was sent."""
        self.procs[i].send_signal(sig)
        return time.time()

    def wait(self, timeout: float) -> list[tuple[int | None, float]]:
        """Waits up to `timeout` s for all processes: (return code or None if still running, time it ended)."""
        deadline = time.time() + timeout
        while time.time() < deadline and any(self.alive()):
            for i, p in enumerate(self.procs):
                if p.poll() is not None and i not in self.ended:
                    self.ended[i] = time.time()
            time.sleep(0.05)
        for i, p in enumerate(self.procs):
            if p.poll() is not None and i not in self.ended:
                self.ended[i] = time.time()
        return [(p.poll(), self.ended.get(i, float("nan"))) for i, p in enumerate(self.procs)]
