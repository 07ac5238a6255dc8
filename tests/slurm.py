"""A real SLURM cluster of one node on this machine, for the tests: munged, slurmctld and slurmd.

    cluster = Slurm.start()          # or the session fixture `slurm` (tests/conftest.py)
    job = cluster.sbatch(["--nodes=1", "--ntasks-per-node=2"], script, args, env)
    cluster.wait_until_ended(job)
    cluster.stop()

Debian's `slurm-wlm` and `munge`, run as root without systemd or cgroups: processes are tracked
by their parent ids (`proctrack/linuxproc`), tasks are not bound (`task/none`). Every file lives in
one temporary folder and the daemons listen on free ports, so a cluster already running on the
machine is left alone. `skip_reason()` says why a cluster cannot start here (no packages, not root).
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

DAEMONS = ("/usr/sbin/munged", "/usr/sbin/slurmctld", "/usr/sbin/slurmd")
MUNGE_KEY = Path("/etc/munge/munge.key")

_CONF = """\
ClusterName=tests
FirstJobId={first_job_id}
SlurmctldHost={host}
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={root}/munge/munge.socket
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Seconds from SIGTERM to SIGKILL (SLURM's default is 30). Under the full suite on 2 cores, tasks took
# 22-30 s from their preemption save to their exit, so a slow exit would be cut short by the default.
KillWait=90
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/log/slurmctld.log
SlurmdLogFile={root}/log/slurmd.log
NodeName={host} CPUs={cpus} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
"""


def skip_reason() -> str | None:
    """Why no cluster can start on this machine, or None."""
    missing = [d for d in (*DAEMONS, shutil.which("sbatch")) if not d or not os.path.exists(d)]
    if missing:
        return "SLURM is not installed (apt-get install slurm-wlm munge; .ci/run does it as root)"
    if os.geteuid() != 0:
        return "the test cluster runs its daemons as root"
    if not MUNGE_KEY.exists():
        return f"munge has no key at {MUNGE_KEY}"
    return None


def pids(*needles: bytes, environ: Sequence[bytes] = ()) -> list[int]:
    """This machine's processes whose command line holds every needle and whose environment holds
    every `environ` entry (e.g. b"SLURM_PROCID=1")."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if environ else []
        except OSError:
            continue
        if all(n in cmdline for n in needles) and all(e in env for e in environ):
            found.append(int(pid))
    return found


def _stepd_alive(job_id: int) -> bool:
    """Whether a `slurmstepd: [<job>.<step>]` process of the job is still on this node."""
    return bool(pids(f"slurmstepd: [{job_id}.".encode()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Slurm:
    def __init__(self, root: Path):
        self.root = root
        self.host = socket.gethostname().split(".")[0]
        self.env = {**os.environ, "SLURM_CONF": str(root / "slurm.conf")}

    @classmethod
    def start(cls, first_job_id: int = 1, timeout: float = 60) -> Slurm:
        """`first_job_id`: two clusters on one machine must not share job ids, since jax takes its
        coordinator port from the job id (the port is the id modulo 4096, plus 61440)."""
        # Not under pytest's tmp folders: those are root-only, and munged runs as the munge user.
        root = Path(tempfile.mkdtemp(prefix="inception-slurm-"))
        root.chmod(0o755)
        cluster = cls(root)
        for sub in ("state", "spool", "log", "munge"):
            (root / sub).mkdir()
        munge = pwd.getpwnam("munge")
        os.chown(root / "munge", munge.pw_uid, munge.pw_gid)
        conf = _CONF.format(
            host=cluster.host,
            root=root,
            cpus=os.cpu_count(),
            ctld_port=_free_port(),
            slurmd_port=_free_port(),
            first_job_id=first_job_id,
        )
        (root / "slurm.conf").write_text(conf)
        m = root / "munge"
        cluster._run(
            ["runuser", "-u", "munge", "--", DAEMONS[0], f"--socket={m}/munge.socket", f"--pid-file={m}/munged.pid",
             f"--log-file={m}/munged.log", f"--seed-file={m}/munged.seed"]
        )  # fmt: skip
        try:
            cluster._run([DAEMONS[1]])
            cluster._run([DAEMONS[2]])
            deadline = time.time() + timeout
            while cluster.node_state() != "idle":
                if time.time() > deadline:
                    raise RuntimeError(f"the node never became idle: {cluster.logs()}")
                time.sleep(0.2)
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, args: Sequence[str], **kwargs) -> subprocess.CompletedProcess:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=60, check=False, **kwargs)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done

    def node_state(self) -> str:
        done = subprocess.run(["sinfo", "-h", "-o", "%t"], env=self.env, capture_output=True, text=True, check=False)
        return done.stdout.strip()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted((self.root / "log").glob("*.log")))

    def sbatch(self, options: Sequence[str], script: Path, args: Sequence[str], env: dict[str, str], cwd: Path) -> int:
        """Submits `script args` with `options`, from `cwd`, in `env` (SLURM_CONF added); the job id."""
        done = subprocess.run(
            ["sbatch", "--parsable", *options, str(script), *args],
            env={**env, "SLURM_CONF": self.env["SLURM_CONF"]},
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        return int(done.stdout.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """`scontrol show job` as a dict (JobState, Restarts, ExitCode, ...)."""
        out = self._run(["scontrol", "show", "job", "-o", str(job_id)]).stdout
        return dict(field.split("=", 1) for field in out.split() if "=" in field)

    def scontrol(self, *args: str) -> None:
        self._run(["scontrol", *args])

    def scancel(self, *args: str) -> None:
        self._run(["scancel", *args])

    def requeue(self, job_id: int) -> None:
        """`scontrol requeue`, then `release` it."""
        restarts = int(self.job(job_id)["Restarts"])
        self.scontrol("requeue", str(job_id))
        self.release(job_id, restarts + 1)

    def release(self, job_id: int, restarts: int, timeout: float = 300) -> None:
        """Lifts the two-minute hold SLURM puts on a requeued batch job (its `restarts`-th), once the
        processes of its last run are gone: a new run launched beside them fails on this node."""
        self.wait_for(job_id, lambda j: j["JobState"] == "PENDING" and int(j["Restarts"]) == restarts, timeout)
        deadline = time.time() + timeout
        while _stepd_alive(job_id):
            assert time.time() < deadline, f"job {job_id}'s slurmstepd never ended:\n{self.logs()}"
            time.sleep(0.2)
        self.scontrol("update", f"JobId={job_id}", "StartTime=now")

    def wait_for(self, job_id: int, condition, timeout: float) -> dict[str, str]:
        deadline = time.time() + timeout
        while not condition(job := self.job(job_id)):
            assert time.time() < deadline, f"job {job_id} is still {job.get('JobState')}:\n{self.logs()}"
            time.sleep(0.2)
        return job

    def wait_until_ended(self, job_id: int, timeout: float = 600) -> dict[str, str]:
        """The job's fields once it left the queue for good (not PENDING, RUNNING or COMPLETING)."""
        return self.wait_for(job_id, lambda j: j["JobState"] not in ("PENDING", "RUNNING", "COMPLETING"), timeout)

    def stop(self) -> None:
        """Cancels what is left, then stops slurmd, slurmctld and munged by their pids."""
        subprocess.run(["scancel", "--full", "--signal=KILL", "--partition=debug"], env=self.env, check=False,
                       capture_output=True, timeout=30)  # fmt: skip
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munge/munged.pid"):
            path = self.root / pid_file
            if path.exists():
                try:
                    os.kill(int(path.read_text().strip()), 15)
                except (ProcessLookupError, ValueError):
                    pass
        shutil.rmtree(self.root, ignore_errors=True)
