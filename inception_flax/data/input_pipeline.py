"""Input pipelines: TFDS datasets, image folders and the embedded digits, as per-host tf.data.

Resume is exact because the training stream is a pure function of (seed, step): each epoch's
order comes from seeded file and buffer shuffles, an example's augmentation from a stateless seed
made of its shard and position, and a restart at step s rebuilds epoch s // steps_per_epoch and
skips the already-consumed *encoded* records (no decoding), which bounds the restart cost by one
epoch of reading this host's shards. Evaluation pads every host to the same number of batches and carries a
`mask`, so each example is counted exactly once on any number of hosts and devices.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath

from inception_flax import paths
from inception_flax.data import digits, folder, preprocessing

AUTOTUNE = tf.data.AUTOTUNE

IMAGENET_HELP = """\
TFDS imagenet2012 is not prepared in {data_dir}.
ImageNet must be downloaded by hand (https://image-net.org, registration required):
  1. put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in a folder, e.g.
       {manual_dir}
  2. prepare it once (about 150 GB written to the data directory, a few hours; both may be gs://):
       python scripts/prepare_imagenet.py --manual_dir={manual_dir} --data_dir={data_dir}
Then pass {flag}={data_dir} if it is not the default."""


class DatasetNotPreparedError(RuntimeError):
    """The dataset exists in TFDS but has not been prepared in `data_dir`."""


class Source:
    """Encoded examples {"image": bytes, "label": int64} of a dataset, read per host."""

    name: str
    num_classes: int
    skipped: int = 0  # undecodable images dropped while indexing (folder datasets)

    def num_examples(self, split: str, process_index: int = 0, process_count: int = 1) -> int:
        raise NotImplementedError

    def read(self, split: str, process_index: int, process_count: int, shuffle_seed: int | None) -> tf.data.Dataset:
        raise NotImplementedError

    def check_split(self, split: str) -> None:
        """Raises ValueError naming the splits there are when `split` is not one of them (cheap: no reading)."""
        raise NotImplementedError


class TfdsSource(Source):
    def __init__(self, name: str, data_dir: str | None, data_dir_flag: str = "--config.data_dir"):
        self.name = name
        self.builder = tfds.builder(name, data_dir=paths.resolve(data_dir) if data_dir else None)
        if not self.builder.is_prepared():
            root = os.fspath(epath.Path(self.builder.data_dir).parent.parent)  # <data_dir>/<name>/<version>
            if name == digits.NAME:  # ships with scikit-learn: prepare on first use
                self.builder = digits.prepare(self.builder)
            elif name.split(":", maxsplit=1)[0] == "imagenet2012":
                manual_dir = paths.join(root, "downloads", "manual")
                raise DatasetNotPreparedError(
                    IMAGENET_HELP.format(data_dir=root, manual_dir=manual_dir, flag=data_dir_flag)
                )
            else:
                raise DatasetNotPreparedError(
                    f"TFDS {name} is not prepared in {root}. Prepare it with: tfds build {name} --data_dir={root}; "
                    f"then pass {data_dir_flag}={root} if it is not the default."
                )
        self.image_key, self.label_key = self.builder.info.supervised_keys
        self.num_classes = self.builder.info.features[self.label_key].num_classes

    @staticmethod
    def _host_split(split: str, process_index: int, process_count: int) -> str:
        return tfds.even_splits(split, n=process_count)[process_index] if process_count > 1 else split

    def check_split(self, split):
        try:
            self.builder.info.splits[split]
        except (KeyError, ValueError) as e:
            raise ValueError(
                f"{self.name} has no split {split!r} (it has {', '.join(sorted(self.builder.info.splits))}): {e}"
            ) from None

    def num_examples(self, split, process_index=0, process_count=1):
        return self.builder.info.splits[self._host_split(split, process_index, process_count)].num_examples

    def read(self, split, process_index, process_count, shuffle_seed):
        ds = self.builder.as_dataset(
            split=self._host_split(split, process_index, process_count),
            shuffle_files=shuffle_seed is not None,
            read_config=tfds.ReadConfig(shuffle_seed=shuffle_seed, interleave_cycle_length=16),
            decoders={self.image_key: tfds.decode.SkipDecoding()},
        )
        # "id" names an example for exclusion lists (ImageNet: ILSVRC2012_val_00000001.JPEG).
        has_name = "file_name" in self.builder.info.features

        def select(ex):
            name = ex["file_name"] if has_name else tf.constant("")
            return {"image": ex[self.image_key], "label": tf.cast(ex[self.label_key], tf.int64), "id": name}

        return ds.map(select)


class FolderSource(Source):
    """`folder:<root>`: images in `<root>/<split>/<class>/`; classes come from the train split."""

    def __init__(self, root: str, train_split: str):
        self.name = f"folder:{root}"
        self.root = root
        self._splits: dict[str, folder.FolderSplit] = {}
        self.classes = self._scan(train_split).classes
        self.num_classes = len(self.classes)

    def _scan(self, split: str) -> folder.FolderSplit:
        if split not in self._splits:
            classes = getattr(self, "classes", None)
            self._splits[split] = folder.scan(self.root, split, classes)
            self.skipped = sum(len(s.skipped) for s in self._splits.values())
        return self._splits[split]

    def check_split(self, split):
        root = paths.path(self.root)
        if split not in self._splits and not (root / split).is_dir():
            there = sorted(p.name for p in root.iterdir() if p.is_dir())
            raise ValueError(f"{self.name} has no split {split!r}: no folder {root / split} (it has {there}).")

    def num_examples(self, split, process_index=0, process_count=1):
        return len(range(process_index, len(self._scan(split).files), process_count))

    def read(self, split, process_index, process_count, shuffle_seed):
        data = self._scan(split)
        order = np.arange(len(data.files))
        if shuffle_seed is not None:
            order = np.random.default_rng(shuffle_seed).permutation(order)
        order = order[process_index::process_count]
        files = tf.constant([data.files[i] for i in order])
        names = tf.constant([data.files[i].rsplit("/", 1)[-1] for i in order])
        labels = tf.constant([data.labels[i] for i in order], tf.int64)
        ds = tf.data.Dataset.from_tensor_slices((files, labels, names))
        return ds.map(lambda f, y, n: {"image": tf.io.read_file(f), "label": y, "id": n}, num_parallel_calls=AUTOTUNE)


def get_source(
    dataset: str, data_dir: str | None = None, train_split: str = "train", data_dir_flag: str = "--config.data_dir"
) -> Source:
    """`dataset` is a TFDS name (`imagenet2012`, `inception_digits`, ...) or `folder:<root>`.

    `data_dir_flag` is how the caller's command line names the data directory (for messages)."""
    if dataset.startswith("folder:"):
        return FolderSource(dataset.removeprefix("folder:"), train_split)
    return TfdsSource(dataset, data_dir, data_dir_flag)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
    """How the global input stream is cut.

    The data is split into `num_shards` shards (default: one per process); process p reads the
    consecutive shards it owns and every global batch is the concatenation of one equal slice
    per shard, in shard order. The global batch therefore depends on `num_shards`, not on how
    many processes share the work: 2 processes x 1 shard and 1 process x 2 shards see the same data.
    """

    image_size: int
    global_batch: int
    train_split: str = "train"
    eval_split: str = "validation"
    seed: int = 0
    shuffle_buffer: int = 10_000
    area_range: tuple[float, float] = (0.05, 1.0)
    aspect_ratio_range: tuple[float, float] = (0.75, 1.33)
    color_distortion: str = "tpu_fast"  # or "slim", "none" (preprocessing.preprocess_train)
    process_index: int = 0
    process_count: int = 1
    data_shards: int = 0  # 0: one per process

    @property
    def num_shards(self) -> int:
        return self.data_shards or self.process_count

    @property
    def shard_batch(self) -> int:
        return self.global_batch // self.num_shards

    def own_shards(self) -> range:
        per_process = self.num_shards // self.process_count
        return range(self.process_index * per_process, (self.process_index + 1) * per_process)

    def check(self) -> None:
        if self.num_shards % self.process_count:
            raise ValueError(f"data_shards={self.num_shards} must be a multiple of the {self.process_count} processes.")
        if self.global_batch % self.num_shards:
            raise ValueError(f"The global batch {self.global_batch} must divide into {self.num_shards} data shards.")


def _concat_shards(datasets: list[tf.data.Dataset]) -> tf.data.Dataset:
    if len(datasets) == 1:
        return datasets[0]
    return tf.data.Dataset.zip(tuple(datasets)).map(
        lambda *parts: {k: tf.concat([p[k] for p in parts], axis=0) for k in parts[0]}
    )


def _train_preparer(cfg: PipelineConfig, shard: int) -> Callable:
    """Decode and augment one training example, seeded by (shard, epoch, position in the epoch).

    A `tf.function` built once per shard and called from every epoch's `map`, so the augmentation
    graph is traced once per run rather than once per epoch (docs/ablation/overhead.md)."""
    shard_seed = cfg.seed * 65_537 + shard

    @tf.function
    def prepare(index, example, epoch):
        seed = tf.stack([tf.constant(shard_seed, tf.int64), epoch * (1 << 32) + index])
        image = preprocessing.preprocess_train(
            example["image"],
            seed,
            cfg.image_size,
            area_range=cfg.area_range,
            aspect_ratio_range=cfg.aspect_ratio_range,
            color_distortion=cfg.color_distortion,
        )
        return {"image": image, "label": tf.cast(example["label"], tf.int32)}

    return prepare


def _train_epoch(
    source: Source,
    cfg: PipelineConfig,
    steps_per_epoch: int,
    epoch: int,
    skip_steps: int,
    shard: int,
    prepare: Callable,
) -> tf.data.Dataset:
    epoch_seed = cfg.seed * 1_000_003 + epoch
    ds = source.read(cfg.train_split, shard, cfg.num_shards, shuffle_seed=epoch_seed)
    ds = ds.shuffle(cfg.shuffle_buffer, seed=epoch_seed, reshuffle_each_iteration=False)
    # repeat(): a shard that lost undecodable records still fills its epoch, so every process
    # runs exactly steps_per_epoch steps (a short epoch on one host would hang the collectives).
    ds = ds.enumerate().repeat()
    ds = ds.skip(skip_steps * cfg.shard_batch)  # skips encoded records, nothing decoded
    epoch_t = tf.constant(epoch, tf.int64)
    ds = ds.map(
        lambda index, example: prepare(index, example, epoch_t), num_parallel_calls=AUTOTUNE, deterministic=True
    )
    ds = ds.ignore_errors(log_warning=True)  # an undecodable record is dropped, not fatal
    ds = ds.take((steps_per_epoch - skip_steps) * cfg.shard_batch)
    return ds.batch(cfg.shard_batch, drop_remainder=True)


def train_iterator(
    source: Source, cfg: PipelineConfig, steps_per_epoch: int, start_step: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """This process's part of every global batch from step `start_step` on, epochs of
    `steps_per_epoch` global batches (`Recipe.steps_per_epoch`: the train split's images // batch)."""
    cfg.check()
    if not 0 < steps_per_epoch * cfg.global_batch <= source.num_examples(cfg.train_split):
        raise ValueError(
            f"{steps_per_epoch} steps of {cfg.global_batch} per epoch do not fit {source.name} {cfg.train_split} "
            f"({source.num_examples(cfg.train_split)} examples)."
        )
    epoch, skip = divmod(start_step, steps_per_epoch)
    preparers = {s: _train_preparer(cfg, s) for s in cfg.own_shards()}
    while True:
        ds = _concat_shards(
            [_train_epoch(source, cfg, steps_per_epoch, epoch, skip, s, prepare) for s, prepare in preparers.items()]
        )
        yield from ds.prefetch(AUTOTUNE).as_numpy_iterator()
        epoch, skip = epoch + 1, 0


def num_eval_steps(source: Source, cfg: PipelineConfig) -> int:
    """Batches every process runs: enough for the largest shard (the others are padded)."""
    largest = max(source.num_examples(cfg.eval_split, s, cfg.num_shards) for s in range(cfg.num_shards))
    return math.ceil(largest / cfg.shard_batch)


def eval_iterator(
    source: Source,
    cfg: PipelineConfig,
    preprocess: Callable[[tf.Tensor], tf.Tensor] | None = None,
    exclude: Sequence[str] = (),
) -> Iterator[dict[str, np.ndarray]]:
    """One pass over this process's shards of the eval split, padded to the same number of batches.

    `preprocess` maps encoded bytes to the network input (default: slim's central crop at
    `cfg.image_size`); it may return several views, [views, h, w, 3]. `mask` is 1 for examples that
    count. Examples whose id is in `exclude` are not decoded and carry `mask` 0 and `excluded` 1, so
    every process still runs the same number of batches.
    """
    cfg.check()
    steps = num_eval_steps(source, cfg)
    preprocess = preprocess or (lambda b: preprocessing.preprocess_eval(b, cfg.image_size))
    image_spec = tf.data.Dataset.from_tensors(tf.constant("")).map(preprocess).element_spec  # traced, not run
    if not image_spec.shape.is_fully_defined():
        raise ValueError(f"eval preprocessing must give a static shape, got {image_spec.shape}.")
    blank = tf.zeros(image_spec.shape, image_spec.dtype)
    table = None
    if exclude:
        keys = tf.constant(sorted(set(exclude)))
        table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, tf.ones_like(keys, tf.int32)), 0)

    def prepare(example):
        excluded = tf.constant(False) if table is None else table.lookup(example["id"]) > 0
        image = tf.cond(excluded, lambda: blank, lambda: preprocess(example["image"]))
        return {
            "image": tf.ensure_shape(image, image_spec.shape),
            "label": tf.cast(example["label"], tf.int32),
            "mask": 1.0 - tf.cast(excluded, tf.float32),
            "excluded": tf.cast(excluded, tf.float32),
        }

    padding = tf.data.Dataset.from_tensors(
        {"image": blank, "label": tf.constant(0, tf.int32), "mask": tf.constant(0.0), "excluded": tf.constant(0.0)}
    ).repeat()
    shards = []
    for shard in cfg.own_shards():
        ds = source.read(cfg.eval_split, shard, cfg.num_shards, shuffle_seed=None)
        ds = ds.map(prepare, num_parallel_calls=AUTOTUNE, deterministic=True).ignore_errors(log_warning=True)
        shards.append(ds.concatenate(padding).take(steps * cfg.shard_batch).batch(cfg.shard_batch))
    yield from _concat_shards(shards).prefetch(AUTOTUNE).as_numpy_iterator()
