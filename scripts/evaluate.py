r"""Evaluate a training workdir or converted weights.

    python scripts/evaluate.py --checkpoint /tmp/demo                 # everything from the run's config
    python scripts/evaluate.py --checkpoint /tmp/demo --all_steps     # every checkpoint not yet evaluated
    python scripts/evaluate.py --checkpoint weights/inception_v4_slim --data_dir $DATA_DIR --protocol 144crop

For a workdir the dataset, split and image size default to what the run recorded; for converted
weights to ImageNet validation at 299 with the protocol the weights' publisher used. Prints a
table; `--json` writes the results; a workdir also gets `eval/<split>_<protocol>.jsonl` and
TensorBoard scalars.
"""

import json
import os
from collections.abc import Sequence

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()  # before jax is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from inception_flax import data, evaluation, paths, storage  # noqa: E402

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A training workdir or a converted-weights directory.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step of a workdir (default: the newest readable).")
_EMA = flags.DEFINE_bool("ema", True, "Workdirs: the moving-average parameters (--noema: the raw ones).")
_ALL_STEPS = flags.DEFINE_bool("all_steps", False, "Workdirs: every checkpoint not evaluated yet, oldest first.")
_DATASET = flags.DEFINE_string("dataset", None, "TFDS name or folder:<root> (default: from the checkpoint).")
_SPLIT = flags.DEFINE_string("split", None, "Split to evaluate (default: the run's eval split / validation).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir (local or gs://; default: the run's).")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input size (default: the run's, or 299).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", None, "Examples per batch, all devices together.")
_PROTOCOL = flags.DEFINE_enum("protocol", "central", list(evaluation.NUM_VIEWS), "Views per image.")
_CROP = flags.DEFINE_float("crop_fraction", None, "Central crop fraction (default 0.875).")
_INTERPOLATION = flags.DEFINE_enum("interpolation", None, ["bilinear", "bicubic"], "Resize filter.")
_RESIZE = flags.DEFINE_enum(
    "resize", None, ["fraction", "shorter_side"], "fraction: slim's central crop; shorter_side: timm's."
)
_VIEWS_PER_STEP = flags.DEFINE_integer("views_per_step", None, "Views of each image per network call.")
_EXCLUDE = flags.DEFINE_string("exclude_list", None, "File of validation images to leave out (numbers or names).")
_JSON = flags.DEFINE_string("json", None, "Write the results to this JSON file.")
flags.mark_flag_as_required("checkpoint")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().addFilter(runtime.QuietLibraries())
    tf.config.set_visible_devices([], "GPU")
    request = evaluation.EvalRequest(
        checkpoint=_CHECKPOINT.value,
        step=_STEP.value,
        ema=_EMA.value,
        dataset=_DATASET.value,
        split=_SPLIT.value,
        data_dir=_DATA_DIR.value,
        image_size=_IMAGE_SIZE.value,
        batch_size=_BATCH_SIZE.value,
        protocol=_PROTOCOL.value,
        crop_fraction=_CROP.value,
        interpolation=_INTERPOLATION.value,
        resize=_RESIZE.value,
        views_per_step=_VIEWS_PER_STEP.value,
        exclude_list=_EXCLUDE.value,
        all_steps=_ALL_STEPS.value,
    )
    try:
        results = evaluation.evaluate(request)
    except (ValueError, FileNotFoundError, data.DatasetNotPreparedError, storage.RestoreError) as e:
        raise SystemExit(f"error: {e}") from None
    if not results:
        print("Nothing to evaluate: every checkpoint is already in the record.")
    else:
        print(evaluation.format_table(results))
    if _JSON.value:
        paths.write_text(_JSON.value, json.dumps(results, indent=2))


if __name__ == "__main__":
    app.run(main)
