"""scripts/compile_check.py: the real train step compiled for GPUs that are not here.

The compile case needs jax's CUDA compiler beside the checkout (`.cuda-compile`, which `.ci/run`
installs); it is kept out of the test virtualenv, where it would slow every CPU step.
"""

import json
import subprocess
import sys

import jax
import numpy as np
import pytest

from configs import inception_resnet_v1
from inception_flax import compile_check, models, optim, recipe, step
from tests.helpers import ROOT

HLO = """
  %all-reduce.1 = f32[64,3]{1,0} all-reduce(f32[64,3]{1,0} %p), replica_groups={}, to_apply=%add
  %ars = (bf16[10]{0}, f32[2,2]{1,0}) all-reduce-start(bf16[10]{0} %a, f32[2,2]{1,0} %b), to_apply=%add
  %ard = (bf16[10]{0}, f32[2,2]{1,0}) all-reduce-done((bf16[10]{0}, f32[2,2]{1,0}) %ars)
  %ag = s32[8]{0} all-gather(s32[1]{0} %c), dimensions={0}
"""


def test_collectives_are_counted_with_the_bytes_of_their_results():
    assert compile_check.collectives(HLO) == {
        # an -all-reduce-start counts once, its -done not
        "all-reduce": {"count": 2, "bytes": 64 * 3 * 4 + 10 * 2 + 4 * 4, "bytes_by_dtype": {"f32": 784, "bf16": 20}},
        "all-gather": {"count": 1, "bytes": 8 * 4, "bytes_by_dtype": {"s32": 32}},
    }


def test_what_train_py_decides_from_the_devices_is_made_explicit():
    c = inception_resnet_v1.get_config("runlocal")
    c.batch_size, c.bn_group_size = 64, -1  # -1: each device's images
    assert c.half_precision is None
    d = compile_check.for_devices(c, 8)
    assert d.half_precision is True and d.bn_group_size == 8
    assert c.half_precision is None and c.bn_group_size == -1  # the caller's config is untouched
    c.bn_group_size, c.half_precision = 0, False  # the whole global batch; float32 asked for
    d = compile_check.for_devices(c, 8)
    assert d.bn_group_size == 0 and d.half_precision is False


def test_the_target_config_describes_the_gpu():
    text = compile_check.target_config(compile_check.GPUS["h200"])
    assert "device_memory_size: 151397597184" in text and "core_count: 132" in text
    assert 'device_description_str: "NVIDIA H200 141GB HBM3e"' in text
    assert "cuda_compute_capability { major: 9 minor: 0 }" in text


@pytest.mark.skipif(
    not (ROOT / ".cuda-compile").is_dir(),
    reason="jax's CUDA compiler is not beside the checkout: pip install --no-deps --target .cuda-compile "
    "-r requirements-cuda-compile.txt",
)
def test_the_tiny_step_compiled_for_two_h100s_fits_and_is_counted(tmp_path):
    out = tmp_path / "report.json"
    config = ROOT / "configs" / "inception_resnet_v1.py"
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compile_check.py"), f"--config={config}:runlocal",
         "--config.batch_size=16", "--gpu=h100", "--gpus_per_node=2", f"--json={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "inception_resnet_v1 on 1 node(s) x 2 NVIDIA H100 80GB HBM3: global batch 16 (8 a GPU), 75 px" in done.stdout
    assert "bound, not a measurement" in done.stdout
    r = json.loads(out.read_text())
    m = r["memory"]

    # The compiler's arguments are exactly the replicated state and one GPU's share of the batch.
    c = compile_check.for_devices(inception_resnet_v1.get_config("runlocal"), 2)
    c.batch_size = 16
    resolved = recipe.resolve(c, recipe.known_train_images(c))
    model = models.create(c.model, **step.model_options(c, 10, resolved.bn_momentum))
    state = step.abstract_state(model, optim.create_optimizer(c, resolved.learning_rate), 75, c.ema_batch_stats)
    state_bytes = sum(a.size * a.dtype.itemsize for a in jax.tree.leaves(state))
    assert m["state_bytes"] == state_bytes
    assert m["batch_bytes"] == 8 * (75 * 75 * 3 * 4 + 4)
    assert m["arguments_bytes"] == state_bytes + m["batch_bytes"]
    assert 0 < m["scratch_bytes"] and r["fits"] and r["dtype"] == "bfloat16"

    macs = sum(layer.macs for layer in models.trace_layers(model, 75))
    assert r["flops_per_gpu_step"] == 6 * macs * 8
    params = sum(np.prod(a.shape) for a in jax.tree.leaves(state.params))
    # Every gradient is summed once. XLA sums the convolutions' gradients in bfloat16, before the cast
    # back to the float32 parameters (703,720 bytes for 333,264 parameters when this was written).
    assert r["collectives"]["all-reduce"]["bytes"] >= 2 * params
    assert r["collectives"]["all-reduce"]["bytes_by_dtype"]["bf16"] > params

    # The same figures against a GPU too small for them: refused, with the estimated largest batch.
    small = {**r, "fits": False, "memory": {**m, "usable_bytes": m["total_bytes"] - m["scratch_bytes"] / 2}}
    assert "does NOT fit" in compile_check.format_report(small)
    per_image = (m["scratch_bytes"] + m["batch_bytes"]) / 8
    room = small["memory"]["usable_bytes"] - (m["total_bytes"] - m["scratch_bytes"] - m["batch_bytes"])
    assert f"--config.batch_size={int(room // per_image) * 2} fits" in compile_check.advice(small, c)

    table = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "compile_check.py"), f"--table={out}"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip
    assert "| inception_resnet_v1 | 1 x 2 H100 | 16 (8) |" in table
