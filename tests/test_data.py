"""Input pipelines: preprocessing, exact resume position, eval counts, bad images, TFDS errors."""

import io

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from inception_flax import data
from inception_flax.data import preprocessing


def jpeg(array, mode=None, fmt="JPEG"):
    buf = io.BytesIO()
    image = Image.fromarray(array)
    image = image.convert(mode) if mode else image
    image.save(buf, fmt)
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_bytes():
    return jpeg((np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8))


@pytest.fixture(scope="module")
def digits_source(tmp_path_factory):
    return data.get_source("inception_digits", str(tmp_path_factory.mktemp("tfds")))


def test_train_preprocessing_eager_equals_tf_data(image_bytes):
    seeds = [tf.constant([3, i], tf.int64) for i in range(4)]
    eager = [preprocessing.preprocess_train(tf.constant(image_bytes), s, 75).numpy() for s in seeds]
    ds = tf.data.Dataset.from_tensor_slices(tf.stack(seeds)).map(
        lambda s: preprocessing.preprocess_train(tf.constant(image_bytes), s, 75), num_parallel_calls=4
    )
    for a, b in zip(eager, ds.as_numpy_iterator(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert eager[0].shape == (75, 75, 3) and eager[0].dtype == np.float32
    assert -1.0 <= eager[0].min() and eager[0].max() <= 1.0
    assert not np.array_equal(eager[0], eager[1])  # the seed matters


def test_eval_preprocessing_eager_equals_tf_data(image_bytes):
    eager = preprocessing.preprocess_eval(tf.constant(image_bytes), 80).numpy()
    ds = tf.data.Dataset.from_tensors(tf.constant(image_bytes)).map(lambda b: preprocessing.preprocess_eval(b, 80))
    np.testing.assert_array_equal(eager, next(ds.as_numpy_iterator()))


def test_eval_is_a_central_crop(image_bytes):
    image = tf.io.decode_jpeg(image_bytes, channels=3)
    expected = tf.image.resize(tf.image.central_crop(tf.image.convert_image_dtype(image, tf.float32), 0.875), [64, 64])
    np.testing.assert_allclose(preprocessing.preprocess_eval(tf.constant(image_bytes), 64), expected * 2 - 1, atol=1e-6)


def test_distorted_crop_respects_area_and_aspect(image_bytes):
    for i in range(20):
        crop = preprocessing.distorted_crop(tf.constant(image_bytes), tf.constant([0, i], tf.int64))
        h, w = crop.shape[:2]
        assert 0.05 * 60 * 80 * 0.9 <= h * w <= 60 * 80


def test_train_stream_resumes_exactly_across_epochs(digits_source):
    cfg = data.PipelineConfig(image_size=75, global_batch=256, eval_split="test", shuffle_buffer=500)
    per_epoch = 1497 // 256
    it = data.train_iterator(digits_source, cfg, per_epoch)
    stream = [next(it) for _ in range(per_epoch + 2)]
    assert not np.array_equal(stream[0]["label"], stream[per_epoch]["label"])  # reshuffled per epoch
    for start in (3, per_epoch, per_epoch + 1):
        resumed = next(data.train_iterator(digits_source, cfg, per_epoch, start))
        np.testing.assert_array_equal(resumed["image"], stream[start]["image"])
        np.testing.assert_array_equal(resumed["label"], stream[start]["label"])


def test_global_batch_does_not_depend_on_process_count(digits_source):
    """2 processes x 1 shard each produce, concatenated, what 1 process x 2 shards produces."""
    base = {"image_size": 75, "global_batch": 64, "eval_split": "test", "shuffle_buffer": 300, "data_shards": 2}
    single = next(data.train_iterator(digits_source, data.PipelineConfig(**base), 1497 // 64))
    halves = [
        next(data.train_iterator(digits_source, data.PipelineConfig(**base, process_index=i, process_count=2), 23))
        for i in range(2)
    ]
    np.testing.assert_array_equal(single["label"], np.concatenate([h["label"] for h in halves]))
    np.testing.assert_array_equal(single["image"], np.concatenate([h["image"] for h in halves]))


@pytest.mark.parametrize(("process_count", "shards", "batch"), [(1, 1, 64), (1, 3, 48), (3, 3, 48), (2, 4, 40)])
def test_eval_counts_every_example_once(digits_source, process_count, shards, batch):
    labels, counts, steps = [], 0, set()
    for index in range(process_count):
        cfg = data.PipelineConfig(75, batch, eval_split="test", process_index=index, process_count=process_count)
        cfg = data.PipelineConfig(**{**cfg.__dict__, "data_shards": shards})
        batches = list(data.eval_iterator(digits_source, cfg))
        steps.add(len(batches))
        for b in batches:
            assert b["image"].shape[0] == batch // process_count
            counts += int(b["mask"].sum())
            labels.extend(b["label"][b["mask"] == 1].tolist())
    assert len(steps) == 1  # every process runs the same number of eval steps
    assert counts == 300
    reference = [int(x["label"]) for x in digits_source.read("test", 0, 1, None).as_numpy_iterator()]
    assert sorted(labels) == sorted(reference)


def test_bad_images_in_folder_dataset(tmp_path):
    rng = np.random.default_rng(0)
    rgb = (rng.random((40, 50, 3)) * 255).astype(np.uint8)
    files = {
        "ok.jpg": jpeg(rgb),
        "gray.jpg": jpeg(rgb[..., 0]),
        "cmyk.JPEG": jpeg(rgb, mode="CMYK"),
        "png_inside.JPEG": jpeg(rgb, fmt="PNG"),
        "corrupt.jpg": b"this is not an image",
        "truncated.jpg": jpeg(rgb)[:200],
    }
    frames = [Image.fromarray((rng.random((40, 50, 3)) * 255).astype(np.uint8)) for _ in range(3)]
    buf = io.BytesIO()
    frames[0].save(buf, "GIF", save_all=True, append_images=frames[1:])
    files["animated.gif"] = buf.getvalue()
    for split in ("train", "val"):
        for cls in ("a", "b"):
            (tmp_path / split / cls).mkdir(parents=True)
            for name, content in files.items():
                (tmp_path / split / cls / name).write_bytes(content)

    source = data.get_source(f"folder:{tmp_path}")
    assert source.num_classes == 2 and source.num_examples("train") == 10
    assert source.skipped == 4  # corrupt + truncated in each class
    cfg = data.PipelineConfig(image_size=75, global_batch=5, eval_split="val")
    batches = [next(data.train_iterator(source, cfg, 2)) for _ in range(2)]
    assert all(b["image"].shape == (5, 75, 75, 3) for b in batches)
    evals = list(data.eval_iterator(source, cfg))
    assert sum(int(b["mask"].sum()) for b in evals) == 10
    assert source.skipped == 8


def test_unprepared_imagenet_says_how_to_prepare(tmp_path):
    with pytest.raises(data.DatasetNotPreparedError) as info:
        data.get_source("imagenet2012", str(tmp_path))
    msg = str(info.value)
    assert "ILSVRC2012_img_train.tar" in msg and "ILSVRC2012_img_val.tar" in msg
    assert f"--manual_dir={tmp_path}/downloads/manual" in msg and "python scripts/prepare_imagenet.py" in msg
    assert f"pass --config.data_dir={tmp_path}" in msg  # the training flag, by default


def test_unprepared_tfds_dataset(tmp_path):
    with pytest.raises(data.DatasetNotPreparedError, match="tfds build mnist"):
        data.get_source("mnist", str(tmp_path))


def test_record_that_fails_to_decode_keeps_epochs_aligned(tmp_path):
    """A record that breaks after indexing is dropped; every epoch still has steps_per_epoch batches."""
    rng = np.random.default_rng(1)
    for cls in ("a", "b"):
        (tmp_path / "train" / cls).mkdir(parents=True)
        for i in range(6):
            (tmp_path / "train" / cls / f"{i}.jpg").write_bytes(jpeg((rng.random((20, 20, 3)) * 255).astype(np.uint8)))
    source = data.get_source(f"folder:{tmp_path}")
    (tmp_path / "train" / "a" / "3.jpg").write_bytes(b"broken after indexing")
    cfg = data.PipelineConfig(image_size=75, global_batch=4, shuffle_buffer=20, data_shards=2)
    per_epoch = source.num_examples("train") // 4
    assert per_epoch == 3
    it = data.train_iterator(source, cfg, per_epoch)
    stream = [next(it) for _ in range(2 * per_epoch)]
    assert all(b["image"].shape == (4, 75, 75, 3) for b in stream)
    np.testing.assert_array_equal(
        next(data.train_iterator(source, cfg, per_epoch, per_epoch))["label"], stream[per_epoch]["label"]
    )


def test_tpu_fast_colour_distortion_is_one_brightness_and_chroma_offset():
    """The TPU reference's distort_color_fast: brightness +-32/255, Cb and Cr +-0.1, one per image."""
    grey = tf.fill([4, 5, 3], 0.5)
    seen = []
    for i in range(40):
        out = preprocessing.distort_color_fast(grey, tf.constant([i, 7], tf.int64)).numpy()
        offset = out[0, 0] - 0.5
        np.testing.assert_allclose(out - 0.5, np.broadcast_to(offset, out.shape), atol=1e-6)  # every pixel alike
        r, g, b = offset
        y = 0.299 * r + 0.587 * g + 0.114 * b  # RGB -> YCbCr inverts the offsets' matrix
        cb, cr = (b - y) / 1.772, (r - y) / 1.402
        assert abs(y) <= 32 / 255 + 1e-5 and abs(cb) <= 0.1 + 1e-4 and abs(cr) <= 0.1 + 1e-4
        seen.append((y, cb, cr))
    spread = np.ptp(np.array(seen), axis=0)
    assert spread[0] > 32 / 255 and min(spread[1:]) > 0.1  # the ranges are used, not a constant


def _open_digits(data_dir, barrier, results):
    from inception_flax import data as data_module

    barrier.wait()  # every process starts preparing at the same moment
    try:
        source = data_module.get_source("inception_digits", data_dir)
        results.put(source.num_examples("train") + source.num_examples("test"))
    except Exception as e:  # the parent reports it
        results.put(f"{type(e).__name__}: {e}")


def test_digits_prepared_by_concurrent_processes(tmp_path):
    """Two processes opening the unprepared digits at once (the study's --parallel workers on a new
    machine) both get them: the one whose copy is renamed into place second reads the first's."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_open_digits, args=(str(tmp_path), barrier, results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert got == [1797, 1797]
    assert sorted(p.name for p in (tmp_path / "inception_digits").iterdir()) == ["1.0.0"]
