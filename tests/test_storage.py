"""Storage: the workdir is checked before anything is compiled (writable, room for two checkpoints),
and a full, read-only or failing disk mid-run ends training with one line, nothing lost."""

import collections
import errno
import functools
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import jax
import ml_collections
import numpy as np
import pytest
from clu import metric_writers

from inception_flax import checkpoint, reporting, storage, train
from tests.helpers import overrides_as_flags, restore_state, run_script, tiny_config


@pytest.fixture
def read_only_dir(tmp_path):
    """A read-only file system (a tmpfs mounted ro, as root), or a directory without write permission."""
    path = tmp_path / "ro"
    path.mkdir()
    if os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(path)], check=False)
        if mounted.returncode != 0:
            pytest.skip("cannot mount a tmpfs here")
        yield path, "a read-only file system"
        subprocess.run(["umount", str(path)], check=False)
    else:
        path.chmod(0o555)
        yield path, "no write permission"
        path.chmod(0o755)


@pytest.mark.parametrize("code", sorted(storage.CAUSES))
def test_every_storage_errno_is_recognised_in_each_form_it_arrives_in(code, tmp_path):
    """An OSError, TensorStore's text (orbax's array writes), TensorFlow's strerror text, and either
    wrapped as the cause of another error (clu's AsyncError): all name the cause in words."""
    forms = [
        OSError(code, os.strerror(code)),
        RuntimeError(f'Error writing local file "x/d/0": [os_error_code={code}] (INTERNAL)'),
        RuntimeError(f"x/events.out.tfevents; {os.strerror(code)}"),
    ]
    wrapped = RuntimeError("an async write failed")
    wrapped.__cause__ = forms[1]
    for error in [*forms, wrapped]:
        found = storage.failure("Writing metrics", str(tmp_path), error, newest_step=4, checkpoint_dir="ckpt")
        assert isinstance(found, storage.StorageError) and found.errno == code, error
        assert str(found).startswith(f"Writing metrics failed: {tmp_path}: {storage.CAUSES[code]}"), str(found)
        assert str(found).endswith(
            "The newest complete checkpoint is step 4 in ckpt; rerunning the same command resumes from it."
        )
    assert storage.failure("Saving", str(tmp_path), ValueError("shapes differ")) is None
    assert storage.failure("Saving", str(tmp_path), OSError(errno.ENOENT, "missing")) is None


class FullDiskWriter(metric_writers.MetricWriter):
    """A TensorBoard writer whose file system is full."""

    def _full(self, *args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    write_summaries = write_scalars = write_images = write_videos = write_audios = _full
    write_texts = write_histograms = write_hparams = _full

    def flush(self):
        pass

    def close(self):
        pass


def test_a_tensorboard_write_failing_in_the_background_stops_at_the_next_write(tmp_path):
    """TensorBoard alone fails (clu writes it on a thread; metrics.jsonl still works): the next write
    raises the one StorageError, and closing afterwards only logs."""
    ckpt = checkpoint.Checkpointer(str(tmp_path), async_save=False)
    config = ml_collections.ConfigDict({"log_every_steps": 1, "profile": False, "batch_size": 8})
    report = reporting.Reporter(config, str(tmp_path), ckpt.writes, total_steps=4, steps_per_epoch=2)
    report.writer = metric_writers.AsyncWriter(FullDiskWriter())
    report.write(1, {"loss": 1.0})  # queued; fails in the background
    with pytest.raises(
        storage.StorageError, match=rf"^Writing metrics failed: {tmp_path}: no space left on the device"
    ):
        report.write(2, {"loss": 0.9})
    assert ckpt.failed
    assert (tmp_path / "metrics.jsonl").read_text().count("\n") == 1  # step 1's line; step 2 was not reached
    report.close()


def test_a_read_only_workdir_is_refused(read_only_dir):
    path, why = read_only_dir
    with pytest.raises(
        storage.StorageError, match=f"Cannot write the workdir {path}/work: {path} allows no writing \\({why}\\)"
    ):
        storage.check_workdir(str(path / "work"), 1000)


def test_too_little_space_is_refused_before_anything_is_written(tfds_dir, tmp_path, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(storage.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 1000, 1000))
    workdir = tmp_path / "work"
    with pytest.raises(
        storage.StorageError, match=r"No room for checkpoints in .*work: 0.00 GB free .* of 2 checkpoints"
    ):
        train.train_and_evaluate(tiny_config(tfds_dir), str(workdir))
    assert not workdir.exists()


def test_room_and_remote_workdirs(tmp_path, gcs):
    storage.check_workdir(str(tmp_path / "a" / "b"), 1000)  # creatable: its parent exists and is writable
    assert not (tmp_path / "a").exists()  # nothing written
    storage.check_workdir("gs://bucket/run", 10**15)  # a bucket: its space is unknown, a write is tried
    assert not [n for n in gcs.objects("bucket", "run/") if ".write_check" in n]  # and removed
    with pytest.raises(storage.StorageError, match="Cannot write the workdir gs://missing-bucket/run"):
        storage.check_workdir("gs://missing-bucket/run", 1000)
    (tmp_path / "file").write_text("x")
    with pytest.raises(storage.StorageError, match="is a file, not a directory"):
        storage.check_workdir(str(tmp_path / "file" / "work"), 1000)


# ------------------------------------------------------------------ faults during training
FAULT_SCRIPT = Path(__file__).resolve().parent / "fault_train.py"


@pytest.fixture
def small_fs(tmp_path):
    """A file system of its own (a 40 MB tmpfs, as root), so that filling it or making it read-only
    touches nothing else. Without root the tests patch the writes instead (see `FullDisk`)."""
    path = tmp_path / "fs"
    path.mkdir()
    if os.geteuid() != 0 or _mount(path, "size=40m") != 0:
        yield None
        return
    yield path
    subprocess.run(["umount", "-l", str(path / "work")], check=False, capture_output=True)  # a bind mount left
    subprocess.run(["umount", "-l", str(path)], check=False)


def _mount(path, options, remount=False):
    command = ["mount", "-o", f"remount,{options}", str(path)] if remount else ["mount", "-t", "tmpfs", "-o", options]
    return subprocess.run(command + ([] if remount else ["tmpfs", str(path)]), check=False).returncode


class Fault:
    """Breaks the workdir's storage when the run reaches global batch `position`, after the
    checkpoint of step `after` is complete (orbax renames it from its temporary name when done)."""

    def __init__(self, workdir, kind, position, after=None, fs=None, monkeypatch=None):
        self.workdir, self.kind, self.position, self.after = workdir, kind, position, after
        self.fs, self.monkeypatch = fs, monkeypatch
        self.filler = None if fs is None else fs / "filler"

    def hook(self, position, batch):
        if position == self.position:
            deadline = time.time() + 120
            while self.after is not None and not (self.workdir / "checkpoints" / str(self.after)).exists():
                assert time.time() < deadline
                time.sleep(0.05)
            self.apply()
        return batch

    def apply(self):
        if self.fs is not None and self.kind == "full":  # a real full disk: 1 MB left
            free = storage.free_bytes(str(self.fs))
            with open(self.filler, "wb") as f:
                f.truncate(0)
                f.write(b"\0" * (free - 2**20))
        elif self.fs is not None:  # the workdir becomes read-only: a read-only bind mount over it (files
            # open for writing keep their old mount, as when a volume turns read-only under a process)
            run = functools.partial(subprocess.run, check=True)
            run(["mount", "--bind", str(self.workdir), str(self.workdir)])
            run(["mount", "-o", "remount,bind,ro", str(self.workdir)])
        else:  # no root: every later checkpoint save fails as orbax reports a full or read-only disk
            code = errno.ENOSPC if self.kind == "full" else errno.EROFS
            error = ValueError(f"RESOURCE_EXHAUSTED: Error writing: Failed writing [os_error_code='{code}']")

            def failing_save(*args, **kwargs):
                raise error

            self.monkeypatch.setattr(checkpoint.ocp.CheckpointManager, "save", failing_save)

    def repair(self):
        if self.fs is not None and self.kind == "full":
            self.filler.unlink()
        elif self.fs is not None:
            subprocess.run(["umount", str(self.workdir)], check=True)
        else:
            self.monkeypatch.undo()


@pytest.fixture(scope="module")
def straight(tfds_dir, tmp_path_factory):
    """The uninterrupted run every restart must equal, bit for bit."""
    workdir = tmp_path_factory.mktemp("straight")
    train.train_and_evaluate(tiny_config(tfds_dir, eval_every_steps=100), str(workdir))
    return restore_state(workdir, 6)


@pytest.mark.parametrize(
    ("kind", "position", "after", "message"),
    [
        ("full", 1, None, r"Saving checkpoint step 2 failed: .*: no space left on the device .*There is no complete"),
        (
            "full",
            3,
            2,
            r"Saving checkpoint step 4 failed: .*: no space left on the device \(.* free on its file "
            r"system, a checkpoint of this state takes .* MB\)\..* The newest complete checkpoint is step 2",
        ),
        ("read_only", 3, 2, r"failed: .*: read-only file system\..* The newest complete checkpoint is step 2"),
    ],
    ids=["full_at_first_save", "full_at_later_save", "read_only_mid_run"],
)
def test_storage_fault_mid_run_stops_cleanly_and_the_rerun_resumes_bitwise(
    tfds_dir, tmp_path, small_fs, monkeypatch, straight, kind, position, after, message
):
    workdir = (small_fs or tmp_path) / "work"
    fault = Fault(workdir, kind, position, after, small_fs, monkeypatch)
    config = tiny_config(tfds_dir, eval_every_steps=100)
    with pytest.raises(storage.StorageError, match=message) as raised:
        train.train_and_evaluate(config, str(workdir), batch_hook=fault.hook)
    print(raised.value)
    saved = os.listdir(workdir / "checkpoints")
    assert sorted(saved) == ([] if after is None else [str(after)])  # nothing half-written is left to take
    fault.repair()
    result = train.train_and_evaluate(config, str(workdir))
    assert result["step"] == 6
    jax.tree.map(np.testing.assert_array_equal, straight, restore_state(workdir, 6))


_ABANDONED_WRITES = """
from inception_flax import runtime

runtime.quiet_abandoned_writes()


def async_serialize_from_host():  # orbax's name: a failed save leaves its inner writes unawaited
    async def write_fragment():
        pass

    return write_fragment()


def ours():
    async def job():
        pass

    return job()


class Cycle:  # freed only by the collection at shutdown, after the error line, as orbax's are
    pass


cycle = Cycle()
cycle.self, cycle.writes, cycle.ours = cycle, [async_serialize_from_host() for _ in range(3)], ours()
del cycle
raise SystemExit("error: the one line")
"""


def test_abandoned_orbax_writes_print_nothing_after_the_error_line():
    """The error stays the last line; any other coroutine left unawaited is still reported."""
    proc = subprocess.run([sys.executable, "-c", _ABANDONED_WRITES], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "write_fragment" not in proc.stderr, proc.stderr
    assert "coroutine 'ours.<locals>.job' was never awaited" in proc.stderr, proc.stderr
    assert "error: the one line" in proc.stderr


def test_the_script_prints_one_line_for_a_full_disk(tfds_dir, small_fs, straight):
    """The command a user runs: exit status, the line, no traceback flood, then a rerun that resumes."""
    if small_fs is None:
        pytest.skip("needs a tmpfs (root): the subprocess cannot be patched")
    workdir = small_fs / "work"
    flags = [*overrides_as_flags(tfds_dir, eval_every_steps=100), f"--workdir={workdir}"]
    # The disk fills at batch 5, once step 4 is saved: the last save (step 6) meets it.
    env = {**os.environ, "INCEPTION_FLAX_TEST_FILL": "5:4"}
    proc = subprocess.run(
        [sys.executable, str(FAULT_SCRIPT), *flags], env=env, capture_output=True, text=True, timeout=900, check=False
    )
    out = proc.stdout + proc.stderr
    lines = out.strip().splitlines()
    assert proc.returncode == 1, out[-3000:]
    assert re.fullmatch(
        r"error: Saving checkpoint step 6 failed: \S+: no space left on the device \(.*\)\. Removed the partial "
        r"step 6 \(.*\)\. The newest complete checkpoint is step 4 in \S+; rerunning the same command resumes .*",
        proc.stderr.strip().splitlines()[-1],
    ), proc.stderr[-2000:]
    assert out.count("Traceback") <= 1 and len(lines) < 600, (out.count("Traceback"), len(lines))
    assert sorted(os.listdir(workdir / "checkpoints")) == ["2", "4"]
    (small_fs / "filler").unlink()
    resumed = run_script(flags)
    out, _ = resumed.communicate(timeout=900)
    assert resumed.returncode == 0 and "Resumed inception_resnet_v1 from step 4" in out, out[-3000:]
    jax.tree.map(np.testing.assert_array_equal, straight, restore_state(workdir, 6))
