"""`inception_digits`: scikit-learn's bundled 8x8 handwritten digits as a TFDS dataset.

1,797 real images of 10 classes that ship inside scikit-learn, so the main job, its tests and the
CPU-scale ablation run with no download and no network. Images are upsampled 4x (nearest) to
32x32 RGB and stored as JPEG, so they take exactly the ImageNet path through the pipeline.
Split: a fixed random 1,497 train / 300 test (a seeded permutation; not stratified: 21-35 test
digits per class).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

NAME = "inception_digits"
NUM_TEST = 300


def prepare(builder: tfds.core.DatasetBuilder) -> tfds.core.DatasetBuilder:
    """Prepares the digits in `builder`'s data directory; returns a builder that reads them.

    Several processes may prepare them at once (a study's parallel workers on a new machine): TFDS
    writes each process's copy to a temporary folder and renames it into place, and every rename
    after the first fails. A process that loses reads the copy that won, the same data (the split
    is seeded)."""
    try:
        builder.download_and_prepare()
    except FileExistsError:
        prepared = tfds.builder(NAME, data_dir=builder.data_dir_root)
        if not prepared.is_prepared():
            raise
        return prepared
    return builder


class InceptionDigits(tfds.core.GeneratorBasedBuilder):
    """scikit-learn's 8x8 digits, upsampled to 32x32 RGB JPEG."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}  # noqa: RUF012 -- TFDS API

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(32, 32, 3), encoding_format="jpeg"),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            description=__doc__,
        )

    def _split_generators(self, dl_manager):
        del dl_manager  # nothing to download: the data ships with scikit-learn
        from sklearn.datasets import load_digits

        digits = load_digits()
        order = np.random.default_rng(0).permutation(len(digits.target))
        test = np.zeros(len(order), bool)
        test[order[:NUM_TEST]] = True
        return {
            "train": self._generate_examples(digits.images[~test], digits.target[~test], np.flatnonzero(~test)),
            "test": self._generate_examples(digits.images[test], digits.target[test], np.flatnonzero(test)),
        }

    def _generate_examples(self, images, labels, ids):
        for image, label, idx in zip(images, labels, ids, strict=True):
            pixels = np.clip(image * (255.0 / 16.0), 0, 255).astype(np.uint8)
            pixels = np.repeat(np.repeat(pixels, 4, axis=0), 4, axis=1)
            yield int(idx), {"image": np.stack([pixels] * 3, axis=-1), "label": int(label)}
