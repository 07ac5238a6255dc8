"""The real TFDS `imagenet2012` builder on a fabricated miniature of the two manual-download tars."""

import io
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from inception_flax import data
from tests.test_train import ROOT

SYNSETS = ["n01440764", "n01443537", "n01484850"]  # real synsets: labels 0, 1, 2


def _jpeg(seed):
    pixels = (np.random.default_rng(seed).random((40, 48, 3)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, "JPEG")
    return buf.getvalue()


def _add(tar, name, payload):
    info = tarfile.TarInfo(name)
    info.size = len(payload)
    tar.addfile(info, io.BytesIO(payload))


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    manual = root / "downloads" / "manual"
    manual.mkdir(parents=True)
    with tarfile.open(manual / "ILSVRC2012_img_train.tar", "w") as train:
        for i, synset in enumerate(SYNSETS):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as sub:
                for j in range(4):
                    _add(sub, f"{synset}_{j}.JPEG", _jpeg(10 * i + j))
            _add(train, f"{synset}.tar", inner.getvalue())
    with tarfile.open(manual / "ILSVRC2012_img_val.tar", "w") as val:
        for k in range(1, 6):
            _add(val, f"ILSVRC2012_val_{k:08d}.JPEG", _jpeg(100 + k))
    return root


def test_prepare_and_read_fabricated_imagenet(imagenet_dir):
    with pytest.raises(data.DatasetNotPreparedError, match="ILSVRC2012_img_val.tar") as raised:
        data.get_source("imagenet2012", str(imagenet_dir), data_dir_flag="--data_dir")
    assert "python scripts/prepare_imagenet.py --manual_dir=" in str(raised.value)
    assert f"pass --data_dir={imagenet_dir}" in str(raised.value)
    manual = imagenet_dir / "downloads" / "manual"
    script = [sys.executable, str(ROOT / "scripts" / "prepare_imagenet.py"), f"--data_dir={imagenet_dir}"]
    missing = subprocess.run([*script, f"--manual_dir={imagenet_dir}"], capture_output=True, text=True, check=False)
    assert missing.returncode == 1 and "lacks ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar" in missing.stderr
    done = subprocess.run([*script, f"--manual_dir={manual}"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"imagenet2012 5.1.0 prepared in {imagenet_dir}: train 12, validation 5" in done.stdout
    builder = tfds.builder("imagenet2012", data_dir=str(imagenet_dir))
    source = data.get_source("imagenet2012", str(imagenet_dir))
    assert source.num_classes == 1000
    assert source.num_examples("train") == 12 and source.num_examples("validation") == 5

    names = builder.info.features["label"].names
    # Validation labels come by position from TFDS's validation_labels.txt (sorted file names).
    val_labels_file = tfds.core.tfds_path("datasets/imagenet2012/validation_labels.txt")
    expected_val = sorted(names.index(s) for s in val_labels_file.read_text().split()[:5])
    cfg = data.PipelineConfig(image_size=75, global_batch=4, eval_split="validation", shuffle_buffer=20)
    evals = list(data.eval_iterator(source, cfg))
    got = sorted(int(y) for b in evals for y, m in zip(b["label"], b["mask"], strict=True) if m)
    assert got == expected_val

    train_batches = [next(data.train_iterator(source, cfg, step)) for step in range(3)]
    labels = sorted(int(y) for b in train_batches for y in b["label"])
    assert labels == sorted([0, 1, 2] * 4)  # one epoch, every image once, synset -> label
    assert train_batches[0]["image"].shape == (4, 75, 75, 3)
