r"""Gradient norms at initialisation of every arm of a study: the stem's, the head's and the total.

    python scripts/init_gradients.py --config configs/ablation.py --study cpu
    python scripts/init_gradients.py --config configs/ablation.py --study imagenet --batch 8 --num_classes 1000

Prints a markdown table (also written to --out): a total far above the clip norm means a clip at a
global norm shrinks every layer's update by that factor, the head's included.
"""

import os
from collections.abc import Sequence

from absl import app, flags

from inception_flax import ablation
from inception_flax.ablation.gradients import initial_gradient_norms

_CONFIG = flags.DEFINE_string("config", None, "Config file with get_config(arm) and get_study(name).")
_STUDY = flags.DEFINE_string("study", "cpu", "Study defined in the config file.")
_OUT = flags.DEFINE_string("out", "", "Also write the table to this file.")
_BATCH = flags.DEFINE_integer("batch", 32, "Images in the batch (BatchNorm uses its statistics).")
_CLASSES = flags.DEFINE_integer("num_classes", 10, "Classes of the random labels and the classifier.")
flags.mark_flags_as_required(["config"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    module = ablation.load_config_module(_CONFIG.value)
    study = module.get_study(_STUDY.value)
    lines = [
        "| arm | stem | head (Logits) | total | update of the head under a clip at 2.0 |",
        "|---|---|---|---|---|",
    ]
    for arm in study.arms:
        config = module.get_config(f"{arm},{study.scale}")
        norms = initial_gradient_norms(config, batch=_BATCH.value, num_classes=_CLASSES.value)
        factor = min(1.0, 2.0 / norms["total"])
        lines.append(f"| {arm} | {norms['Stem']:.3g} | {norms['Logits']:.3g} | {norms['total']:.3g} | x{factor:.2g} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if _OUT.value:
        os.makedirs(os.path.dirname(_OUT.value) or ".", exist_ok=True)
        with open(_OUT.value, "w") as f:
            f.write(text)


if __name__ == "__main__":
    app.run(main)
