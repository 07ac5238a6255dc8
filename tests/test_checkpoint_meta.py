"""One checkpoint metadata schema for training workdirs and converted weights; the older shapes
still read. The fixtures are metadata as the code wrote it before the schema (2026-12-01): a tiny
training run's step (options flat beside model, config and progress) and timm weights converted
with format "inception_flax.weights/1"."""

import json
import os
from pathlib import Path

import numpy as np
import orbax.checkpoint as ocp
import pytest

from inception_flax import checkpoint, faults

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "checkpoint_meta"


def _fixture(name):
    return json.loads((FIXTURES / name).read_text())


def _tiny_variables():
    """Arrays in the shape of a saved state's subtrees (their values matter, not the network)."""
    rng = np.random.default_rng(0)
    params = {"Logits": {"kernel": rng.normal(size=(4, 10)).astype(np.float32)}}
    stats = {"bn": {"mean": rng.normal(size=(4,)).astype(np.float32)}}
    return params, stats


def test_the_old_shapes_parse_into_the_schema():
    workdir = checkpoint.parse_meta(_fixture("workdir_flat.json"))
    assert workdir["format"] == checkpoint.META_FORMAT
    assert workdir["model"] == "inception_resnet_v1"
    assert workdir["options"] == {
        "num_classes": 10,
        "width": 0.125,
        "aux_logits": False,
        "residual": True,
        "scale_a": 0.17,
        "scale_b": 0.1,
        "scale_c": 0.2,
    }
    assert workdir["config"]["model"] == "inception_resnet_v1" and workdir["progress"]["data_position"] == 4
    weights = checkpoint.parse_meta(_fixture("weights_v1.json"))
    assert weights["format"] == checkpoint.META_FORMAT and weights["model"] == "inception_v4"
    assert weights["options"] == {"num_classes": 1000, "aux_logits": False, "bn_scale": True}
    assert weights["source"] == "timm" and weights["eval_defaults"]["interpolation"] == "bicubic"
    assert checkpoint.parse_meta(weights) == weights  # the schema parses to itself
    with pytest.raises(ValueError, match="unknown checkpoint metadata"):
        checkpoint.parse_meta({"format": "inception_flax/99", "model": "inception_v4"})


def test_a_workdir_written_before_the_schema_still_describes_and_loads(tmp_path):
    params, stats = _tiny_variables()
    state = {"params": params, "batch_stats": stats, "ema_params": params}
    ckpt = checkpoint.Checkpointer(str(tmp_path), async_save=False)
    ckpt.save(4, state, _fixture("workdir_flat.json"))  # written as the code before the schema did
    ckpt.close()
    info = checkpoint.describe(str(tmp_path))
    assert (info.kind, info.model, info.step) == ("workdir", "inception_resnet_v1", 4)
    assert info.options["width"] == 0.125 and info.options["scale_c"] == 0.2
    assert info.config["dataset"] == "inception_digits"
    step, meta = checkpoint.read_meta(str(tmp_path))
    assert step == 4 and meta["options"] == info.options
    assert faults.Progress.from_meta(meta, step) == faults.Progress(4)
    model, variables, _ = checkpoint.load_with_info(str(tmp_path))
    assert model.width == 0.125
    np.testing.assert_array_equal(variables["params"]["Logits"]["kernel"], params["Logits"]["kernel"])


def test_converted_weights_of_format_1_still_load_and_new_ones_use_the_schema(tmp_path):
    params, stats = _tiny_variables()
    old = tmp_path / "old"
    writer = ocp.StandardCheckpointer()
    writer.save(str(old / "variables"), {"params": params, "batch_stats": stats})
    writer.wait_until_finished()
    (old / checkpoint.WEIGHTS_META).write_text(json.dumps(_fixture("weights_v1.json")))
    info = checkpoint.describe(str(old))
    assert (info.kind, info.model) == ("weights", "inception_v4")
    assert info.options["bn_scale"] and info.meta["eval_defaults"]["resize"] == "shorter_side"
    _, variables, _ = checkpoint.load_with_info(str(old))
    np.testing.assert_array_equal(variables["batch_stats"]["bn"]["mean"], stats["bn"]["mean"])

    new = tmp_path / "new"
    meta = {k: v for k, v in _fixture("weights_v1.json").items() if k != "format"}
    checkpoint.save_weights(str(new), {"params": params, "batch_stats": stats}, meta)
    written = json.loads((new / checkpoint.WEIGHTS_META).read_text())
    assert written == {**meta, "format": checkpoint.META_FORMAT}
    assert checkpoint.describe(str(new)).options == info.options
    assert sorted(os.listdir(new)) == sorted([checkpoint.WEIGHTS_META, "variables"])
