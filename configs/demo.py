r"""The main job on the embedded digits dataset: no download, a few minutes on 2 CPU cores.

    python scripts/train.py --config configs/demo.py --workdir /tmp/demo

A narrow Inception-ResNet-v2 (width 0.25) at 75x75 on scikit-learn's handwritten digits (1,497
train / 300 test images, upsampled), with the paper's optimiser and the per-image recipe (RMSProp,
lr 0.045 per 64 images, staircase decay, clipping, label smoothing, EMA with TF's warm-up and the
BatchNorm statistics averaged with the weights): 276 steps. What it measured, and where:
docs/training.md ("The demo"). Then `python scripts/evaluate.py --checkpoint /tmp/demo` evaluates
the last checkpoint again.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = common.get_base_config()
    c.model = "inception_resnet_v2"
    c.weight_decay_biases = True
    c.model_options = ml_collections.ConfigDict({"residual": True, "scale_a": 0.17, "scale_b": 0.10, "scale_c": 0.20})
    c.dataset = "inception_digits"
    c.eval_split = "test"
    c.width = 0.25
    c.image_size = 75
    c.crop_area_range = (0.35, 1.0)  # a 5% crop of an 8x8 digit carries no label
    c.batch_size = 64
    c.base_batch_size = 64
    c.num_epochs = 12.0
    c.learning_rate = 0.045  # per 64 images
    c.lr_decay_epochs = 2.0
    c.cold_epochs = 0.0
    c.warmup_epochs = 1.0
    c.lr_schedule = "linear_warmup"
    c.color_distortion = "slim"
    c.bn_group_size = 0  # statistics over the whole batch, as these runs were measured
    c.grad_clip_norm = 2.0
    c.ema_decay = 0.99  # a window of 100 steps = 4.3 epochs
    # Short, since evaluation averages the statistics again with the weights (ema_batch_stats): with
    # 0.99 here too the two lags added up and the final EMA evaluation fell to 85.3% top-1.
    c.bn_momentum = 0.9
    c.decay_batch_size = 64  # both decays per step at batch 64: another --config.batch_size keeps the windows
    c.shuffle_buffer = 2000
    c.log_every_steps = 20
    c.eval_every_steps = 100
    c.checkpoint_every_steps = 50
    c.profile = False
    c.compilation_cache_dir = "~/.cache/inception_flax/xla"
    return common.apply_arg(c, arg)
