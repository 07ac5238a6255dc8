r"""Score a run's checkpoint with its kept and with recomputed BatchNorm statistics.

    python scripts/bn_check.py --workdir /tmp/rates/twin@lr0.15/seed100 --out /tmp/twin_bn.json

Prints validation and training-split top-1 error with the moving averages training kept and with
population statistics recomputed over `--epochs` epochs of the run's training batches: a curve's
error that the recomputed statistics remove came from the statistics, not the weights.
"""

import json
import os
from collections.abc import Sequence

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()  # before jax is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from inception_flax import paths  # noqa: E402
from inception_flax.ablation import bn_check  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir (one study run).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_EPOCHS = flags.DEFINE_integer("epochs", 1, "Epochs of training batches the statistics are recomputed over.")
_OUT = flags.DEFINE_string("out", "", "Also write the scores here as JSON.")
flags.mark_flags_as_required(["workdir"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    tf.config.set_visible_devices([], "GPU")
    try:
        result = bn_check.check_run(_WORKDIR.value, _STEP.value, _EPOCHS.value)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    print(bn_check.markdown(result))
    if _OUT.value:
        paths.write_text(_OUT.value, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    app.run(main)
