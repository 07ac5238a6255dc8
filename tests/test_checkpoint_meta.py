"""One checkpoint metadata schema for training workdirs and converted weights; anything else (the
metadata of a version from before the schema) is refused with one line, before anything is built."""

import json

import numpy as np
import orbax.checkpoint as ocp
import pytest

from inception_flax import checkpoint, config_base, preflight
from tests.helpers import tiny_config

# Metadata as versions before the schema wrote it: a training step's options flat beside `model`,
# and converted weights of format "inception_flax.weights/1".
OLD_WORKDIR_META = {"model": "inception_resnet_v1", "width": 0.125, "num_classes": 10, "config": {}, "progress": {}}
OLD_WEIGHTS_META = {"format": "inception_flax.weights/1", "model": "inception_v4", "options": {"num_classes": 1000}}


def _tiny_variables():
    """Arrays in the shape of a saved state's subtrees (their values matter, not the network)."""
    rng = np.random.default_rng(0)
    params = {"Logits": {"kernel": rng.normal(size=(4, 10)).astype(np.float32)}}
    stats = {"bn": {"mean": rng.normal(size=(4,)).astype(np.float32)}}
    return params, stats


def test_only_the_schema_parses():
    meta = checkpoint.make_meta("inception_v4", {"num_classes": 1000}, source="timm")
    assert checkpoint.parse_meta(meta) == meta
    for old in (OLD_WORKDIR_META, OLD_WEIGHTS_META, {"format": "inception_flax/99"}):
        with pytest.raises(ValueError, match="written by an older version of inception_flax"):
            checkpoint.parse_meta(old)


def test_a_workdir_from_an_older_version_is_refused_in_one_line(tmp_path, tfds_dir):
    params, stats = _tiny_variables()
    ckpt = checkpoint.Checkpointer(str(tmp_path), async_save=False)
    ckpt.save(4, {"params": params, "batch_stats": stats, "ema_params": params}, OLD_WORKDIR_META)
    ckpt.close()
    with pytest.raises(ValueError, match=r"checkpoints/4 has metadata of format None, not 'inception_flax/2'"):
        checkpoint.describe(str(tmp_path))
    with pytest.raises(config_base.ConfigError, match="written by an older version") as error:
        preflight.validate(tiny_config(tfds_dir), str(tmp_path))
    assert "\n" not in str(error.value)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["4"]  # nothing touched


def test_old_converted_weights_are_refused_and_new_ones_use_the_schema(tmp_path):
    params, stats = _tiny_variables()
    old = tmp_path / "old"
    writer = ocp.StandardCheckpointer()
    writer.save(str(old / "variables"), {"params": params, "batch_stats": stats})
    writer.wait_until_finished()
    (old / checkpoint.WEIGHTS_META).write_text(json.dumps(OLD_WEIGHTS_META))
    with pytest.raises(ValueError, match="inception_flax.json has metadata of format 'inception_flax.weights/1'"):
        checkpoint.describe(str(old))

    new = tmp_path / "new"
    meta = {"model": "inception_v4", "options": {"num_classes": 1000}, "source": "timm"}
    checkpoint.save_weights(str(new), {"params": params, "batch_stats": stats}, meta)
    written = json.loads((new / checkpoint.WEIGHTS_META).read_text())
    assert written == {**meta, "format": checkpoint.META_FORMAT}
    assert checkpoint.describe(str(new)).options == {"num_classes": 1000}
    _, variables, _ = checkpoint.load_with_info(str(new))
    np.testing.assert_array_equal(variables["batch_stats"]["bn"]["mean"], stats["bn"]["mean"])
