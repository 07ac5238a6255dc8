r"""Training-step (or inference) throughput of a network, beside timm's on the same device.

    python scripts/benchmark.py --model inception_v4 --mode train --batch_size 8 --compare timm --json v4.json
    python scripts/benchmark.py --model inception_resnet_v2 --dtype bfloat16 --batch_size 128 --compare timm   # GPU
    python scripts/benchmark.py --pipeline --batch_size 32 --compare timm   # the training input pipeline

Prints img/s, ms per step, achieved TFLOP/s (from the model's MAC count) and its share of a
matmul peak measured in the same run, init and compile time, peak memory, and the ratios to timm
(eager NCHW and channels_last; `--timm_compile` adds torch.compile). Needs no TensorFlow.
`--pipeline` times the training input pipeline instead (images/s and per core, on generated
ImageNet-sized JPEGs) beside timm's training transform on the same files and cores.
"""

import json
import os
import tempfile
from collections.abc import Sequence

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()  # before jax is imported

from absl import app, flags  # noqa: E402

from inception_flax.benchmarks import compute  # noqa: E402

_MODEL = flags.DEFINE_string("model", "inception_v4", "Network name.")
_MODE = flags.DEFINE_enum("mode", "train", ["train", "infer"], "Training step or inference.")
_SIZE = flags.DEFINE_integer("image_size", 299, "Input size.")
_BATCH = flags.DEFINE_integer("batch_size", 8, "Global batch.")
_DTYPE = flags.DEFINE_enum("dtype", "float32", ["float32", "bfloat16"], "Compute dtype (parameters stay float32).")
_WIDTH = flags.DEFINE_float("width", 1.0, "Channel multiplier (the project only; timm is always 1.0).")
_REMAT = flags.DEFINE_bool("remat", False, "The project's config.remat: recompute each block in the backward pass.")
_STEPS = flags.DEFINE_integer("steps", 5, "Steps per timed block.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Timed blocks; the median is reported.")
_COMPARE = flags.DEFINE_enum("compare", None, ["timm"], "Also time timm's network (torch + timm installed).")
_TIMM_COMPILE = flags.DEFINE_bool("timm_compile", False, "With --compare timm: also torch.compile.")
_JSON = flags.DEFINE_string("json", None, "Write the result here.")
_PIPELINE = flags.DEFINE_bool("pipeline", False, "Time the training input pipeline instead of the network.")
_IMAGES = flags.DEFINE_integer("images", 480, "With --pipeline: JPEGs to generate (half 500x375, half 1000x750).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "With --pipeline: where the JPEGs go (default: a temporary folder).")


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if _PIPELINE.value:
        _write(_pipeline())
        return
    setting = compute.Setting(
        model=_MODEL.value,
        mode=_MODE.value,
        image_size=_SIZE.value,
        batch_size=_BATCH.value,
        dtype=_DTYPE.value,
        width=_WIDTH.value,
        remat=_REMAT.value,
        steps=_STEPS.value,
        repeats=_REPEATS.value,
    )
    compare = ()
    if _COMPARE.value == "timm":
        compare = ("timm_nchw", "timm_channels_last") + (("timm_compile",) if _TIMM_COMPILE.value else ())
    try:
        result = compute.measure(setting, compare)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(compute.format_result(result))
    _write(result)


def _pipeline() -> dict:
    from inception_flax.benchmarks import pipeline

    with tempfile.TemporaryDirectory() as tmp:
        result = pipeline.measure(
            _DATA_DIR.value or tmp,
            image_size=_SIZE.value,
            batch_size=_BATCH.value,
            images=_IMAGES.value,
            repeats=_REPEATS.value,
            compare=_COMPARE.value == "timm",
        )
    print(pipeline.format_result(result))
    return result


def _write(result: dict) -> None:
    if _JSON.value:
        os.makedirs(os.path.dirname(os.path.abspath(_JSON.value)), exist_ok=True)
        with open(_JSON.value, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    app.run(main)
