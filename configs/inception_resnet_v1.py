r"""Inception-ResNet-v1 on ImageNet (residual partner of Inception-v3), synchronous recipe.

    python scripts/train.py --config configs/inception_resnet_v1.py --workdir gs://BUCKET/irv1
    python scripts/schedule.py --config configs/inception_resnet_v1.py   # what it will do

No released reference trains Inception-ResNet-v1; the paper trains all four networks with one
recipe (section 4), so this is the Inception-v4 TPU reference's, field by field (see
`configs/inception_v4.py` for the table and its sources): RMSProp 0.9 / 0.9 / 1.0; 0.15 per 256
images, linear in the batch of 1024; the reference's schedule step for step (1 cold epoch at 0.001
per 256, 2 warm-up epochs, 0.94 every 2 epochs from step 0); 170 epochs; EMA 0.995 and BatchNorm
0.995 at 1024 images with TF's EMA warm-up and the BatchNorm statistics averaged; label smoothing
0.1, L2 4e-5, no clipping; its fast colour distortion; BatchNorm over each device's images;
bfloat16 compute on TPU and GPU. Residual scales 0.17 / 0.10 / 0.20 (slim's Inception-ResNet-v2
values; the paper: 0.1-0.3). No aux head: neither the paper nor a released implementation gives
this network one.

Expected (paper, Table 2, single crop): top-1 error 21.3%, top-5 5.5%; not yet reproduced here.
Throughput: docs/performance.md. `--config.model_options.residual=False` trains the plain
twin for the ablation. `:runlocal` shrinks it to a 20-step smoke run on the embedded digits.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.get_base_config()  # the TPU reference's Inception-v4 recipe
    c.model = "inception_resnet_v1"
    c.model_options = ml_collections.ConfigDict({"residual": True, "scale_a": 0.17, "scale_b": 0.10, "scale_c": 0.20})
    return common.apply_arg(c, arg)
