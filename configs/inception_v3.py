r"""Inception-v3 on ImageNet with the paper's recipe (the plain partner of Inception-ResNet-v1).

    python scripts/train.py --config configs/inception_v3.py --workdir gs://BUCKET/inception_v3

Expected (Inception-v4 paper, Table 2, single crop): top-1 error 21.2%, top-5 5.6% (released
TF-slim weights: 78.0% top-1). Inception-v3 was trained with the aux head (weight 0.4), kept on
here. `:runlocal` shrinks it to a 20-step smoke run on the embedded digits.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.get_base_config()
    c.model = "inception_v3"
    c.aux_logits = True
    c.model_options = ml_collections.ConfigDict({"pool_include_pad": False})
    return common.runlocal(c) if arg == "runlocal" else c
