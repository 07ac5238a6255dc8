r"""Does the per-image recipe hold across global batches? One arm per batch size, on the digits.

    python scripts/batch_scaling.py --config configs/batch_scaling.py --workdir /tmp/batch_scaling
    python scripts/train.py --config configs/batch_scaling.py:b128 --workdir /tmp/b128   # one arm alone

The claim behind linear scaling (and behind stating the EMA and BatchNorm windows in images): the
same recipe at global batch B and kB, run for the same number of images, ends at the same
accuracy. Each arm (`b16`, `b32`, `b64`, `b128`) is the same recipe and differs only in
`batch_size`: learning rate 0.045 per 32 images (0.0225 at 16, 0.18 at 128), 1 warm-up epoch,
then x0.7 per epoch; weight EMA 0.99 and BatchNorm momentum 0.9 per step at 32 images (windows of
2.1 and 0.21 epochs at every batch), TF's EMA warm-up, the BatchNorm statistics averaged with the
weights and used with them for evaluation. 10 epochs of the 1,497 training digits, evaluated
after every epoch on the 300 test digits (this study chooses nothing on them: there is no tuning).

The network is the ablation's residual arm: Inception-ResNet-v2 at width 0.125 and 75 px.
Measured (docs/batch_scaling/summary.md): see the README section "Batch-size scaling".
"""

from __future__ import annotations

import dataclasses

import ml_collections

from inception_flax import config_base as common

BATCHES = {"b16": 16, "b32": 32, "b64": 64, "b128": 128}
TRAIN_IMAGES = 1_497  # the digits' train split
EVAL_IMAGES = 300  # and their test split, the validation here


@dataclasses.dataclass(frozen=True)
class Study:
    arms: tuple[str, ...] = tuple(BATCHES)
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    scale: str = "cpu"


def get_study(name: str = "cpu") -> Study:
    if name != "cpu":
        raise ValueError(f"Unknown study {name!r}; studies: cpu.")
    return Study()


def get_config(arg: str | None = "b32") -> ml_collections.ConfigDict:
    parsed = common.parse_arg(arg, arm=tuple(BATCHES), scale=("cpu",))
    arm = parsed["arm"] or "b32"
    c = common.get_base_config()
    c.model = "inception_resnet_v2"
    c.model_options = ml_collections.ConfigDict({"residual": True})
    c.weight_decay_biases = True
    c.aux_logits = False
    c.dataset = "inception_digits"
    c.eval_split = "test"
    c.width = 0.125
    c.image_size = 75
    c.crop_area_range = (0.35, 1.0)  # a 5% crop of an 8x8 digit carries no label
    c.shuffle_buffer = 2000
    c.batch_size = BATCHES[arm]
    c.base_batch_size = 32
    c.learning_rate = 0.045  # per 32 images
    c.cold_epochs = 0.0
    c.warmup_epochs = 1.0
    c.lr_schedule = "linear_warmup"
    c.color_distortion = "slim"
    c.bn_group_size = 0  # statistics over the whole batch, as these runs were measured
    c.grad_clip_norm = 2.0
    c.lr_decay_rate = 0.7
    c.lr_decay_epochs = 1.0
    c.num_epochs = 10.0
    c.decay_batch_size = 32
    c.ema_decay = 0.99
    c.bn_momentum = 0.9
    c.ema_warmup = True
    c.ema_batch_stats = True
    c.eval_with_ema = True
    per_epoch = TRAIN_IMAGES // c.batch_size
    c.log_every_steps = c.eval_every_steps = per_epoch
    c.checkpoint_every_steps = 5 * per_epoch
    c.profile = False
    c.compilation_cache_dir = "~/.cache/inception_flax/xla"
    return common.runlocal(c) if parsed["runlocal"] else c
