"""Human-readable class names for predictions."""

from __future__ import annotations

import functools
from importlib import resources


@functools.cache
def imagenet_words() -> list[str]:
    """The 1000 ImageNet-1k classes in TFDS `imagenet2012` label order, as WordNet words.

    `imagenet_synset_words.txt` lists TFDS's synset ids (its `labels.txt` order) with their words.
    """
    text = resources.files("inception_flax.evaluation").joinpath("imagenet_synset_words.txt").read_text()
    return [line.split("\t", 1)[1] for line in text.splitlines() if line]


def class_names(
    num_classes: int, dataset: str | None, data_dir: str | None = None, background: bool = False
) -> list[str]:
    """Names of a model's `num_classes` outputs.

    `background=True`: output 0 is TF-slim's background class and the rest follow the dataset.
    A dataset of `dataset` with names gives its own; ImageNet-sized heads without one get the
    ImageNet words; otherwise the names are the indices.
    """
    offset = 1 if background else 0
    names: list[str] | None = None
    if dataset:
        names = dataset_class_names(dataset, data_dir)
    if names is None and num_classes - offset == 1000:
        names = imagenet_words()
    if names is None or len(names) != num_classes - offset:
        names = [f"class {i}" for i in range(num_classes - offset)]
    return (["background"] if background else []) + names


def dataset_class_names(dataset: str, data_dir: str | None = None) -> list[str] | None:
    """The label names a TFDS dataset or `folder:` root declares, without reading any example."""
    if dataset.startswith("imagenet2012"):
        return imagenet_words()
    from inception_flax import data  # TensorFlow: only when a dataset is named

    try:
        source = data.get_source(dataset, data_dir)
    except Exception:  # not prepared here: predictions still print with indices or ImageNet words
        return None
    if hasattr(source, "classes"):
        return list(source.classes)
    feature = source.builder.info.features[source.label_key]
    return list(feature.names)
