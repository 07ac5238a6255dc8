r"""Compile a config's train step for GPU nodes that are not here, and say whether it fits.

    python scripts/compile_check.py --config configs/inception_v4.py --config.batch_size=1024 \
        --gpu h100 --gpus_per_node 8 [--nodes 2] [--json report.json]
    python scripts/compile_check.py --table docs/gpu_fit/*.json    # the docs' table from saved reports

No GPU is needed: jax's CUDA compiler runs on the CPU. It is kept beside the checkout, out of the
CPU virtualenv: `pip install --no-deps --target .cuda-compile -r requirements-cuda-compile.txt`
(a virtualenv with `jax[cuda12]` works as well). Run it before `sbatch`: a config that does not fit
is known in minutes, not after a wait in the queue. What the figures mean: inception_flax/compile_check.py.
"""

import json
import os
import sys
from collections.abc import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLUGIN_DIR = os.path.join(ROOT, ".cuda-compile")
os.environ.setdefault("JAX_PLATFORMS", "cpu")  # compile only, even where a GPU happens to be
if os.path.isdir(PLUGIN_DIR):
    sys.path.insert(0, PLUGIN_DIR)  # before jax looks for its plugins

import importlib.util  # noqa: E402

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from inception_flax import compile_check  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
_GPU = flags.DEFINE_enum("gpu", "h100", list(compile_check.GPUS), "The GPU of the nodes.")
_GPUS_PER_NODE = flags.DEFINE_integer("gpus_per_node", 8, "GPUs per node (one training process each).")
_NODES = flags.DEFINE_integer("nodes", 1, "Nodes.")
_FRACTION = flags.DEFINE_float(
    "memory_fraction",
    compile_check.DEFAULT_MEMORY_FRACTION,
    "Share of each GPU jax may use (XLA_PYTHON_CLIENT_MEM_FRACTION).",
)
_JSON = flags.DEFINE_string("json", None, "Also write the report here.")
_TABLE = flags.DEFINE_multi_string("table", None, "Print the markdown table of these saved reports, compile nothing.")


def main(argv: Sequence[str]) -> None:
    if _TABLE.value:
        reports = [json.load(open(path)) for path in [*_TABLE.value, *argv[1:]]]
        print(compile_check.format_table(reports))
        return
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _CONFIG.value is None:
        raise app.UsageError("--config is required")
    if importlib.util.find_spec("jax_plugins.xla_cuda12") is None:
        raise SystemExit(
            "error: jax's CUDA compiler is not installed. From the repository's root: pip install --no-deps "
            "--target .cuda-compile -r requirements-cuda-compile.txt (or use a virtualenv with jax[cuda12])."
        )
    try:
        report = compile_check.check(_CONFIG.value, _GPU.value, _GPUS_PER_NODE.value, _NODES.value, _FRACTION.value)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(compile_check.format_report(report))
    if not report["fits"]:
        print(compile_check.advice(report, _CONFIG.value))
    if _JSON.value:
        with open(_JSON.value, "w") as f:
            json.dump(report, f, indent=1)


if __name__ == "__main__":
    app.run(main)
