"""The real TFDS `imagenet2012` builder on a fabricated miniature of the two manual-download tars."""

import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from inception_flax import data
from tests.helpers import ROOT, make_imagenet_archives


@pytest.fixture(scope="module")
def imagenet_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    make_imagenet_archives(root / "downloads" / "manual")
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

    train_batches = [next(data.train_iterator(source, cfg, 3, step)) for step in range(3)]
    labels = sorted(int(y) for b in train_batches for y in b["label"])
    assert labels == sorted([0, 1, 2] * 4)  # one epoch, every image once, synset -> label
    assert train_batches[0]["image"].shape == (4, 75, 75, 3)
