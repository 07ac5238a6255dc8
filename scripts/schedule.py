r"""What a config will do: steps, images, learning rate per epoch and averaging windows.

    python scripts/schedule.py --config configs/inception_v4.py
    python scripts/schedule.py --config configs/inception_v4.py --config.batch_size=4096 --json s.json --plot lr.png

Builds no input pipeline and compiles nothing. The train split's size is known for imagenet2012
(1,281,167 images) and the embedded digits; for another dataset pass --train_images.
"""

from collections.abc import Sequence

from absl import app, flags, logging
from ml_collections import config_flags

from inception_flax import config_base, recipe

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
_TRAIN_IMAGES = flags.DEFINE_integer("train_images", None, "Training images (default: known for the dataset).")
_JSON = flags.DEFINE_string("json", "", "Also write the summary as JSON here.")
_PLOT = flags.DEFINE_string("plot", "", "Also plot the learning rate against epoch to this PNG.")
flags.mark_flags_as_required(["config"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)  # jax's backend probing says nothing this script needs
    config = _CONFIG.value
    try:
        config_base.check(config)
        images = _TRAIN_IMAGES.value or recipe.known_train_images(config)
        if not images:
            raise config_base.ConfigError(
                f"The size of {config.dataset} {config.train_split} is not known without reading it: "
                "pass --train_images=N."
            )
        summary = recipe.report(config, images, _JSON.value, _PLOT.value)
    except (config_base.ConfigError, ValueError) as e:
        raise SystemExit(f"error: {e}") from None
    print(recipe.format_summary(summary))


if __name__ == "__main__":
    app.run(main)
