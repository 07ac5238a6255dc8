r"""Top-5 classes for images, from a training workdir or converted weights.

    python scripts/predict.py --checkpoint weights/inception_v4_slim photo.jpg other.png
    python scripts/predict.py --checkpoint /tmp/demo --json out.json digit.png

Any image TensorFlow or PIL decodes (JPEG, PNG, GIF, BMP, grayscale, CMYK, ...). A file that cannot
be read prints a one-line error; the others still run, and the exit status is 1.
"""

import json
import os
import sys
from collections.abc import Sequence

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()  # before jax is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from inception_flax import paths  # noqa: E402
from inception_flax.evaluation import predict  # noqa: E402

_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "A training workdir or a converted-weights directory.")
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step of a workdir (default: the newest readable).")
_EMA = flags.DEFINE_bool("ema", True, "Workdirs: the moving-average parameters.")
_TOP_K = flags.DEFINE_integer("top_k", 5, "Classes to show per image.")
_IMAGE_SIZE = flags.DEFINE_integer("image_size", None, "Input size (default: the run's, or 299).")
_JSON = flags.DEFINE_string("json", None, "Also write the predictions to this JSON file.")
flags.mark_flag_as_required("checkpoint")


def main(argv: Sequence[str]) -> None:
    files = argv[1:]
    if not files:
        raise app.UsageError("Give one or more image files after the flags.")
    tf.config.set_visible_devices([], "GPU")
    try:
        results = predict.predict(_CHECKPOINT.value, files, _TOP_K.value, _STEP.value, _EMA.value, _IMAGE_SIZE.value)
    except (ValueError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None
    for r in results:
        if "error" in r:
            print(f"{r['file']}: error: {r['error']}", file=sys.stderr)
            continue
        print(r["file"])
        for t in r["top"]:
            print(f"  {t['probability']:7.2%}  {t['index']:>5}  {t['name']}")
    if _JSON.value:
        paths.write_text(_JSON.value, json.dumps(results, indent=2))
    if any("error" in r for r in results):
        sys.exit(1)


if __name__ == "__main__":
    app.run(main)
