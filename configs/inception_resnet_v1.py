r"""Inception-ResNet-v1 on ImageNet with the paper's recipe (residual partner of Inception-v3).

    python scripts/train.py --config configs/inception_resnet_v1.py --workdir gs://BUCKET/irv1

Expected (paper, Table 2, single crop): top-1 error 21.3%, top-5 5.5%. Residual scales 0.17 /
0.10 / 0.20; `--config.model_options.residual=False` trains the plain twin for the ablation.
`:runlocal` shrinks it to a 20-step smoke run on the embedded digits.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.get_base_config()
    c.model = "inception_resnet_v1"
    c.model_options = ml_collections.ConfigDict({"residual": True, "scale_a": 0.17, "scale_b": 0.10, "scale_c": 0.20})
    return common.runlocal(c) if arg == "runlocal" else c
