"""Released weights end to end: timm and Keras files -> convert_weights.py -> checkpoint.load / evaluate.py
/ predict.py, with random weights; errors of convert_weights.py; predict.py on real photographs."""

import json
import os

import jax
import numpy as np
import pytest
import tensorflow as tf

from inception_flax import checkpoint, evaluation, models
from tests.helpers import max_rel_error, random_variables
from tests.references import check_evaluate_matches, convert, run_tool


def test_timm_safetensors_convert_load_evaluate(tmp_path):
    pytest.importorskip("timm")
    safetensors_torch = pytest.importorskip("safetensors.torch")
    import torch

    from tests.references import randomized_timm, run_timm

    tm = randomized_timm("inception_v3", num_classes=5)
    path = tmp_path / "model.safetensors"
    safetensors_torch.save_file({k: v.contiguous() for k, v in tm.state_dict().items()}, str(path))
    proc = convert("timm", "inception_v3", path, tmp_path / "converted")
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, variables = checkpoint.load(str(tmp_path / "converted"))
    assert model.pool_include_pad and model.num_classes == 5  # timm's v3 pooling, read from the metadata
    x = np.random.default_rng(0).uniform(-1, 1, (2, 299, 299, 3)).astype(np.float32)
    error = max_rel_error(jax.jit(model.apply)(variables, x), run_timm(tm, x))
    print(f"timm inception_v3 through convert_weights + checkpoint.load: max rel error {error:.2e}")
    assert error < 1e-4
    # timm's eval transform is the default for timm weights: shorter side, bicubic.
    result = check_evaluate_matches(tmp_path / "converted", tmp_path, lambda v: run_timm(tm, v), 139)
    assert result["protocol"] == {
        "name": "central",
        "crop_fraction": 0.875,
        "interpolation": "bicubic",
        "resize": "shorter_side",
    }
    # A torch state dict (read with weights_only=True) converts to the same tensors.
    torch.save(tm.state_dict(), tmp_path / "model.pth")
    assert convert("timm", "inception_v3", tmp_path / "model.pth", tmp_path / "from_pth").returncode == 0
    _, again = checkpoint.load(str(tmp_path / "from_pth"))
    jax.tree.map(np.testing.assert_array_equal, again, variables)


def test_keras_file_convert_load_evaluate(tmp_path):
    keras = pytest.importorskip("keras")
    from tests.references import randomize

    km = randomize(
        keras.applications.InceptionV3(weights=None, classes=5, input_shape=(139, 139, 3), classifier_activation=None)
    )
    km.save(tmp_path / "model.keras")
    proc = convert("keras", "inception_v3", tmp_path / "model.keras", tmp_path / "converted")
    assert proc.returncode == 0, proc.stderr[-3000:]
    model, variables = checkpoint.load(str(tmp_path / "converted"))
    x = np.random.default_rng(0).uniform(-1, 1, (2, 139, 139, 3)).astype(np.float32)
    error = max_rel_error(jax.jit(model.apply)(variables, x), km.predict(x, verbose=0))
    print(f"Keras InceptionV3 through convert_weights + checkpoint.load: max rel error {error:.2e}")
    assert error < 1e-4
    check_evaluate_matches(tmp_path / "converted", tmp_path, lambda v: km.predict(v, verbose=0), 139)


def test_convert_errors_write_nothing(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors.numpy import save_file

    from tests.references import randomized_timm

    pytest.importorskip("timm")
    state = {k: v.numpy() for k, v in randomized_timm("inception_v3", num_classes=5).state_dict().items()}
    save_file(state, str(tmp_path / "v3.safetensors"))
    out = tmp_path / "out"
    proc = convert("timm", "inception_v4", tmp_path / "v3.safetensors", out)  # wrong --model
    assert proc.returncode != 0 and "do not fit" in proc.stderr and "missing" in proc.stderr
    data = (tmp_path / "v3.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    proc = convert("timm", "inception_v3", tmp_path / "cut.safetensors", out)  # truncated
    assert proc.returncode != 0 and "error:" in proc.stderr
    proc = convert("timm", "inception_v5", tmp_path / "v3.safetensors", out)
    assert proc.returncode != 0 and "Unknown model 'inception_v5'" in proc.stderr
    assert not out.exists() and not list(tmp_path.glob("out.partial-*"))
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory):
    """A narrow 1000-class network saved as converted weights (ImageNet class names)."""
    model = models.create("inception_v3", width=0.125, num_classes=1000)
    path = str(tmp_path_factory.mktemp("w") / "v3")
    variables = jax.tree.map(np.asarray, random_variables(model, 75))
    checkpoint.save_weights(
        path, variables, {"model": "inception_v3", "options": {"width": 0.125, "num_classes": 1000}}
    )
    return path, model, variables


def test_predict_on_photographs_and_a_corrupt_file(imagenet_weights, tmp_path):
    from sklearn.datasets import load_sample_images

    path, model, variables = imagenet_weights
    photos = list(load_sample_images().filenames)  # china.jpg, flower.jpg
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    gray = tmp_path / "gray.png"
    from PIL import Image

    Image.open(photos[0]).convert("L").save(gray)
    out = tmp_path / "pred.json"
    proc = run_tool(
        "predict.py", f"--checkpoint={path}", f"--json={out}", "--image_size=75", *photos, str(bad), str(gray)
    )
    assert proc.returncode == 1  # one file failed
    assert f"{bad}: error:" in proc.stderr and proc.stderr.count("error:") == 1
    results = json.loads(out.read_text())
    assert [r["file"] for r in results] == [*photos, str(bad), str(gray)]
    words = evaluation.imagenet_words()
    protocol = evaluation.Protocol()
    for r, photo in zip(results[:2], photos, strict=True):
        assert len(r["top"]) == 5 and r["top"][0]["name"] == words[r["top"][0]["index"]]
        probs = [t["probability"] for t in r["top"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1.0 + 1e-6
        view = protocol.views(tf.constant(open(photo, "rb").read()), 75).numpy()
        expected = jax.nn.softmax(model.apply(variables, view))[0]
        assert r["top"][0]["index"] == int(np.argmax(expected))
        assert r["top"][0]["probability"] == pytest.approx(float(np.max(expected)), rel=1e-4)
    assert "top" in results[3] and "error" in results[2]
    assert "tench, Tinca tinca" in words[0]
    assert os.path.basename(photos[0]) in proc.stdout
