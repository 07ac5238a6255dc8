"""Config fields shared by every experiment in configs/; each config file overrides what it needs.

The defaults are the paper's ImageNet recipe (Inception-v3 paper, section 8; Inception-v4 paper,
section 4): RMSProp (decay 0.9, momentum 0.9, epsilon 1.0), lr 0.045 decayed by 0.94 every two
epochs, gradient clipping at global norm 2.0, label smoothing 0.1, L2 4e-5, an exponential moving
average of the parameters for evaluation, 50 replicas x 32 = a global batch of 1600 as the base
batch that the learning rate is scaled against.
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
    c.bn_momentum = 0.9997  # slim's decay; short runs need less, or eval sees untrained statistics
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
    c.batch_size = 1600
    c.base_batch_size = 1600
    c.num_epochs = 100.0
    c.num_train_steps = -1  # -1: derived from num_epochs
    c.log_every_steps = 100
    c.eval_every_steps = 5000
    c.checkpoint_every_steps = 2000
    c.keep_checkpoints = 3
    c.seed = 0
    # Optimisation.
    c.optimizer = "rmsprop"
    c.learning_rate = 0.045
    c.lr_decay_rate = 0.94
    c.lr_decay_epochs = 2.0
    c.warmup_epochs = 0.0
    c.rmsprop_decay = 0.9
    c.rmsprop_momentum = 0.9
    c.rmsprop_epsilon = 1.0
    c.grad_clip_norm = 2.0
    c.label_smoothing = 0.1
    c.weight_decay = 4e-5
    c.weight_decay_biases = False
    c.ema_decay = 0.9999
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
    c.profile = False
    return c
