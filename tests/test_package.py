"""Packaging promises: light imports for the model code, and the summary script."""

import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args, **kwargs):
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=300, check=False, **kwargs
    )


def assert_imports_without(modules: list[str], heavy: set[str]) -> None:
    """Importing `modules` in a fresh interpreter loads none of the `heavy` packages."""
    code = f"import sys, {', '.join(modules)}\nfound = set({sorted(heavy)!r}) & set(sys.modules)\nassert not found, found\n"
    result = run("-c", code)
    assert result.returncode == 0, result.stderr


def test_models_and_weights_import_only_jax_flax_numpy():
    assert_imports_without(
        ["inception_flax.models", "inception_flax.weights"],
        {"tensorflow", "clu", "torch", "keras", "tensorflow_datasets", "orbax"},
    )


def test_training_step_and_benchmark_import_no_tensorflow():
    assert_imports_without(
        ["inception_flax.step", "inception_flax.benchmarks.compute"], {"tensorflow", "tensorflow_datasets", "torch"}
    )


def test_study_statistics_and_metrics_log_import_no_training_stack():
    assert_imports_without(
        ["inception_flax.ablation.stats", "inception_flax.metrics_log"],
        {"tensorflow", "tensorflow_datasets", "orbax", "jax", "flax"},
    )


def test_benchmark_counts_and_runs_a_tiny_inference():
    from inception_flax.benchmarks import compute as benchmark

    setting = benchmark.Setting(model="inception_v4", batch_size=8)
    assert benchmark.flops_per_step(setting) == 6 * 12_253_974_624 * 8  # 12.254 GMACs, as pinned for v4
    tiny = benchmark.Setting(
        model="inception_v3", mode="infer", image_size=75, batch_size=2, width=0.125, steps=1, warmup=1, repeats=2
    )
    result = benchmark.measure(tiny)
    assert result["project"]["images_per_second"] > 0 and result["compile_s"] > 0
    assert result["compile_s"] == pytest.approx(result["trace_lower_s"] + result["xla_compile_s"])
    assert result["fusions"] > 50  # a whole network, one fusion per BatchNorm pass at least
    assert result["project"]["tflops"] == pytest.approx(
        benchmark.flops_per_step(tiny) / result["project"]["seconds_per_step"] / 1e12
    )
    assert "project" in benchmark.format_result(result)
    compiled = jax.jit(lambda a: jnp.tanh(a @ a) @ a).lower(jnp.ones((256, 256))).compile()
    memory = benchmark.step_memory(compiled)
    assert memory["state_gb"] == 256 * 256 * 4 / 1e9 and memory["scratch_gb"] >= 0


def test_pipeline_benchmark_times_the_training_pipeline_beside_timm(tmp_path):
    from inception_flax.benchmarks import pipeline as pipeline_benchmark

    result = pipeline_benchmark.measure(str(tmp_path), image_size=75, batch_size=4, images=12, repeats=1)
    assert len(list((tmp_path / "train").rglob("*.JPEG"))) == 12
    assert 0.5 < result["bits_per_pixel"] < 8
    for name in ("project", "timm"):
        assert result[name]["images_per_second"] > 0
        assert result[name]["images_per_second_per_core"] == result[name]["images_per_second"] / result["cores"]
    assert result["project_over_timm"] == pytest.approx(
        result["project"]["images_per_second"] / result["timm"]["images_per_second"]
    )
    assert "project / timm" in pipeline_benchmark.format_result(result)


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


_TRIM_PROBE = """
import numpy as np
from inception_flax import runtime

def rss_mb():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS")).split()[1]) // 1024

blocks = [np.ones(100_000 // 8) for _ in range(2000)]  # 100 KB each: from the heap, not mmap
del blocks[::2]  # freed memory interleaved with live blocks: free() alone cannot return it
before = rss_mb()
assert runtime.release_freed_memory()
print(before - rss_mb())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_release_freed_memory_returns_the_heap_to_the_os():
    out = subprocess.run([sys.executable, "-c", _TRIM_PROBE], capture_output=True, text=True, check=True)
    assert int(out.stdout) > 50  # of the ~100 MB freed


def test_a_script_refuses_another_checkouts_package(tmp_path):
    """A study started from a second checkout (a git worktree at a fixed commit) must run that
    checkout's code: with the package imported from elsewhere (the editable install's checkout) the
    script exits before anything starts, naming the fix; with the fix it runs its own code."""
    import os
    import shutil

    checkout = tmp_path / "worktree"
    shutil.copytree(ROOT / "inception_flax", checkout / "inception_flax", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "scripts", checkout / "scripts", ignore=shutil.ignore_patterns("__pycache__"))
    args = [
        str(checkout / "scripts" / "ablation.py"),
        f"--config={ROOT / 'configs' / 'ablation.py'}",
        "--study=no_such_study",
        f"--workdir={tmp_path / 'w'}",
    ]
    elsewhere = run(*args, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert elsewhere.returncode == 1
    assert f"imports inception_flax from {ROOT / 'inception_flax'}" in elsewhere.stderr
    assert f"PYTHONPATH={checkout} python" in elsewhere.stderr
    own = run(*args, env={**os.environ, "PYTHONPATH": str(checkout)})
    assert own.returncode == 1
    assert "Unknown study 'no_such_study'" in own.stderr, own.stderr[-2000:]
