"""Preparing ImageNet (ILSVRC-2012) with TFDS's Python API, locally or into a bucket.

`tfds build imagenet2012` needs apache_beam and mlcroissant, which this stack does not install;
the builder's `download_and_prepare` prepares the same archives with nothing extra.
"""

from __future__ import annotations

from typing import Any

from inception_flax import paths

ARCHIVES = ("ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar")


def prepare(manual_dir: str, data_dir: str) -> dict[str, Any]:
    """Writes TFDS `imagenet2012` into `data_dir` from the two archives in `manual_dir` (either may
    be gs://). Returns the split sizes; a data_dir already prepared is left as it is."""
    import tensorflow_datasets as tfds

    manual_dir, data_dir = paths.resolve(manual_dir), paths.resolve(data_dir)
    missing = [a for a in ARCHIVES if not (paths.path(manual_dir) / a).exists()]
    if missing:
        raise FileNotFoundError(
            f"{manual_dir} lacks {' and '.join(missing)} (download them from https://image-net.org; "
            "registration required)."
        )
    builder = tfds.builder("imagenet2012", data_dir=data_dir)
    already = builder.is_prepared()
    if not already:
        builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    splits = {name: split.num_examples for name, split in builder.info.splits.items()}
    return {"data_dir": data_dir, "version": str(builder.info.version), "splits": splits, "already": already}
