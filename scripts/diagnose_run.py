r"""Why a run stalls: its weights against their initialisation, its BatchNorm statistics against data.

    python scripts/diagnose_run.py --workdir /tmp/rates/twin@lr0.15/seed100 \
        --out docs/ablation/rates/diagnosis/twin@lr0.15.json --markdown docs/ablation/rates/diagnosis/twin@lr0.15.md

Prints, for the newest checkpoint (or `--step`), each top-level module's squared kernel norm now
and at the run's own initialisation, how much its output on one training batch differs between
images (in training and in evaluation mode), then validation and training-split top-1 error with the
moving BatchNorm averages training kept and with statistics recomputed over `--epochs` epochs of
the run's training batches (`--epochs=0` skips that part).
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
from inception_flax.ablation import diagnose  # noqa: E402

_WORKDIR = flags.DEFINE_string("workdir", None, "A training run's workdir (one study run).")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_EPOCHS = flags.DEFINE_integer("epochs", 1, "Epochs of training batches to recompute BatchNorm statistics over.")
_OUT = flags.DEFINE_string("out", "", "Also write the results here as JSON.")
_MARKDOWN = flags.DEFINE_string("markdown", "", "Also write the tables here.")
flags.mark_flags_as_required(["workdir"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    tf.config.set_visible_devices([], "GPU")
    try:
        run = diagnose.load(_WORKDIR.value, _STEP.value)
        result = {"weight_growth": diagnose.weight_growth(run), "signal": diagnose.signal(run)}
        tables = [diagnose.growth_markdown(result["weight_growth"]), diagnose.signal_markdown(result["signal"])]
        if _EPOCHS.value > 0:
            result["batch_stats"] = diagnose.check_bn(run, _EPOCHS.value)
            tables.append(diagnose.bn_markdown(result["batch_stats"]))
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    text = "\n\n".join(tables) + "\n"
    print(text, end="")
    if _MARKDOWN.value:
        paths.write_text(_MARKDOWN.value, text)
    if _OUT.value:
        paths.write_text(_OUT.value, json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    app.run(main)
