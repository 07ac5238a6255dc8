r"""Inception-v4 on ImageNet with the paper's recipe.

    python scripts/train.py --config configs/inception_v4.py --workdir gs://BUCKET/inception_v4

Expected (paper, Table 2/3, ILSVRC-2012 validation, single crop): top-1 error 20.0%, top-5 5.0%
(released TF-slim weights: 80.2% top-1). `--config configs/inception_v4.py:runlocal` shrinks it to
a 20-step smoke run on the embedded digits.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.get_base_config()
    c.model = "inception_v4"
    return common.runlocal(c) if arg == "runlocal" else c
