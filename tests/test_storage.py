"""The workdir is checked before anything is written or compiled: writable, and room for two checkpoints."""

import collections
import os
import subprocess

import pytest

from inception_flax import checkpoint, train
from tests.test_train import tiny_config


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


def test_a_read_only_workdir_is_refused(read_only_dir):
    path, why = read_only_dir
    with pytest.raises(
        checkpoint.StorageError, match=f"Cannot write the workdir {path}/work: {path} allows no writing \\({why}\\)"
    ):
        checkpoint.check_storage(str(path / "work"), 1000)


def test_too_little_space_is_refused_before_anything_is_written(tfds_dir, tmp_path, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda _: usage(10**9, 10**9 - 1000, 1000))
    workdir = tmp_path / "work"
    with pytest.raises(
        checkpoint.StorageError, match=r"No room for checkpoints in .*work: 0.00 GB free .* of 2 checkpoints"
    ):
        train.train_and_evaluate(tiny_config(tfds_dir), str(workdir))
    assert not workdir.exists()


def test_room_and_remote_workdirs_pass(tmp_path):
    checkpoint.check_storage(str(tmp_path / "a" / "b"), 1000)  # creatable: its parent exists and is writable
    checkpoint.check_storage("gs://bucket/run", 10**15)  # remote: not checked
    assert not (tmp_path / "a").exists()  # nothing written
    (tmp_path / "file").write_text("x")
    with pytest.raises(checkpoint.StorageError, match="is a file, not a directory"):
        checkpoint.check_storage(str(tmp_path / "file" / "work"), 1000)
