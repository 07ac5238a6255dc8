"""Packaging promises: light imports for the model code, and the summary script."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args, **kwargs):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


def test_models_and_weights_import_only_jax_flax_numpy():
    code = (
        "import sys, inception_flax.models, inception_flax.weights\n"
        "heavy = {'tensorflow', 'clu', 'torch', 'keras', 'tensorflow_datasets', 'orbax'} & set(sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = run("-c", code)
    assert result.returncode == 0, result.stderr


def test_summary_script():
    result = run("scripts/summary.py", "--model", "inception_v4", "--num_classes", "1001")
    assert result.returncode == 0, result.stderr
    assert "Total parameters: 42,649,769" in result.stdout
    assert "reduction_b  8x8x1536" in result.stdout
    assert "MACs per image (conv + dense, inference): 12.254 G" in result.stdout


def test_summary_script_rejects_small_input():
    result = run("scripts/summary.py", "--model", "inception_v3", "--image_size", "64")
    assert result.returncode != 0
    assert "at least 75x75, got 64x64" in result.stderr
