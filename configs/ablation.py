r"""The residual-vs-plain ablation (paper section 3.3, Figs. 21-26), one named arm per config.

    python scripts/ablation.py --config configs/ablation.py --study pilot --workdir /tmp/pilot --parallel 2
    python scripts/ablation.py --config configs/ablation.py --study cpu --workdir /tmp/ablation --parallel 2
    python scripts/ablation.py --config configs/ablation.py --study scaling --workdir /tmp/scaling --parallel 2
    python scripts/train.py --config configs/ablation.py:plain --workdir /tmp/plain         # one arm alone
    python scripts/train.py --config configs/ablation.py:v4,imagenet --workdir gs://B/v4    # one ImageNet arm

Arms (`get_config("<arm>[,cpu|pilot|imagenet][,runlocal]")`); each changes only what its line says:
- `ir_v2` (also `residual`): Inception-ResNet-v2 as released (residual scales 0.17 / 0.10 / 0.20).
- `plain`: `ir_v2` without its 40 shortcuts (`residual=False`). Each block's 1x1 projection then
  ends in BatchNorm instead of a bias (`plain_bn`, as every other convolution of the network):
  same trainable parameters (a BatchNorm offset per channel replaces each bias), plus the
  projections' moving statistics (+91,520 non-trainable numbers at full width, +11,440 here).
- the paper's pairs at similar cost: `v3` (Inception-v3) vs `ir_v1` (Inception-ResNet-v1), and
  `v4` (Inception-v4) vs `ir_v2`.
- residual scale on `ir_v2`: `scale1.0` (unscaled), `scale0.3`, `scale0.1` (one scale for the A, B
  and C blocks instead of the released 0.17 / 0.10 / 0.20).

Studies (`get_study(name)`), on the embedded digits at width 0.125 and 75 px, batch 32:
- `pilot`: every arm at 3 learning rates spanning 10x, one seed, 4 epochs; each arm's rate is the
  one with the lowest validation error (mean of the last 3 evaluations), recorded in `RATES`.
- `cpu`: every arm at its `RATES` entry, 5 seeds paired (a seed fixes initial weights where the
  arms share layers, and the data order), 12 epochs with a staircase decay to 1/36 of the peak.
- `scaling`: the scale arms at 3x their chosen rate, 5 seeds: runs that diverge or stall.
- `imagenet`: six arms at full size on ImageNet with the base recipe (one seed; not run here).

Every arm at every scale trains without the recipe's gradient clip, which would freeze the plain
twin (docs/ablation/init_gradients*.md: a gradient norm of 1.7e11 at initialisation).

Splits: the 1,497 training digits are cut into a fixed validation set (`train[:300]`, 23-39 per
class) for every curve and every choice, and 1,197 for training (37 steps an epoch); the 300 test
digits are scored once per run, after its last step (`test_split`).

Endpoints, fixed before the study ran (`Study`): speed is the number of training images until the
validation top-1 error is at most 10% (`target_top1_error`); runs that never get there are
censored at the run's length (restricted mean, Kaplan-Meier). Final accuracy is the mean of the
last 3 validation evaluations (1.5 epochs) and the test score; an arm pair is called equivalent
when the 90% interval of the paired difference lies within +-2 points (`equivalence_margin`, two
one-sided tests at 5%). Three primary comparisons (the pairs), Holm-adjusted.

Evaluation uses each step's raw parameters (`eval_with_ema=False`) with BatchNorm statistics of
momentum 0.9 per 32 images (about the last 10 steps).

What each study measured, its run time and where it ran: docs/ablation/README.md.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from inception_flax import config_base as common

IR_V2 = "inception_resnet_v2"
ARMS: dict[str, tuple[str, dict]] = {
    "plain": (IR_V2, {"residual": False}),
    "ir_v2": (IR_V2, {"residual": True}),
    "residual": (IR_V2, {"residual": True}),
    "v3": ("inception_v3", {}),
    "ir_v1": ("inception_resnet_v1", {}),
    "v4": ("inception_v4", {}),
    "scale1.0": (IR_V2, {"scale_a": 1.0, "scale_b": 1.0, "scale_c": 1.0}),
    "scale0.3": (IR_V2, {"scale_a": 0.3, "scale_b": 0.3, "scale_c": 0.3}),
    "scale0.1": (IR_V2, {"scale_a": 0.1, "scale_b": 0.1, "scale_c": 0.1}),
}

# Peak learning rate per 32 images of each arm, chosen by the pilot (docs/ablation/pilot/pilot.md); ir_v2
# and scale0.1 chose the largest rate tried (0.15), after the grid's extension.
RATES: dict[str, float] = {
    "plain": 0.015,
    "ir_v2": 0.15,
    "v3": 0.05,
    "ir_v1": 0.05,
    "v4": 0.015,
    "scale1.0": 0.05,
    "scale0.3": 0.05,
    "scale0.1": 0.15,
}
RATES["residual"] = RATES["ir_v2"]
PILOT_RATES = (0.005, 0.015, 0.05)
# An arm whose best pilot rate is the grid's largest also runs at 3x that (the grid's step).
EDGE_RATES = tuple((arm, (0.15,)) for arm in ("ir_v2", "v3", "ir_v1", "scale1.0", "scale0.3", "scale0.1"))
SCALING_FACTOR = 3.0  # the `scaling` study's rate: this many times each scale arm's chosen rate


@dataclasses.dataclass(frozen=True)
class Study:
    """Arms x seeds (x learning rates for a pilot), the comparisons and the endpoints."""

    arms: tuple[str, ...]
    seeds: tuple[int, ...]
    scale: str  # the second part of each arm's config name: cpu, pilot or imagenet
    pairs: tuple[tuple[str, str], ...] = (("plain", "ir_v2"), ("v3", "ir_v1"), ("v4", "ir_v2"))
    sweep: tuple[str, ...] = ("scale1.0", "scale0.3", "ir_v2", "scale0.1")
    target_top1_error: float = 0.1
    learning_rates: tuple[float, ...] = ()  # a pilot: every arm at each of these instead of RATES
    extra_rates: tuple[tuple[str, tuple[float, ...]], ...] = ()  # (arm, rates): a pilot's extension
    rate_factor: float = 1.0  # every arm at this many times its RATES entry
    test_split: str = ""  # scored once per run, after its last step
    final_evals: int = 3  # final validation error: the mean of this many last evaluations
    equivalence_margin: float = 0.02  # two one-sided tests on the paired final-error difference
    stall_top1_error: float = 0.8  # a run ending above this validation error has not learned


CPU_ARMS = ("plain", "ir_v2", "v3", "ir_v1", "v4", "scale1.0", "scale0.3", "scale0.1")
STUDIES = {
    "pilot": Study(arms=CPU_ARMS, seeds=(0,), scale="pilot", learning_rates=PILOT_RATES, extra_rates=EDGE_RATES),
    # The extension alone, to run beside a pilot still training (the same workdir).
    "pilot_edges": Study(arms=tuple(a for a, _ in EDGE_RATES), seeds=(0,), scale="pilot", extra_rates=EDGE_RATES),
    "cpu": Study(arms=CPU_ARMS, seeds=(0, 1, 2, 3, 4), scale="cpu", test_split="test"),
    "scaling": Study(
        arms=("scale1.0", "scale0.3", "scale0.1"),
        seeds=(0, 1, 2, 3, 4),
        scale="cpu",
        pairs=(),
        sweep=("scale1.0", "scale0.3", "scale0.1"),
        rate_factor=SCALING_FACTOR,
        test_split="test",
    ),
    "imagenet": Study(
        arms=("v3", "ir_v1", "v4", "ir_v2", "plain", "scale1.0"),
        seeds=(0,),
        scale="imagenet",
        sweep=("scale1.0", "ir_v2"),
        target_top1_error=0.25,
    ),
}


def get_study(name: str) -> Study:
    if name not in STUDIES:
        raise ValueError(f"Unknown study {name!r}; studies: {', '.join(STUDIES)}.")
    return STUDIES[name]


def get_config(arg: str | None = "ir_v2") -> ml_collections.ConfigDict:
    parsed = common.parse_arg(arg, arm=tuple(ARMS), scale=("cpu", "pilot", "imagenet"))
    arm, scale = parsed["arm"] or "ir_v2", parsed["scale"] or "cpu"
    model, options = ARMS[arm]
    c = common.get_base_config()
    c.model = model
    c.model_options = ml_collections.ConfigDict(options)
    if model == IR_V2:
        c.weight_decay_biases = True  # slim's IR-v2 scope decays biases too
    # No clipping at a global norm, at every scale: at initialisation the plain networks' gradients
    # explode towards the input (deep BatchNorm-ReLU stacks). docs/ablation/init_gradients.md: the
    # total norm is 1.7e11 in the plain twin (at width 0.125 and 75 px as at full width and 299 px),
    # ~5e3 in v4, 24-38 in ir_v2, nearly all in the stem, so a clip at 2.0 scales the plain twin's
    # every update by 1e-11 and it never learns (a pilot with the clip: at chance after 4 epochs at
    # 0.005 and at 0.015). RMSProp normalises each parameter's step without it.
    c.grad_clip_norm = 0.0
    if scale in ("cpu", "pilot"):
        c.dataset = "inception_digits"
        c.train_split = "train[300:]"  # 1,197 digits: 37 steps an epoch
        c.eval_split = "train[:300]"  # validation; the test digits are scored once, at the end
        c.width = 0.125
        c.image_size = 75
        c.aux_logits = False  # the aux head needs 107 px; the pairs are compared without it
        c.crop_area_range = (0.35, 1.0)  # a 5% crop of an 8x8 digit carries no label
        c.batch_size = c.base_batch_size = 32
        c.learning_rate = RATES[arm]
        c.lr_schedule = "linear_warmup"  # the study's shape (stairs from the end of warm-up)
        c.color_distortion = "slim"
        c.half_precision = False  # float32 on any machine: the arms compare alike wherever they run
        c.bn_group_size = 0  # statistics over the whole batch, as these runs were measured
        c.cold_epochs = 0.0
        c.lr_decay_rate = 0.7
        # 12 epochs: 1 of warm-up, then x0.7 every epoch (the pilot: the same shape in 4 epochs).
        c.num_epochs = 12.0 if scale != "pilot" else 4.0
        c.warmup_epochs = c.lr_decay_epochs = c.num_epochs / 12
        c.bn_momentum = 0.9  # per 32 images: about the last 10 steps
        c.ema_decay = 0.99
        c.decay_batch_size = 32
        c.eval_with_ema = False
        c.shuffle_buffer = 2000
        c.log_every_steps = 18
        c.eval_every_steps = 18  # about every half epoch
        c.checkpoint_every_steps = 111
        c.profile = False
        c.compilation_cache_dir = "~/.cache/inception_flax/xla"
    return common.runlocal(c) if parsed["runlocal"] else c
