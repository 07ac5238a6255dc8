r"""The residual-vs-plain ablation (paper section 3.3, Figs. 21-26), one named arm per config.

    python scripts/ablation.py --config configs/ablation.py --study pilot --workdir /tmp/pilot --parallel 2
    python scripts/ablation.py --config configs/ablation.py --study cpu --workdir /tmp/ablation --parallel 2
    python scripts/ablation.py --config configs/ablation.py --study scaling --workdir /tmp/scaling --parallel 2
    python scripts/ablation.py --config configs/ablation.py --study rates --workdir /tmp/rates --parallel 2 \
        --records docs/ablation/rates/runs
    python scripts/ablation.py --config configs/ablation.py --study claim2 --workdir /tmp/claim2 --parallel 2 \
        --records docs/ablation/claim2/runs
    python scripts/train.py --config configs/ablation.py:plain --workdir /tmp/plain         # one arm alone
    python scripts/train.py --config configs/ablation.py:v4,imagenet --workdir gs://B/v4    # one ImageNet arm

Arms (`get_config("<arm>[,<scale>][,runlocal]")`, a scale of DIGIT_EPOCHS or imagenet); each
changes only what its line says:
- `ir_v2` (also `residual`): Inception-ResNet-v2 as released (residual scales 0.17 / 0.10 / 0.20).
- `twin`: the faithful plain twin, `ir_v2` without its 40 shortcuts and nothing else: each block is
  relu(scale * (W m + b)) where `ir_v2` has relu(x + scale * (W m + b)) (`residual=False,
  plain_bn=False`); the same parameters, number for number.
- `plain`: the BatchNorm twin (secondary): `ir_v2` without its shortcuts whose 1x1 projections
  also end in BatchNorm (offset, no scale) instead of a scaled bias, as every other convolution of
  the network: same trainable parameter count, plus the projections' moving statistics (+91,520
  non-trainable numbers at full width, +11,440 here). The `cpu` study's plain arm.
- the paper's pairs at similar cost: `v3` (Inception-v3) vs `ir_v1` (Inception-ResNet-v1), and
  `v4` (Inception-v4) vs `ir_v2`.
- residual scale on `ir_v2`: `scale1.0` (unscaled), `scale0.3`, `scale0.1` (one scale for the A, B
  and C blocks instead of the released 0.17 / 0.10 / 0.20).

Studies (`get_study(name)`), on the embedded digits at width 0.125 and 75 px, batch 32 (the
`cpu` study's report is docs/ablation/study):
- `pilot`: every arm at 3 learning rates spanning 10x, one seed, 4 epochs; each arm's rate is the
  one with the lowest validation error (mean of the last 3 evaluations), recorded in `RATES`.
- `cpu`: every arm at its `RATES` entry, 5 seeds paired (a seed fixes initial weights where the
  arms share layers, and the data order), 12 epochs with a staircase decay to 1/36 of the peak.
- `scaling`: the scale arms at 3x their chosen rate, 5 seeds: runs that diverge or stall.
- `length`, `length_check`, `length_check2` (pilots, seed 100): the twins, v3 and v4 for 100 epochs
  (`e100`: 3,700 steps, the same decay in twelfths, evaluated every epoch), then v4 for 150 and
  225; they fixed LONG_EPOCHS at 150 (`long`: 5,550 steps; the rules and results are below).
- `rates` (a pilot, seeds 100 and 101): the claim-2 arms at 3 rates at that length, an arm whose
  best rate is the grid's largest also at 3x it; its report gives each arm's rate and the pooled
  SD of the claim-2 pairs' differences at those rates (for `planned_sd`).
- `claim2`: the twins, v3, IR-v1, v4 and IR-v2, 10 paired seeds, at LONG_EPOCHS; pairs `twin` vs
  `ir_v2` first, then v3 vs IR-v1, v4 vs IR-v2, and `plain` vs `ir_v2`, all Holm-adjusted.
- `claim3` / `claim3_fast`: IR-v2 at width 0.5 (`wide`: widest stream 1,040 channels; 108.6M
  MACs an image against 6.9M at width 0.125), scales 1.0 / 0.3 / 0.1, 5 seeds, WIDE_EPOCHS, at
  the chosen rate and at 3x it; a run died if its loss became non-finite or if, having been below
  50% validation error, it stayed at or above 85% for the last third of the run.
- `imagenet`: six arms at full size on ImageNet with the base recipe (one seed; not run here).

Every arm at every scale trains without the recipe's gradient clip, which would freeze the plain
twins (docs/ablation/init_gradients*.md: a gradient norm of 1.7e11 at initialisation for the
BatchNorm twin; the faithful twin's averaged 8.5e9 over the length pilot's first 37 steps).

Splits: the 1,497 training digits are cut into a fixed validation set (`train[:300]`, 23-39 per
class) for every curve and every choice, and 1,197 for training (37 steps an epoch); the 300 test
digits are scored once per run, after its last step (`test_split`).

Endpoints, fixed before the study ran (`Study`): speed is the number of training images until the
validation top-1 error is at most 10% (`target_top1_error`); runs that never get there are
censored at the run's length (restricted mean, Kaplan-Meier). Final accuracy is the mean of the
last 3 validation evaluations (the last 0.8 epoch at `cpu`, 2 epochs at `long`) and the test
score; an arm pair is called equivalent when the 90% interval of the paired difference lies within
+-2 points (`equivalence_margin`, two one-sided tests at 5%), whose power at 10 seeds is 80% if
the paired differences' SD is 2 points and 28% if it is 3 (`stats.tost_power`; `planned_sd` is
0.95 points, set from the `rates` pilot before `claim2` runs; `LONG_RATES` are its rates). The
pairs are Holm-adjusted.

Evaluation uses each step's raw parameters (`eval_with_ema=False`) with BatchNorm statistics of
momentum 0.9 per 32 images (about the last 10 steps).

What each study measured, its run time and where it ran: docs/ablation/README.md.
"""

from __future__ import annotations

import dataclasses

import ml_collections

from inception_flax import config_base as common

IR_V2 = "inception_resnet_v2"
LONG_EPOCHS = 150.0  # claim 2's length, fixed by the length pilots before `claim2` runs
# Claim 3's length: the paper's unscaled networks died early in training, and width 0.5 has 16x
# the MACs of width 0.125 (108.6M against 6.9M an image): each of its runs takes 30 epochs.
WIDE_EPOCHS = 30.0
# Scales on the digits, by training length; e100 / e150 / e225 are the length pilots'.
DIGIT_EPOCHS = {
    "pilot": 4.0,
    "cpu": 12.0,
    "long": LONG_EPOCHS,
    "wide": WIDE_EPOCHS,
    "e100": 100.0,
    "e150": 150.0,
    "e225": 225.0,
}
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
    "twin": (IR_V2, {"residual": False, "plain_bn": False}),
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
# The faithful twin had no 12-epoch pilot: the BatchNorm twin's rate (claim 2 uses LONG_RATES).
RATES["twin"] = RATES["plain"]
# Claim 2's rates (the `long` scale), chosen by the `rates` pilot at that length, seeds 100 and 101
# (docs/ablation/rates/report/pilot.md: final validation error, mean of 2 seeds, at the chosen rate).
# IR-v2, IR-v1 and the BatchNorm twin chose the edge extension (0.15), the pilot's last step.
LONG_RATES: dict[str, float] = {
    "twin": 0.05,  # 81.7%: no rate of 0.005-0.15 takes it below 50%
    "ir_v2": 0.15,  # 0.7% (0.05 ties at 0.7%)
    "v3": 0.015,  # 2.7% (0.05 ties at 2.7%)
    "ir_v1": 0.15,  # 1.0%
    "v4": 0.015,  # 3.3%
    "plain": 0.15,  # 79.6%
}
# The paired SD the claim-2 TOST plans with: pooled over v3 - ir_v1 and v4 - ir_v2 at those rates
# (0.95 points, 2 degrees of freedom; the twins' pairs, near chance, are left out). Power at 10 seeds
# and +-2 points: ~100% at 0.95, 80% at 2 and 28% at 3 points (2 df: its one-sided 95% upper bound is 4.2).
CLAIM2_PLANNED_SD = 0.0095
PILOT_RATES = (0.005, 0.015, 0.05)
# An arm whose best pilot rate is the grid's largest also runs at 3x that (the grid's step).
EDGE_RATES = tuple((arm, (0.15,)) for arm in ("ir_v2", "v3", "ir_v1", "scale1.0", "scale0.3", "scale0.1"))
RATES_EDGES = tuple((arm, (0.15,)) for arm in ("twin", "ir_v2", "v3", "ir_v1", "plain"))  # the `rates` pilot's
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
    died_top1_error: float = 0.85  # learned (< 50%), then at or above this for the run's last third
    learned_top1_error: float = 0.5  # a pilot's pair plans `planned_sd` only if both arms end below this
    planned_sd: float = float("nan")  # SD of paired final-error differences the TOST's power assumes
    planned_seeds: int = 10  # a pilot with `pairs`: the seeds of the study it plans (the power it reports)


CPU_ARMS = ("plain", "ir_v2", "v3", "ir_v1", "v4", "scale1.0", "scale0.3", "scale0.1")
CLAIM2_ARMS = ("twin", "ir_v2", "v3", "ir_v1", "v4", "plain")
# The faithful twin against its residual network first; the BatchNorm twin is secondary.
CLAIM2_PAIRS = (("twin", "ir_v2"), ("v3", "ir_v1"), ("v4", "ir_v2"), ("plain", "ir_v2"))
WIDE_ARMS = ("scale1.0", "scale0.3", "scale0.1")
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
    # Claim 2 at its real length (docs/ablation/README.md). Pilots use seeds 100+, never the study's.
    # `length`: the slowest plain arms and both twins at 100 epochs, provisional rates; 100 epochs
    # would stand if the slowest plain arm's last-third slope interval included 0. Result
    # (docs/ablation/length): v4 still fell by 0.10 points per 100 steps (95% CI 0.05-0.15) at 3.4%.
    "length": Study(arms=("twin", "v4", "v3", "plain"), seeds=(100,), scale="e100", pairs=(), sweep=()),
    # The second rule, fixed before it ran: 100 epochs stand if v4 for 150 (the same seed) ends
    # within 1 point (half the equivalence margin) of its 100-epoch error. Result
    # (docs/ablation/length_check): 2.2% against 3.4%, so the length became 150 epochs.
    "length_check": Study(arms=("v4",), seeds=(100,), scale="e150", pairs=(), sweep=()),
    # The same rule one step on, run after the length was set (it does not change it): v4 for 225.
    # Result (docs/ablation/length_check2): 1.8% against 2.2% at 150, within the point; flat.
    "length_check2": Study(arms=("v4",), seeds=(100,), scale="e225", pairs=(), sweep=()),
    # `rates`: every claim-2 arm at 3 rates spanning 10x, two seeds, at the study's length; the
    # chosen rates become the `long` scale's and the pooled SD of paired differences `planned_sd`.
    # The 12-epoch pilot's edge rule: an arm whose best rate at seed 100 is the grid's largest also
    # runs at 3x it (both seeds): the faithful twin (0.005 -> 92.0%, 0.015 -> 89.2%, 0.05 -> 74.4%),
    # IR-v2 (2.3%, 1.4%, 0.7%), v3 (4.0%, 2.7%, 1.7%), IR-v1 (1.8%, 1.4%, 1.3%) and the BatchNorm
    # twin (90.8%, 79.8%, 73.4%; added after the others had run).
    "rates": Study(
        arms=CLAIM2_ARMS,
        seeds=(100, 101),
        scale="long",
        learning_rates=PILOT_RATES,
        extra_rates=RATES_EDGES,
        pairs=CLAIM2_PAIRS,  # their paired SD over seeds 100 and 101 at the chosen rates
    ),
    # The BatchNorm twin's extension alone (its best rate at seed 100 was 0.05, 73.4%), to run
    # beside `rates` still training: the same run directories, so its records count for `rates`.
    "rates_edge_plain": Study(
        arms=("plain",), seeds=(100, 101), scale="long", extra_rates=(("plain", (0.15,)),), pairs=(), sweep=()
    ),
    # The run of `rates` asked first (the faithful twin at the grid's rate the length pilots did not
    # try), the same run directory and settings, so its record counts for `rates`.
    "rates_first": Study(arms=("twin",), seeds=(100,), scale="long", learning_rates=(0.05,), pairs=()),
    "claim2": Study(
        arms=CLAIM2_ARMS,
        seeds=tuple(range(10)),
        scale="long",
        pairs=CLAIM2_PAIRS,
        sweep=(),
        test_split="test",
        planned_sd=CLAIM2_PLANNED_SD,
    ),
    # Claim 3: IR-v2 at width 0.5 (widest stream 1,040 channels at 75 px), unscaled and scaled.
    "claim3": Study(arms=WIDE_ARMS, seeds=tuple(range(5)), scale="wide", pairs=(), sweep=WIDE_ARMS, test_split="test"),
    "claim3_fast": Study(
        arms=WIDE_ARMS,
        seeds=tuple(range(5)),
        scale="wide",
        pairs=(),
        sweep=WIDE_ARMS,
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
    parsed = common.parse_arg(arg, arm=tuple(ARMS), scale=(*DIGIT_EPOCHS, "imagenet"))
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
    if scale in DIGIT_EPOCHS:
        c.dataset = "inception_digits"
        c.train_split = "train[300:]"  # 1,197 digits: 37 steps an epoch
        c.eval_split = "train[:300]"  # validation; the test digits are scored once, at the end
        c.width = 0.5 if scale == "wide" else 0.125
        c.image_size = 75
        c.aux_logits = False  # the aux head needs 107 px; the pairs are compared without it
        c.crop_area_range = (0.35, 1.0)  # a 5% crop of an 8x8 digit carries no label
        c.batch_size = c.base_batch_size = 32
        c.learning_rate = LONG_RATES[arm] if scale == "long" and arm in LONG_RATES else RATES[arm]
        c.lr_schedule = "linear_warmup"  # the study's shape (stairs from the end of warm-up)
        c.color_distortion = "slim"
        c.half_precision = False  # float32 on any machine: the arms compare alike wherever they run
        c.bn_group_size = 0  # statistics over the whole batch, as these runs were measured
        c.cold_epochs = 0.0
        c.lr_decay_rate = 0.7
        # 12 epochs: 1 of warm-up, then x0.7 every epoch; every length has this shape in twelfths.
        c.num_epochs = DIGIT_EPOCHS[scale]
        c.warmup_epochs = c.lr_decay_epochs = c.num_epochs / 12
        c.bn_momentum = 0.9  # per 32 images: about the last 10 steps
        c.ema_decay = 0.99
        c.decay_batch_size = 32
        c.eval_with_ema = False
        c.shuffle_buffer = 2000
        c.log_every_steps = 18
        c.eval_every_steps = 18  # about every half epoch
        c.checkpoint_every_steps = 111
        if scale not in ("pilot", "cpu"):
            # One evaluation of the 300 digits an epoch: a small share of a run of thousands of steps.
            c.log_every_steps = c.eval_every_steps = 37
            c.checkpoint_every_steps = 370
        c.profile = False
        c.compilation_cache_dir = "~/.cache/inception_flax/xla"
    return common.runlocal(c) if parsed["runlocal"] else c
