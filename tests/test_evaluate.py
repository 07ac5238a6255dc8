"""Evaluation: protocol views, exact counts on 1 and 8 devices, exclusion lists, workdirs, fine-tuning."""

import dataclasses
import io
import json
import math
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from inception_flax import checkpoint, config_base, data, evaluation, finetune, models, preflight, train
from inception_flax.ablation import diagnose
from inception_flax.data import preprocessing
from inception_flax.evaluation import batch_stats
from tests.helpers import ROOT, random_variables, tiny_config

SIZE = 64


def encode(array, fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def photo():
    rng = np.random.default_rng(0)
    return (rng.random((90, 120, 3)) * 255).astype(np.uint8)  # landscape, 4:3


def unit(x):
    return (np.clip(x, 0.0, 1.0) - 0.5) * 2.0


def test_view_counts_shapes_and_ranges(photo):
    for name, count in evaluation.NUM_VIEWS.items():
        views = evaluation.Protocol(name).views(tf.constant(encode(photo)), SIZE).numpy()
        assert views.shape == (count, SIZE, SIZE, 3) and views.dtype == np.float32
        assert -1.0 <= views.min() and views.max() <= 1.0


def test_central_fraction_is_the_training_eval(photo):
    raw = tf.constant(encode(photo, "JPEG"))
    view = evaluation.Protocol("central").views(raw, SIZE).numpy()[0]
    np.testing.assert_array_equal(view, preprocessing.preprocess_eval(raw, SIZE).numpy())


def test_central_shorter_side_is_timms_transform(photo):
    protocol = evaluation.Protocol("central", crop_fraction=0.8, interpolation="bicubic", resize="shorter_side")
    view = protocol.views(tf.constant(encode(photo)), SIZE).numpy()[0]
    short = math.floor(SIZE / 0.8)  # 80: the image becomes 80 x 107
    resized = tf.image.resize(photo / 255.0, [short, round(120 * short / 90)], "bicubic", antialias=True).numpy()
    top, left = round((short - SIZE) / 2), round((resized.shape[1] - SIZE) / 2)
    np.testing.assert_allclose(view, unit(resized[top : top + SIZE, left : left + SIZE]), atol=1e-5)


def test_ten_crops_are_corners_centre_and_mirrors_inside_the_image(photo):
    views = evaluation.Protocol("10crop").views(tf.constant(encode(photo)), SIZE).numpy()
    short = math.floor(SIZE / 0.875)
    resized = tf.image.resize(photo / 255.0, [short, round(120 * short / 90)], antialias=False).numpy()
    h, w = resized.shape[:2]
    offsets = [
        (0, 0),
        (0, w - SIZE),
        (h - SIZE, 0),
        (h - SIZE, w - SIZE),
        (round((h - SIZE) / 2), round((w - SIZE) / 2)),
    ]
    for i, (top, left) in enumerate(offsets):
        crop = unit(resized[top : top + SIZE, left : left + SIZE])
        np.testing.assert_allclose(views[i], crop, atol=1e-5)
        np.testing.assert_allclose(views[5 + i], crop[:, ::-1], atol=1e-5)


def test_144_crops_scales_squares_and_mirrors(photo):
    views = evaluation.Protocol("144crop").views(tf.constant(encode(photo)), SIZE).numpy()
    np.testing.assert_array_equal(views[72:], views[:72, :, ::-1])  # the mirror images
    # First scale (shorter side 256/224 * 64 = 73), first square (left), its top-left corner crop
    # and, sixth, the whole square resized.
    short = round(SIZE * 256 / 224)
    resized = tf.image.resize(photo / 255.0, [short, round(120 * short / 90)], antialias=False).numpy()
    np.testing.assert_allclose(views[0], unit(resized[:SIZE, :SIZE]), atol=1e-5)
    square = tf.image.resize(resized[:, :short], [SIZE, SIZE], antialias=False).numpy()
    np.testing.assert_allclose(views[5], unit(square), atol=1e-5)
    assert len({v.tobytes() for v in views}) == 144


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A narrow random network, its digits source, and converted weights of it on disk."""
    tfds_dir = str(tmp_path_factory.mktemp("tfds"))
    source = data.get_source("inception_digits", tfds_dir)
    model = models.create("inception_resnet_v1", width=0.125, num_classes=10)
    variables = jax.tree.map(np.asarray, random_variables(model, 75))
    path = str(tmp_path_factory.mktemp("weights") / "tiny")
    options = {"width": 0.125, "num_classes": 10}
    checkpoint.save_weights(path, variables, {"model": "inception_resnet_v1", "options": options})
    return tfds_dir, source, model, variables, path


def direct_metrics(model, variables, source, split, protocol=None):
    """The same metrics computed example by example, eagerly, without the pipeline's batching."""
    protocol = protocol or evaluation.Protocol()
    ds = source.read(split, 0, 1, shuffle_seed=None)
    apply = jax.jit(model.apply)
    logps, labels = [], []
    for ex in ds.as_numpy_iterator():
        views = protocol.views(tf.constant(ex["image"]), 75).numpy()
        logp = jax.nn.log_softmax(apply(variables, views))
        logps.append(jax.nn.logsumexp(logp, axis=0) - math.log(len(views)))
        labels.append(ex["label"])
    logps, labels = np.stack(logps), np.array(labels)
    ranks = np.argsort(-logps, -1)
    return {
        "top1": float(np.mean(ranks[:, 0] == labels)),
        "top5": float(np.mean([y in r[:5] for y, r in zip(labels, ranks, strict=True)])),
        "loss": float(-np.mean(logps[np.arange(len(labels)), labels])),
        "num_examples": float(len(labels)),
    }


@pytest.mark.parametrize(("protocol", "split", "batch"), [("central", "test[:21]", 8), ("10crop", "test[:5]", 2)])
def test_evaluator_counts_every_example_once_and_matches_direct(tiny, protocol, split, batch):
    _, source, model, variables, _ = tiny
    pcfg = data.PipelineConfig(image_size=75, global_batch=batch, eval_split=split)
    protocol = evaluation.Protocol(protocol)
    result = evaluation.Evaluator(model, protocol, views_per_step=4).run(variables, source, pcfg)
    expected = direct_metrics(model, variables, source, split, protocol)
    assert result["num_examples"] == expected["num_examples"] and result["skipped_images"] == 0
    assert result["top1"] == expected["top1"] and result["top5"] == expected["top5"]
    assert result["top1_error"] == pytest.approx(1 - expected["top1"])
    assert result["loss"] == pytest.approx(expected["loss"], rel=1e-5)


def cats_and_dogs(root):
    """A folder dataset: 2 training and 5 validation images of each of two classes."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 2), ("val", 5)):
        for c in ("cat", "dog"):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                (root / split / c / f"{c}{i}.png").write_bytes(encode((rng.random((40, 50, 3)) * 255).astype(np.uint8)))
    return root


def test_exclusion_list(tmp_path):
    root = cats_and_dogs(tmp_path / "images")
    (tmp_path / "exclude.txt").write_text("# blacklist\ncat1.png\n\nval/dog/dog3.png\n")
    assert evaluation.read_exclude_list(str(tmp_path / "exclude.txt")) == ["cat1.png", "dog3.png"]
    (tmp_path / "numbers.txt").write_text("36\n50\n")
    assert evaluation.read_exclude_list(str(tmp_path / "numbers.txt"))[0] == "ILSVRC2012_val_00000036.JPEG"

    source = data.get_source(f"folder:{root}")
    model = models.create("inception_v3", width=0.125, num_classes=2)
    variables = random_variables(model, 75)
    pcfg = data.PipelineConfig(image_size=75, global_batch=4, eval_split="val")
    result = evaluation.Evaluator(model).run(variables, source, pcfg, exclude=["cat1.png", "dog3.png"])
    assert (result["num_examples"], result["excluded"], result["skipped_images"]) == (8, 2, 0)


def test_a_small_split_is_read_once_and_evaluated_from_memory(tmp_path, monkeypatch):
    """The training loop's evaluator keeps a split that fits `cache_bytes`: the second run reads
    nothing and gives the same numbers; a split over the limit is read every time."""
    root = cats_and_dogs(tmp_path / "images")
    source = data.get_source(f"folder:{root}")
    model = models.create("inception_v3", width=0.125, num_classes=2)
    variables = random_variables(model, 75)
    pcfg = data.PipelineConfig(image_size=75, global_batch=4, eval_split="val")
    reads = []
    original = data.eval_iterator
    monkeypatch.setattr(data, "eval_iterator", lambda *a, **k: reads.append(1) or original(*a, **k))
    split_bytes = 12 * (75 * 75 * 3 * 4 + 3 * 4)  # 10 images padded to 3 batches of 4
    kept = evaluation.Evaluator(model, cache_bytes=split_bytes)
    first, again = kept.run(variables, source, pcfg), kept.run(variables, source, pcfg)
    assert len(reads) == 1 and first == again and first["num_examples"] == 10
    other = dataclasses.replace(pcfg, image_size=79)  # another split or input size is another entry
    assert kept.run(random_variables(model, 79), source, other)["num_examples"] == 10 and len(reads) == 2
    reads.clear()
    small = evaluation.Evaluator(model, cache_bytes=split_bytes - 1)
    assert small.run(variables, source, pcfg) == small.run(variables, source, pcfg) == first
    assert len(reads) == 2


def run_evaluate(args, devices=1):
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "evaluate.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_evaluate_script_same_counts_on_1_and_8_devices(tiny, tmp_path):
    tfds_dir, _, _, _, path = tiny
    results = []
    for devices in (1, 8):
        out = tmp_path / f"{devices}.json"
        args = [f"--checkpoint={path}", "--dataset=inception_digits", f"--data_dir={tfds_dir}", "--split=test[:37]"]
        proc = run_evaluate([*args, "--image_size=75", "--batch_size=8", f"--json={out}"], devices)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "top-1" in proc.stdout and "      37" in proc.stdout
        results.append(json.loads(out.read_text())[0])
    assert results[0]["num_examples"] == results[1]["num_examples"] == 37
    assert results[0]["top1"] == results[1]["top1"] and results[0]["top5"] == results[1]["top5"]
    assert results[0]["loss"] == pytest.approx(results[1]["loss"], rel=1e-5)


def test_evaluate_script_errors(tiny, tmp_path):
    tfds_dir, _, _, _, path = tiny
    proc = run_evaluate([f"--checkpoint={tmp_path}"])
    assert proc.returncode != 0 and "holds no checkpoint" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_evaluate([f"--checkpoint={path}", f"--data_dir={tmp_path}"])  # ImageNet is not prepared there
    assert proc.returncode != 0 and "ILSVRC2012_img_train.tar" in proc.stderr
    proc = run_evaluate(
        [f"--checkpoint={path}", "--dataset=inception_digits", f"--data_dir={tfds_dir}", "--image_size=50"]
    )
    assert proc.returncode != 0 and "below inception_resnet_v1's minimum 75" in proc.stderr


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    tfds_dir = str(tmp_path_factory.mktemp("tfds"))
    path = str(tmp_path_factory.mktemp("work"))
    result = train.train_and_evaluate(tiny_config(tfds_dir), path)  # checkpoints at 2, 4, 6
    return tfds_dir, path, result


def test_workdir_evaluation_takes_the_runs_settings_and_fills_in_steps(workdir):
    _, path, trained = workdir
    [result] = evaluation.evaluate(evaluation.EvalRequest(checkpoint=path))
    assert (result["step"], result["split"], result["image_size"]) == (6, "test[:20]", 75)
    assert result["num_examples"] == trained["eval_num_examples"] == 20
    assert result["top1"] == trained["eval_top1"] and result["loss"] == pytest.approx(trained["eval_loss"], rel=1e-6)
    record = evaluation.record_path(path, "test[:20]", evaluation.Protocol(), ema=True)
    assert os.path.exists(f"{record}.jsonl") and any(p.startswith("events.out") for p in os.listdir(record))

    filled = evaluation.evaluate(evaluation.EvalRequest(checkpoint=path, all_steps=True))
    assert [r["step"] for r in filled] == [2, 4]  # 6 was evaluated above
    assert evaluation.evaluate(evaluation.EvalRequest(checkpoint=path, all_steps=True)) == []
    raw = evaluation.evaluate(evaluation.EvalRequest(checkpoint=path, step=4, ema=False))
    assert raw[0]["step"] == 4 and raw[0]["ema"] is False

    model, variables = checkpoint.load(path, step=2, ema=False)
    assert model.width == 0.125 and set(variables) == {"params", "batch_stats"}


def test_finetune_keeps_everything_but_the_heads(workdir, tmp_path):
    tfds_dir, path, _ = workdir
    config = tiny_config(tfds_dir, init_from=path, num_classes=12, learning_rate=0.0, num_train_steps=1)
    config.checkpoint_every_steps = 1
    train.train_and_evaluate(config, str(tmp_path))
    _, pretrained = checkpoint.load(path)
    _, tuned = checkpoint.load(str(tmp_path), ema=False)
    kept, fresh = finetune.plan(tuned, pretrained)
    assert sorted(fresh) == ["params/Logits/bias", "params/Logits/kernel"]
    assert tuned["params"]["Logits"]["kernel"].shape[-1] == 12
    for name in kept:
        if name.startswith("params/"):  # lr 0: the parameters are the pretrained ones
            keys = name.split("/")[1:]
            a, b = tuned["params"], pretrained["params"]
            for k in keys:
                a, b = a[k], b[k]
            np.testing.assert_array_equal(a, b)


def test_init_from_another_model_is_refused(workdir, tmp_path):
    tfds_dir, path, _ = workdir
    with pytest.raises(config_base.ConfigError, match="holds inception_resnet_v1, not config.model=inception_v4"):
        preflight.validate(tiny_config(tfds_dir, init_from=path, model="inception_v4", model_options={}), str(tmp_path))
    with pytest.raises(config_base.ConfigError, match="outside the classifier heads do not fit"):
        preflight.validate(tiny_config(tfds_dir, init_from=path, width=0.25), str(tmp_path))


def test_recomputed_batch_stats_are_the_population_statistics():
    model = models.create("inception_v3", num_classes=10, width=0.125)
    variables = random_variables(model, 75)
    rng = np.random.default_rng(0)
    # Two batches with different means: the population variance must include their spread.
    images = [rng.normal(loc, 1.0, (4, 75, 75, 3)).astype(np.float32) for loc in (-1.0, 2.0)]
    split = batch_stats.population_batch_stats(model, variables, [{"image": x} for x in images])
    whole = batch_stats.population_batch_stats(model, variables, [{"image": np.concatenate(images)}])
    assert jax.tree.structure(split) == jax.tree.structure(variables["batch_stats"])
    # The first BatchNorm sees the raw convolution of the images, the same in both cuts, so its
    # statistics over two batches are exactly those over their union; deeper ones differ (each batch
    # was normalised by its own statistics in training mode), but stay finite and non-negative.
    first, first_whole = split["Stem"]["Conv2d_1a_3x3"]["bn"], whole["Stem"]["Conv2d_1a_3x3"]["bn"]
    np.testing.assert_allclose(first["mean"], first_whole["mean"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first["var"], first_whole["var"], rtol=1e-4, atol=1e-5)
    deeper = split["Mixed_5b"]["b0_0"]["bn"]["var"]
    assert not np.allclose(deeper, whole["Mixed_5b"]["b0_0"]["bn"]["var"], rtol=1e-3)
    assert all(np.all(np.isfinite(v)) for v in jax.tree.leaves(split))
    assert all(np.all(v >= 0) for p, v in jax.tree_util.tree_leaves_with_path(split) if p[-1].key == "var")
    with pytest.raises(ValueError, match="No batches"):
        batch_stats.population_batch_stats(model, variables, [])


def test_diagnose_scores_a_run_as_its_loop_did_and_with_recomputed_statistics(workdir):
    _, path, trained = workdir
    run = diagnose.load(path)
    result = diagnose.check_bn(run)
    assert result["step"] == 6 and result["epochs"] == 1
    # With the kept statistics the validation score is the loop's own final evaluation.
    assert result["validation"]["kept"]["top1_error"] == pytest.approx(trained["eval_top1_error"], abs=1e-6)
    assert result["validation"]["kept"]["loss"] == pytest.approx(trained["eval_loss"], rel=1e-5)
    for split in ("validation", "train"):
        assert set(result[split]) == {"kept", "recomputed"}
        assert all(0.0 <= s["top1_error"] <= 1.0 and math.isfinite(s["loss"]) for s in result[split].values())
    table = diagnose.bn_markdown(result)
    assert table.count("\n| ") == 5 and "Step 6" in table
    with pytest.raises(ValueError, match="at least one epoch"):
        diagnose.check_bn(run, epochs=0)
    # By hand: two images, two units, outputs (0, 1) and (1, 0): half zeros; each unit's std across
    # the images is 0.5 and the mean |x| is 0.5, so the spread is 1; identical images spread 0.
    assert diagnose._spread(np.array([[0.0, 1.0], [1.0, 0.0]])) == (0.5, 1.0)
    assert diagnose._spread(np.ones((4, 3))) == (0.0, 0.0)
    seen = diagnose.signal(run)
    assert seen["step"] == 6 and next(iter(seen["modules"])) == "Stem"
    for m in seen["modules"].values():
        assert set(m) == {"train", "eval"} and all(0 <= z <= 1 and s >= 0 for z, s in m.values())
    assert seen["modules"]["Stem"]["train"][1] > 0.1  # different digits, different stem outputs
    assert diagnose.signal_markdown(seen).count("\n| ") == len(seen["modules"]) + 1
    moved = diagnose.weight_growth(run)["modules"]
    assert (
        next(iter(moved)) == "Stem"
        and list(moved)[-1] == "Logits"
        and any(abs(now / init - 1) > 1e-4 for init, now in moved.values())
    )


def test_weight_growth_redraws_the_runs_own_initialisation(tmp_path):
    """A run at rate 0 keeps its initial weights: every ratio is exactly 1 (the script's table)."""
    tfds_dir = str(tmp_path / "tfds")
    config = tiny_config(tfds_dir, learning_rate=0.0, num_train_steps=1, eval_every_steps=100, seed=7)
    config.checkpoint_every_steps = 1
    train.train_and_evaluate(config, str(tmp_path / "run"))
    growth = diagnose.weight_growth(diagnose.load(str(tmp_path / "run")))
    assert growth["step"] == 1 and len(growth["modules"]) > 10
    for init, now in growth["modules"].values():
        assert now == pytest.approx(init, rel=1e-6)
    out = tmp_path / "d.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "diagnose_run.py"),
            f"--workdir={tmp_path / 'run'}",
            "--epochs=0",
            f"--out={out}",
            f"--markdown={out}.md",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "| all |" in proc.stdout and "| 1.00 |" in proc.stdout and "batch_stats" not in json.loads(out.read_text())
    assert (tmp_path / "d.json.md").read_text() == proc.stdout
