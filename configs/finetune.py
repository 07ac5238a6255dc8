r"""Fine-tune an ImageNet network (converted weights or a workdir) on your own images.

    python scripts/train.py --config configs/finetune.py:inception_v4 --workdir /tmp/ft \
        --config.init_from=weights/inception_v4_slim --config.dataset=folder:/data/flowers

`folder:<root>` reads `<root>/train/<class>/*` and evaluates on `<root>/validation/<class>/*`
(`--config.eval_split=val` for another name). Every pretrained tensor is kept except the
classifier (and aux head), which is re-initialised for the dataset's classes; the log lists both.
The arm after the colon is the network: inception_v3, inception_v4, inception_resnet_v2 (or
inception_resnet_v1 from your own workdir). Expected: depends on your data; on the embedded digits
(`--config.dataset=inception_digits --config.eval_split=test`) a converted ImageNet network needs
no more than the default 10 epochs.
"""

import ml_collections

from inception_flax import config_base as common
from inception_flax.models import registry


def get_config(arg: str | None = "inception_v4") -> ml_collections.ConfigDict:
    parsed = common.parse_arg(arg, model=tuple(registry.names()))
    c = common.get_base_config()
    c.model = parsed["model"] or "inception_v4"
    c.init_from = ""  # required: --config.init_from=<converted weights or workdir>
    c.dataset = ""  # required: --config.dataset=folder:<root> (or a TFDS name)
    c.image_size = 299
    c.batch_size = c.base_batch_size = 64
    c.num_epochs = 10.0
    c.learning_rate = 0.01  # a tenth of the paper's rate: the features are already trained
    c.lr_decay_epochs = 2.0
    c.cold_epochs = 0.0
    c.warmup_epochs = 0.5
    c.lr_schedule = "linear_warmup"
    c.color_distortion = "slim"
    c.bn_group_size = 0  # statistics over the whole batch, as these runs were measured
    c.grad_clip_norm = 2.0
    c.bn_momentum = 0.99  # the pretrained statistics adapt within a few hundred steps
    c.ema_decay = 0.999
    c.decay_batch_size = 64  # both decays are per step at batch 64; other batches keep the windows in images
    c.shuffle_buffer = 5000
    c.log_every_steps = 20
    c.eval_every_steps = 500
    c.checkpoint_every_steps = 500
    c.profile = False
    if parsed["runlocal"]:  # the embedded digits, without weights: a smoke run of the fine-tuning recipe
        c = common.runlocal(c)
    return c
