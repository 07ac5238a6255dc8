"""Every path may be gs://: the real stack against a GCS API server on 127.0.0.1 (tests/fake_gcs.py).

Training, killing and resuming, evaluation, converted weights and prediction run as subprocesses of
the real scripts with the server's environment; nothing they write may land on the local disk.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from inception_flax import config_base, paths, preflight
from tests.helpers import ROOT, make_imagenet_archives, overrides_as_flags, restore_state, tiny_config


def run(script, *args, env, cwd, wait=True):
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / script), *map(str, args)],
        cwd=cwd,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    if not wait:
        return proc
    out, _ = proc.communicate(timeout=900)
    return proc.returncode, out


def ok(script, *args, env, cwd) -> str:
    """Runs a script to completion and returns its output; it must succeed."""
    rc, out = run(script, *args, env=env, cwd=cwd)
    assert rc == 0, out[-3000:]
    return out


def download(server, bucket, prefix, target: Path) -> None:
    """A local copy of every object under `prefix/`."""
    for name in server.objects(bucket, f"{prefix}/"):
        if not name.endswith("/"):
            local = target / name[len(prefix) + 1 :]
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(server.read(bucket, name))


def test_paths_are_local_or_gs():
    assert paths.resolve("~/x") == os.path.expanduser("~/x")
    assert paths.resolve("gs://b/run/") == "gs://b/run"
    assert paths.join("gs://b/run", "checkpoints") == "gs://b/run/checkpoints"
    for bad, message in (("s3://b/run", "s3:// is not supported"), ("gs://", "name a bucket")):
        with pytest.raises(ValueError, match=message):
            paths.resolve(bad)
    with pytest.raises(config_base.ConfigError, match="--workdir: s3://b/run: s3:// is not supported"):
        preflight.check_paths(tiny_config("/nowhere"), "s3://b/run")


def test_train_kill_resume_evaluate_on_gcs(gcs_server, tfds_dir, tmp_path):
    env = gcs_server.env
    flags = overrides_as_flags(tfds_dir, num_train_steps=8)
    rc, out = run("train.py", *flags, f"--workdir={tmp_path / 'straight'}", env={}, cwd=ROOT)
    assert rc == 0, out[-3000:]

    cwd = tmp_path / "cwd"  # the runs' working directory: must stay empty
    cwd.mkdir()
    workdir = "gs://bucket/demo"
    victim = run("train.py", *flags, f"--workdir={workdir}", env=env, cwd=cwd, wait=False)
    deadline = time.time() + 900
    while "demo/checkpoints/4/commit_success.txt" not in gcs_server.objects("bucket", "demo/checkpoints/"):
        assert victim.poll() is None and time.time() < deadline, victim.communicate()[0][-3000:]
        time.sleep(0.2)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert "demo/checkpoints/8/commit_success.txt" not in gcs_server.objects("bucket", "demo/")
    rc, out = run("train.py", *flags, f"--workdir={workdir}", env=env, cwd=cwd)
    assert rc == 0, out[-3000:]
    assert "Resumed inception_resnet_v1 from step" in out
    assert list(cwd.iterdir()) == [] and not (ROOT / "gs:").exists()  # nothing written locally

    written = gcs_server.objects("bucket", "demo/")
    assert any("events.out.tfevents" in n for n in written)  # TensorBoard, through TensorFlow
    assert "demo/metrics.jsonl" in written
    copy = tmp_path / "copy"
    download(gcs_server, "bucket", "demo", copy)
    steps = [json.loads(line)["step"] for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 8 and set(range(1, 9)) <= set(steps)
    jax.tree.map(np.testing.assert_array_equal, restore_state(tmp_path / "straight", 8), restore_state(copy, 8))

    rc, out = run("evaluate.py", f"--checkpoint={workdir}", "--json=gs://bucket/eval.json", env=env, cwd=cwd)
    assert rc == 0, out[-3000:]
    rc, out = run("evaluate.py", f"--checkpoint={copy}", f"--json={tmp_path / 'local.json'}", env={}, cwd=ROOT)
    assert rc == 0, out[-3000:]
    remote = json.loads(gcs_server.read("bucket", "eval.json"))
    local = json.loads((tmp_path / "local.json").read_text())
    for key in ("step", "num_examples", "top1", "top5", "loss"):
        assert remote[0][key] == local[0][key], key
    assert "demo/eval/test_20__central.jsonl" in gcs_server.objects("bucket", "demo/eval/")
    assert list(cwd.iterdir()) == []

    # A bucket that keeps failing reads (HTTP 503): retried, then one line; nothing moved or deleted.
    before = gcs_server.objects("bucket", "demo/")
    gcs_server.fail_reads("demo/checkpoints/8/meta", 10_000)
    more = overrides_as_flags(tfds_dir, num_train_steps=10)
    rc, out = run("train.py", *more, f"--workdir={workdir}", env=env, cwd=cwd)
    gcs_server.fail_reads("demo/checkpoints/8/meta", 0)
    last = out.strip().splitlines()[-1]
    assert rc == 1 and last.startswith("error: ") and "checkpoint step 8 failed (still failing after" in last, out[
        -3000:
    ]
    assert "Nothing was moved or deleted" in last and out.count("Traceback") == 0
    assert gcs_server.objects("bucket", "demo/") == before


def test_weights_converted_into_and_predicted_from_a_bucket(gcs_server, tmp_path):
    """timm weights read from the bucket, converted into it, and a photo in it classified from it."""
    pytest.importorskip("timm")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    from sklearn.datasets import load_sample_images

    from tests.references import randomized_timm

    state = randomized_timm("inception_v3", num_classes=5).state_dict()
    local = tmp_path / "model.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in state.items()}, str(local))
    gcs_server.upload("bucket", "in/model.safetensors", local.read_bytes())
    photo = Path(load_sample_images().filenames[0])
    gcs_server.upload("bucket", "in/photo.jpg", photo.read_bytes())
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = gcs_server.env
    args = ("--source=timm", "--model=inception_v3")
    ok(
        "convert_weights.py",
        *args,
        "--input=gs://bucket/in/model.safetensors",
        "--output=gs://bucket/w",
        env=env,
        cwd=cwd,
    )
    assert "w/inception_flax.json" in gcs_server.objects("bucket", "w/")
    ok("convert_weights.py", *args, f"--input={local}", f"--output={tmp_path / 'w'}", env={}, cwd=ROOT)
    predict = ("predict.py", "--image_size=75")
    ok(
        *predict,
        "--checkpoint=gs://bucket/w",
        "--json=gs://bucket/pred.json",
        "gs://bucket/in/photo.jpg",
        env=env,
        cwd=cwd,
    )
    ok(*predict, f"--checkpoint={tmp_path / 'w'}", f"--json={tmp_path / 'pred.json'}", photo, env={}, cwd=ROOT)
    remote, here = json.loads(gcs_server.read("bucket", "pred.json")), json.loads((tmp_path / "pred.json").read_text())
    assert [t["index"] for t in remote[0]["top"]] == [t["index"] for t in here[0]["top"]]
    np.testing.assert_allclose(
        [t["probability"] for t in remote[0]["top"]], [t["probability"] for t in here[0]["top"]], rtol=1e-6
    )
    assert list(cwd.iterdir()) == []


def test_imagenet_prepared_into_a_bucket_and_read_from_it(gcs_server, tmp_path):
    make_imagenet_archives(tmp_path / "manual")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    rc, out = run(
        "prepare_imagenet.py",
        f"--manual_dir={tmp_path / 'manual'}",
        "--data_dir=gs://bucket/tfds",
        env=gcs_server.env,
        cwd=cwd,
    )
    assert rc == 0, out[-3000:]
    assert "imagenet2012 5.1.0 prepared in gs://bucket/tfds: train 12, validation 5" in out
    assert any("imagenet2012-train.tfrecord" in n for n in gcs_server.objects("bucket", "tfds/imagenet2012/5.1.0/"))
    read = (
        "from inception_flax import data; s = data.get_source('imagenet2012', 'gs://bucket/tfds'); "
        "print('read', s.num_examples('train'), sum(1 for _ in s.read('validation', 0, 1, None)))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", read],
        cwd=ROOT,
        env={**os.environ, **gcs_server.env},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0 and "read 12 5" in proc.stdout, proc.stderr[-3000:]
    assert list(cwd.iterdir()) == []
