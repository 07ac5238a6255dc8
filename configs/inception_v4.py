r"""Inception-v4 on ImageNet: the synchronous large-batch recipe of Google's TPU reference.

    python scripts/train.py --config configs/inception_v4.py --workdir gs://BUCKET/inception_v4
    python scripts/schedule.py --config configs/inception_v4.py --config.batch_size=4096   # what it will do

| field | value | source |
|---|---|---|
| optimiser | RMSProp decay 0.9, momentum 0.9, epsilon 1.0 | paper section 4; TPU reference `inception_v4.py` |
| learning_rate / base_batch_size | 0.15 per 256 images, linear in the global batch | TPU reference (`0.15 * B / 256`) |
| cold_epochs, cold_learning_rate | 1 epoch at 0.001 per 256 images | TPU reference (0.001 at any batch) |
| warmup_epochs | 2, linear to the peak | TPU reference (a staircase of 1/3, 2/3 per epoch) |
| lr_decay_rate, lr_decay_epochs | 0.94 every 2 epochs, staircase | paper; TPU reference |
| num_epochs | 170 | TPU reference Inception-v3 (213k steps at 1024); Cloud TPU guide "about 170 epochs" |
| ema_decay, ema_warmup, ema_batch_stats | 0.995 at 1024 images, TF warm-up, BatchNorm statistics averaged | TPU reference |
| bn_momentum | 0.995 at 1024 images (eps 0.001) | TPU reference |
| aux_logits, aux_loss_weight | on, 0.4 | slim `inception_v4` builds it; TPU reference weighs it 0.4 |
| label_smoothing, weight_decay, grad_clip_norm | 0.1, 4e-5 on weights, 2.0 | paper; slim |
| batch_size | 1024 | TPU reference (v2-8 to v2-512) |

Departures: the reference counts its staircase from step 0 and divides the initial rate by
0.94 ** 1.5 to offset the decay spent in warm-up; here the decay starts after warm-up, so 0.15
is the rate right after warm-up (the reference's is 3% higher at epoch 3 and equal from epoch 5
on, to within that 3%). The cold rate scales with the batch here (0.004 at 1024), since every
rate in a config is per image. No floor at 1e-4 x the peak: after 170 epochs the rate is
0.94 ** 83 = 0.6% of the peak, above it.

Expected (paper, Table 2, ILSVRC-2012 validation, single crop): top-1 error 20.0%, top-5 5.0%
(released TF-slim weights: 80.2% top-1); not yet reproduced with this recipe (no ImageNet run).
Throughput from one H200 (bf16, batch 128, 1,888 img/s, README "Performance"): on 8 H200s at
1024, if it scales linearly (not measured), ~15,100 img/s, 170 epochs in ~4.0 h.
`:runlocal` shrinks it to a 20-step smoke run on the embedded digits. The paper's asynchronous
numbers read as one synchronous batch (the old default): see `inception_flax/config_base.py`.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.get_base_config()  # the TPU reference's Inception-v4 recipe
    c.model = "inception_v4"
    c.aux_logits = True
    return common.runlocal(c) if arg == "runlocal" else c
