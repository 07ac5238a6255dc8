"""TF-slim importer: tf_slim's own Inception-v3 graph, and v4 / IR-v2 checkpoints with slim's exact names."""

import shutil
from pathlib import Path

import jax
import numpy as np
import pytest
import tensorflow as tf

from inception_flax import checkpoint, models, weights
from tests import slim_reference
from tests.helpers import max_rel_error, random_variables

SCOPES = weights.SLIM_SCOPES


def write_slim_checkpoint(prefix, name, variables, extra=None):
    """Writes `variables` under slim's names (tests/slim_reference.py); every Flax tensor must be placed."""
    params, stats = variables["params"], variables["batch_stats"]
    tensors, placed = {}, set()

    def take(tree, collection, path):
        placed.add((collection, *path))
        node = tree
        for p in path:
            node = node[p]
        return np.asarray(node)

    for slim, path, kind in slim_reference.slim_names(name):
        full = f"{SCOPES[name]}/{slim}"
        if kind == "conv_bn":
            tensors[f"{full}/weights"] = take(params, "params", (*path, "conv", "kernel"))
            tensors[f"{full}/BatchNorm/beta"] = take(params, "params", (*path, "bn", "bias"))
            tensors[f"{full}/BatchNorm/moving_mean"] = take(stats, "batch_stats", (*path, "bn", "mean"))
            tensors[f"{full}/BatchNorm/moving_variance"] = take(stats, "batch_stats", (*path, "bn", "var"))
        else:
            tensors[f"{full}/weights"] = take(params, "params", (*path, "kernel"))
            tensors[f"{full}/biases"] = take(params, "params", (*path, "bias"))
    every = {("params", *p) for p in _paths(params)} | {("batch_stats", *p) for p in _paths(stats)}
    assert every == placed, sorted(every ^ placed)[:5]
    tensors |= extra or {}
    names = sorted(tensors)
    tf.raw_ops.SaveV2(
        prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names), tensors=[tensors[n] for n in names]
    )
    return tensors


def _paths(tree, prefix=()):
    for k, v in tree.items():
        yield from _paths(v, (*prefix, k)) if isinstance(v, dict) else [(*prefix, k)]


@pytest.fixture(scope="module", params=["inception_v4", "inception_resnet_v2"])
def slim_checkpoint(request, tmp_path_factory):
    name = request.param
    model = models.create(name, num_classes=1001, aux_logits=True)
    variables = jax.tree.map(np.asarray, random_variables(model, 299))
    prefix = str(tmp_path_factory.mktemp("slim") / "model.ckpt")
    scope = SCOPES[name]
    shadow = np.full((1001,), 0.5, np.float32)
    extra = {
        f"{scope}/Logits/Logits/biases/ExponentialMovingAverage": shadow,  # EMA shadows win
        f"{scope}/Conv2d_1a_3x3/weights/RMSProp": np.zeros((3, 3, 3, 32), np.float32),  # optimizer slots are ignored
        "global_step": np.array(7, np.int64),
    }
    write_slim_checkpoint(prefix, name, variables, extra)
    return name, prefix, variables, shadow


def test_slim_names_land_in_the_right_layers(slim_checkpoint):
    name, prefix, variables, shadow = slim_checkpoint
    imported = weights.from_slim(prefix, name)
    expected = jax.tree.map(lambda x: x, variables)
    expected["params"]["Logits"]["bias"] = shadow
    jax.tree.map(np.testing.assert_array_equal, imported, expected)
    assert weights.model_options(imported) == {"num_classes": 1001, "aux_logits": True, "bn_scale": False}

    dropped = weights.from_slim(prefix, name, drop_background=True)
    np.testing.assert_array_equal(dropped["params"]["Logits"]["kernel"], variables["params"]["Logits"]["kernel"][:, 1:])
    np.testing.assert_array_equal(
        dropped["params"]["AuxLogits"]["Logits"]["bias"], expected["params"]["AuxLogits"]["Logits"]["bias"][1:]
    )
    assert weights.model_options(dropped)["num_classes"] == 1000


def test_slim_checkpoint_of_another_network_is_refused(slim_checkpoint):
    name, prefix, _, _ = slim_checkpoint
    other = "inception_resnet_v2" if name == "inception_v4" else "inception_v4"
    with pytest.raises(ValueError, match=f"holds no {SCOPES[other]}/ variables.*{SCOPES[name]}"):
        weights.from_slim(prefix, other)


def test_damaged_slim_checkpoints_are_refused(slim_checkpoint, tmp_path):
    name, prefix, _variables, _ = slim_checkpoint
    # A conv missing from one branch: the branch is named.
    names = slim_reference.slim_names(name)
    dropped = next(s for s, path, _ in names if path == ("Mixed_6a", "b1_1"))
    partial = str(tmp_path / "partial.ckpt")
    reader = tf.train.load_checkpoint(prefix)
    keep = [n for n in reader.get_variable_to_shape_map() if not n.startswith(f"{SCOPES[name]}/{dropped}/")]
    tf.raw_ops.SaveV2(
        prefix=partial,
        tensor_names=keep,
        shape_and_slices=[""] * len(keep),
        tensors=[reader.get_tensor(n) for n in keep],
    )
    with pytest.raises(ValueError, match=dropped.rsplit("/", 1)[0]):
        weights.from_slim(partial, name)
    # A truncated data file.
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for f in Path(prefix).parent.glob("model.ckpt*"):
        shutil.copy(f, truncated / f.name)
    data = next(truncated.glob("model.ckpt.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    with pytest.raises(ValueError, match="damaged or truncated"):
        weights.from_slim(str(truncated / "model.ckpt"), name)


@pytest.fixture(scope="module")
def slim_v3(tmp_path_factory):
    pytest.importorskip("tf_slim")
    pytest.importorskip("tf_keras")
    prefix = str(tmp_path_factory.mktemp("slim_v3") / "inception_v3.ckpt")
    images, logits = slim_reference.build_v3_checkpoint(prefix, num_classes=6)
    return prefix, images, logits


def test_real_slim_inception_v3_graph(slim_v3):
    prefix, images, slim_logits = slim_v3
    variables = weights.from_slim(prefix, "inception_v3")
    model = models.create("inception_v3", **weights.model_options(variables))
    ours = np.asarray(jax.jit(model.apply)(variables, images))
    error = max_rel_error(ours, slim_logits)
    print(f"slim inception_v3 max rel error {error:.2e}")
    assert error < 1e-4  # float32 drift over 94 layers; a wrong pooling or epsilon gives 0.1-0.4
    assert np.argmax(ours, -1).tolist() == np.argmax(slim_logits, -1).tolist()
    # Background dropped: outputs 1.. of the same network.
    dropped = weights.from_slim(prefix, "inception_v3", drop_background=True)
    model = models.create("inception_v3", **weights.model_options(dropped))
    np.testing.assert_allclose(np.asarray(jax.jit(model.apply)(dropped, images)), ours[:, 1:], rtol=1e-5, atol=1e-5)


def test_slim_convert_load_evaluate_with_background_class(slim_v3, tmp_path):
    from tests.references import check_evaluate_matches, convert

    prefix, images, slim_logits = slim_v3
    out = tmp_path / "converted"
    proc = convert("slim", "inception_resnet_v2", prefix, out)  # wrong --model: refused, nothing written
    assert proc.returncode != 0 and "holds no InceptionResnetV2/ variables" in proc.stderr and not out.exists()
    proc = convert("slim", "inception_v3", prefix, out)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, variables = checkpoint.load(str(out))
    assert max_rel_error(jax.jit(model.apply)(variables, images), slim_logits) < 1e-4
    assert checkpoint.describe(str(out)).meta["background_class"]
    # 6 outputs = background + the 5 classes of the folder dataset: labels are shifted by one.
    apply = jax.jit(model.apply)
    result = check_evaluate_matches(out, tmp_path, lambda v: np.asarray(apply(variables, v)), 139)
    assert result["protocol"]["resize"] == "fraction" and result["protocol"]["interpolation"] == "bilinear"
