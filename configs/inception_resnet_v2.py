r"""Inception-ResNet-v2 (released structure) on ImageNet with the paper's recipe.

    python scripts/train.py --config configs/inception_resnet_v2.py --workdir gs://BUCKET/irv2

Expected (paper, Table 2, single crop): top-1 error 19.9%, top-5 4.9% (released TF-slim weights:
80.4% top-1). slim's IR-v2 scope also decays biases. `--config.model_options.residual=False`
trains the plain twin. `:runlocal` shrinks it to a 20-step smoke run on the embedded digits.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.get_base_config()
    c.model = "inception_resnet_v2"
    c.weight_decay_biases = True
    c.model_options = ml_collections.ConfigDict({"residual": True, "scale_a": 0.17, "scale_b": 0.10, "scale_c": 0.20})
    return common.runlocal(c) if arg == "runlocal" else c
