r"""Prepare TFDS imagenet2012 once from the two archives of the manual download.

    python scripts/prepare_imagenet.py --manual_dir ~/imagenet --data_dir ~/tensorflow_datasets
    python scripts/prepare_imagenet.py --manual_dir gs://$BUCKET/imagenet --data_dir gs://$BUCKET/tfds

`--manual_dir` holds ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar (https://image-net.org).
Training and evaluation then read `--config.data_dir` / `--data_dir` = the same `--data_dir`.
About 150 GB are written and it takes a few hours; rerunning on a prepared data_dir does nothing.
"""

import os
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags

from inception_flax.data import imagenet

_MANUAL_DIR = flags.DEFINE_string("manual_dir", None, "Folder (or gs://) with the two ILSVRC2012 archives.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir to write (or gs://).")
flags.mark_flags_as_required(["manual_dir", "data_dir"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import tensorflow as tf

    tf.config.set_visible_devices([], "GPU")
    try:
        result = imagenet.prepare(_MANUAL_DIR.value, _DATA_DIR.value)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    sizes = ", ".join(f"{k} {v:,}" for k, v in sorted(result["splits"].items()))
    state = "already prepared" if result["already"] else "prepared"
    print(f"imagenet2012 {result['version']} {state} in {result['data_dir']}: {sizes}")
    print(f"Train with --config.data_dir={result['data_dir']}; evaluate with --data_dir={result['data_dir']}.")


if __name__ == "__main__":
    app.run(main)
