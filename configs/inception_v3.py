r"""Inception-v3 on ImageNet (the plain partner of Inception-ResNet-v1), synchronous recipe.

    python scripts/train.py --config configs/inception_v3.py --workdir gs://BUCKET/inception_v3
    python scripts/schedule.py --config configs/inception_v3.py   # what it will do

| field | value | source |
|---|---|---|
| optimiser | RMSProp decay 0.9, momentum 0.9, epsilon 1.0 | Inception-v3 paper section 8; TPU reference `inception_v3.py` |
| learning_rate / base_batch_size | 0.165 per 256 images, linear in the global batch | TPU reference (`0.165 * B / 256`) |
| lr_schedule, lr_decay_rate, lr_decay_epochs | `tpu_v3`: 0.94 every 3 epochs from step 0, floor 1e-4 of the peak | TPU reference Inception-v3 |
| cold_epochs, warmup_epochs | 1 epoch at 0.001 per 256 images, then 2 linear (a departure) | TPU reference Inception-v4 |
| num_epochs | 170 | TPU reference (213k steps at 1024); Cloud TPU guide: "greater than 78.1% accuracy in about 170 epochs" |
| ema_decay, ema_warmup, ema_batch_stats | 0.995 at 1024 images, TF warm-up, BatchNorm statistics averaged | TPU reference |
| bn_momentum, bn_group_size | 0.996 at 1024 images; statistics over each device's images | TPU reference Inception-v3 (per core) |
| aux_logits, aux_loss_weight | on, 0.4 | Inception-v3 paper; TPU reference |
| label_smoothing, weight_decay, grad_clip_norm | 0.1, 4e-5, no clipping | TPU reference |
| color_distortion, half_precision | `tpu_fast`; bfloat16 compute on TPU and GPU | TPU reference |
| batch_size | 1024 | TPU reference (v2-8, v2-128, v2-512) |
| pool_include_pad | False | slim / Keras average pooling of Inception-v3 |

Departures: the Inception-v3 TPU reference starts at the peak; here the first three epochs warm up
as its Inception-v4 sibling does (1 cold + 2 linear epochs), because a synchronous batch of 4096
would start at 2.64 from random weights (a later revision of the same file added an optional
warm-up). From epoch 3 on the rate is the reference's at every step
(tests/test_schedule_reference.py).

Expected: top-1 error 21.2%, top-5 5.6% (Inception-v4 paper, Table 2, single crop; released
TF-slim weights: 78.0% top-1); Google's synchronous TPU run: > 78.1% top-1 in ~170 epochs. Not
yet reproduced here (no ImageNet run). Throughput: docs/performance.md. `:runlocal` shrinks it to a 20-step smoke run on the digits.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.get_base_config()
    c.model = "inception_v3"
    c.aux_logits = True
    c.model_options = ml_collections.ConfigDict({"pool_include_pad": False})
    c.learning_rate = 0.165
    c.lr_schedule = "tpu_v3"
    c.lr_decay_epochs = 3.0
    c.bn_momentum = 0.996
    return common.apply_arg(c, arg)
