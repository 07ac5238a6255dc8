r"""Convert released weights (timm, Keras, TF-slim) into a directory evaluate/predict/fine-tuning accept.

    python scripts/convert_weights.py --source slim --model inception_v4 \
        --input inception_v4.ckpt --output weights/inception_v4_slim [--drop_background]
    python scripts/convert_weights.py --source timm --model inception_resnet_v2 \
        --input model.safetensors --output weights/inception_resnet_v2_timm
    python scripts/convert_weights.py --source keras --model inception_v3 \
        --input inception_v3_weights_tf_dim_ordering_tf_kernels.h5 --output weights/inception_v3_keras

A file of another network, a truncated file or a wrong --model is refused with the mismatched
tensors named; nothing is written then.
"""

import os
from collections.abc import Sequence

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from absl import app, flags

from inception_flax import models
from inception_flax.weights import convert

_SOURCE = flags.DEFINE_enum("source", None, list(convert.SOURCES), "Who published the weights.")
_MODEL = flags.DEFINE_string("model", None, f"One of {', '.join(models.names())}.")
_INPUT = flags.DEFINE_string("input", None, "timm .safetensors/.pth, Keras .h5/.keras, or a slim .ckpt prefix.")
_OUTPUT = flags.DEFINE_string("output", None, "Directory to create.")
_DROP_BACKGROUND = flags.DEFINE_bool("drop_background", False, "slim: drop class 0 (background): 1000 classes.")
flags.mark_flags_as_required(["source", "model", "input", "output"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    try:
        meta = convert.convert(_SOURCE.value, _MODEL.value, _INPUT.value, _OUTPUT.value, _DROP_BACKGROUND.value)
    except (ValueError, FileNotFoundError, FileExistsError) as e:
        raise SystemExit(f"error: {e}") from None
    options = ", ".join(f"{k}={v}" for k, v in meta["options"].items())
    print(f"Wrote {_OUTPUT.value}: {meta['model']}({options}) from {meta['source']} {meta['input']}")
    print(f"Evaluate: python scripts/evaluate.py --checkpoint {_OUTPUT.value} --data_dir $DATA_DIR")


if __name__ == "__main__":
    app.run(main)
