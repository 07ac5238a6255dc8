r"""The main job on the embedded digits dataset: no download, a few minutes on 2 CPU cores.

    python scripts/train.py --config configs/demo.py --workdir /tmp/demo

A narrow Inception-ResNet-v2 (width 0.25) at 75x75 on scikit-learn's handwritten digits (1,497
train / 300 test images, upsampled), with the paper's recipe (RMSProp, staircase decay, clipping,
label smoothing, EMA). Expected (measured on 2 idle CPU cores): 276 steps in about 3.5 minutes,
final EMA evaluation on the 300 test digits top-1 about 88-91%, top-5 about 99.5% (88.0% and 90.7%
measured on two machines: the processor kind changes float rounding). Then
`python scripts/evaluate.py --checkpoint /tmp/demo` evaluates the last checkpoint again.
"""

import ml_collections

from inception_flax import config_base as common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    del arg
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
    c.ema_decay = 0.99  # a window of 100 steps = 4.3 epochs
    c.bn_momentum = 0.99  # 0.9997 would leave the moving statistics ~92% at their init after 276 steps
    c.decay_batch_size = 64  # both decays per step at batch 64: another --config.batch_size keeps the windows
    c.shuffle_buffer = 2000
    c.log_every_steps = 20
    c.eval_every_steps = 100
    c.checkpoint_every_steps = 50
    c.profile = False
    c.compilation_cache_dir = "~/.cache/inception_flax/xla"
    return c
