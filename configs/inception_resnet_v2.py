r"""Inception-ResNet-v2 (released structure) on ImageNet, synchronous recipe.

    python scripts/train.py --config configs/inception_resnet_v2.py --workdir gs://BUCKET/irv2
    python scripts/schedule.py --config configs/inception_resnet_v2.py   # what it will do

The Inception-v4 TPU reference's recipe, field by field (table and sources in
`configs/inception_v4.py`): RMSProp 0.9 / 0.9 / 1.0; 0.15 per 256 images, linear in the batch of
1024; the reference's schedule step for step (1 cold epoch at 0.001 per 256, 2 warm-up epochs, 0.94
every 2 epochs from step 0); 170 epochs; EMA 0.995 and BatchNorm 0.995 at 1024 images with TF's EMA
warm-up and the BatchNorm statistics averaged; label smoothing 0.1, L2 4e-5, no clipping; its fast
colour distortion; BatchNorm over each device's images; bfloat16 compute on TPU and GPU. Specific
to this network: the aux head with weight 0.4 (slim's `inception_resnet_v2` builds it by default),
biases decayed too (slim's IR-v2 scope), residual scales 0.17 / 0.10 / 0.20 (released weights). No
Google TPU reference trains it; the paper trains all four networks with one recipe (section 4).

Expected (paper, Table 2, single crop): top-1 error 19.9%, top-5 4.9% (released TF-slim
weights: 80.4% top-1); not yet reproduced with this recipe. Throughput: docs/performance.md.
`--config.model_options.residual=False` trains
the plain twin. `:runlocal` shrinks it to a 20-step smoke run on the embedded digits.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.get_base_config()  # the TPU reference's Inception-v4 recipe
    c.model = "inception_resnet_v2"
    c.aux_logits = True
    c.weight_decay_biases = True
    c.model_options = ml_collections.ConfigDict({"residual": True, "scale_a": 0.17, "scale_b": 0.10, "scale_c": 0.20})
    return common.apply_arg(c, arg)
