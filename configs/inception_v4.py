r"""Inception-v4 on ImageNet: the synchronous large-batch recipe of Google's TPU reference.

    python scripts/train.py --config configs/inception_v4.py --workdir gs://BUCKET/inception_v4
    python scripts/schedule.py --config configs/inception_v4.py --config.batch_size=4096   # what it will do

| field | value | source |
|---|---|---|
| optimiser | RMSProp decay 0.9, momentum 0.9, epsilon 1.0 | paper section 4; TPU reference `inception_v4.py` |
| learning_rate / base_batch_size | 0.15 per 256 images, linear in the global batch | TPU reference (`0.15 * B / 256`) |
| lr_schedule | `tpu_v4`: the reference's formula step for step | TPU reference (docs/recipe.md) |
| cold_epochs, cold_learning_rate | 1 epoch at 0.001 per 256 images | TPU reference (0.001 at any batch) |
| warmup_epochs | 2, at 1/3 and 2/3 of the initial rate | TPU reference |
| lr_decay_rate, lr_decay_epochs | 0.94 every 2 epochs from step 0 (initial rate / 0.94 ** 1.5) | paper; TPU reference |
| num_epochs, batch_size | 170 epochs at 1024 | TPU reference Inception-v3 (213k steps at 1024; v4's own default: 80k steps at 256, 16 epochs) |
| ema_decay, ema_warmup, ema_batch_stats | 0.995 at 1024 images, TF warm-up, BatchNorm statistics averaged | TPU reference |
| bn_momentum, bn_group_size | 0.995 at 1024 images (eps 0.001); statistics over each device's images | TPU reference (per core) |
| aux_logits, aux_loss_weight | on, 0.4 | slim `inception_v4` builds it; TPU reference weighs it 0.4 |
| label_smoothing, weight_decay, grad_clip_norm | 0.1, 4e-5 on weights, no clipping | TPU reference |
| color_distortion | `tpu_fast`: brightness +-32/255, Cb/Cr +-0.1 | TPU reference (`distort_color_fast`) |
| half_precision | unset: bfloat16 compute on TPU and GPU, float32 on CPU | TPU reference's `--precision=bfloat16` option |

Departures (docs/recipe.md): the cold rate scales with the batch here (0.004 at 1024), since every
rate in a config is per image; the moving BatchNorm statistics average the devices' groups (the
reference keeps one core's).

Expected (paper, Table 2, ILSVRC-2012 validation, single crop): top-1 error 20.0%, top-5 5.0%
(released TF-slim weights: 80.2% top-1); not yet reproduced with this recipe (no ImageNet run).
Throughput: docs/performance.md.
`:runlocal` shrinks it to a 20-step smoke run on the embedded digits. The paper's asynchronous
numbers read as one synchronous batch (the old default): see `inception_flax/config_base.py`.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.get_base_config()  # the TPU reference's Inception-v4 recipe
    c.model = "inception_v4"
    c.aux_logits = True
    return common.apply_arg(c, arg)
