"""Config fields shared by every experiment in configs/; each config file overrides what it needs.

The defaults are the synchronous ImageNet recipe of Google's TPU reference for Inception-v4
(tensorflow/tpu `models/experimental/inception/inception_v4.py`), which keeps the paper's
optimiser (RMSProp decay 0.9, momentum 0.9, epsilon 1.0; lr x 0.94 every 2 epochs; clipping at
global norm 2.0; label smoothing 0.1; L2 4e-5) but states every quantity per image, so that it
holds at any global batch:
- the learning rate is per `base_batch_size` images and scales linearly with `batch_size`;
- warm-up and decay are in epochs;
- `ema_decay` and `bn_momentum` are per-step decays at a global batch of `decay_batch_size`; at
  another batch B each becomes 1 - (1 - decay) * B / decay_batch_size, so their windows,
  1 / (1 - decay) steps, stay the same number of images (`scripts/schedule.py` prints them in epochs).

The paper's own asynchronous recipe (50 replicas each applying lr 0.045 to its own 32 images)
is not a synchronous batch of 1600 at 0.045: that divides the rate per image by ~50. Its old
reading stays reachable: `--config.learning_rate=0.045 --config.base_batch_size=1600
--config.batch_size=1600 --config.cold_epochs=0 --config.warmup_epochs=0
--config.decay_batch_size=0 --config.ema_decay=0.9999 --config.bn_momentum=0.9997
--config.ema_warmup=False --config.ema_batch_stats=False`.
"""

import ml_collections


def get_base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    # Model.
    c.model = "inception_v4"
    c.num_classes = -1  # -1: from the dataset
    c.width = 1.0
    c.dropout_rate = 0.2
    c.aux_logits = False
    c.aux_loss_weight = 0.4
    c.model_options = ml_collections.ConfigDict()  # network-specific: residual, scale_a/b/c, ...
    c.half_precision = False  # bfloat16 compute, float32 parameters
    c.bn_momentum = 0.995  # per step at decay_batch_size images (TPU reference v4; slim: 0.9997 per replica step)
    c.init_from = ""  # fine-tuning: a workdir or converted weights; heads re-initialised if num_classes differs
    # Data.
    c.dataset = "imagenet2012"  # a TFDS name, or folder:<root> with <root>/<split>/<class>/<image>
    c.data_dir = ""  # TFDS data_dir; empty: TFDS's default (~/tensorflow_datasets or $TFDS_DATA_DIR)
    c.train_split = "train"
    c.eval_split = "validation"
    c.image_size = 299
    c.shuffle_buffer = 10_000
    c.crop_area_range = (0.05, 1.0)
    c.color_distortion = True
    c.data_shards = 0  # 0: one input shard per process (see data.PipelineConfig)
    # Schedule (global batch).
    c.batch_size = 1024  # the TPU reference's global batch (v2-8 up to v2-512 pods)
    c.base_batch_size = 256  # learning_rate and cold_learning_rate are per this many images
    c.num_epochs = 170.0  # TPU reference Inception-v3: 213k steps at 1024
    c.num_train_steps = -1  # -1: derived from num_epochs
    c.log_every_steps = 100
    c.eval_every_steps = 5000
    c.checkpoint_every_steps = 2000
    c.keep_checkpoints = 3
    c.seed = 0
    # Optimisation.
    c.optimizer = "rmsprop"
    c.learning_rate = 0.15  # per base_batch_size images, at the end of warm-up (TPU reference v4)
    c.lr_decay_rate = 0.94
    c.lr_decay_epochs = 2.0  # staircase, counted from the end of warm-up
    c.cold_epochs = 1.0  # first, this many epochs at cold_learning_rate ...
    c.cold_learning_rate = 0.001  # ... per base_batch_size images
    c.warmup_epochs = 2.0  # ... then linear from cold_learning_rate to learning_rate
    c.rmsprop_decay = 0.9
    c.momentum = 0.9  # RMSProp's momentum, or SGD's (Nesterov)
    c.rmsprop_momentum = ml_collections.config_dict.placeholder(float)  # old name of momentum: warns, then sets it
    c.rmsprop_epsilon = 1.0
    c.grad_clip_norm = 2.0
    c.label_smoothing = 0.1
    c.weight_decay = 4e-5
    c.weight_decay_biases = False
    c.ema_decay = 0.995  # per step at decay_batch_size images (TPU reference)
    c.decay_batch_size = 1024  # the global batch ema_decay and bn_momentum are stated at; 0: per step at any batch
    c.ema_warmup = True  # TF's ExponentialMovingAverage(num_updates): decay min(ema_decay, (1 + t) / (10 + t))
    c.ema_batch_stats = True  # also average the BatchNorm statistics, which evaluation uses with the EMA weights
    c.eval_with_ema = True
    # Faults.
    c.nonfinite = "halt"  # a NaN/Inf loss or gradient: "halt", or "rewind" to the last checkpoint past the batch
    c.max_rewinds = 3  # "rewind" gives up (as "halt") after this many rewinds in one run
    # Runtime.
    # Recompute each block's activations in the backward pass: less memory on GPU/TPU, ~1/3 more
    # compute. XLA's CPU backend undoes it (IR-v2, batch 8: scratch 2.30 GB without, 2.64 GB with).
    c.remat = False
    c.profile = True
    c.compilation_cache_dir = ""
    return c


def runlocal(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks any config to a laptop smoke run on the embedded digits (big_vision's `runlocal`)."""
    c.dataset = "inception_digits"
    c.eval_split = "test"
    c.width = 0.125
    c.image_size = 107 if c.aux_logits else 75
    c.batch_size = 16
    c.base_batch_size = 16
    c.num_train_steps = 20
    c.log_every_steps = 5
    c.eval_every_steps = 20
    c.checkpoint_every_steps = 10
    c.shuffle_buffer = 2000
    c.bn_momentum = 0.9
    c.ema_decay = 0.9
    c.learning_rate = 0.045
    c.decay_batch_size = 0  # per step: a 20-step run needs short windows at any batch
    c.cold_epochs = 0.0
    c.warmup_epochs = 0.0
    c.profile = False
    return c
