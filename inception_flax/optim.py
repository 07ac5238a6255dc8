"""The recipe's optimiser, learning-rate schedule and averaging decays (optax), all per image.

A config states the learning rate per `base_batch_size` images and the decays of the weight EMA and
of the BatchNorm statistics per step at `decay_batch_size` images; the functions here turn them
into per-step values for the config's global batch, so that a bigger pod changes neither the rate
per image nor the averaging windows in images.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import ml_collections
import optax


def peak_learning_rate(config: ml_collections.ConfigDict) -> float:
    """`learning_rate` scaled linearly from `base_batch_size` to the global batch."""
    return config.learning_rate * config.batch_size / config.base_batch_size


def learning_rate_schedule(
    config: ml_collections.ConfigDict, steps_per_epoch: int, train_images: int | None = None
) -> optax.Schedule:
    """The learning rate at each step, by `config.lr_schedule` (docs/recipe.md compares them):

    - "tpu_v4": tensorflow/tpu `inception_v4.py` step for step. Epochs of train_images / batch
      steps (fractional); `cold_epochs` at the cold rate; then `warmup_epochs` whole epochs at
      e / (cold + warmup) of the initial rate; then the initial rate x `lr_decay_rate` every
      int(`lr_decay_epochs` x epoch) steps counted from step 0, where the initial rate is the peak
      over `lr_decay_rate` ** ((cold + warmup) / `lr_decay_epochs`) (so the stairs spent in warm-up
      are given back); never below 1e-4 x the initial rate.
    - "tpu_v3": tensorflow/tpu `inception_v3.py`: the peak x `lr_decay_rate` every `lr_decay_epochs`
      epochs of `steps_per_epoch` steps, counted from step 0, never below 1e-4 x the peak; a
      warm-up, if the config has one, replaces its first epochs as in "linear_warmup".
    - "linear_warmup": `cold_epochs` at the cold rate, `warmup_epochs` linear from it to the peak,
      then the peak x `lr_decay_rate` every `lr_decay_epochs` counted from the end of warm-up.

    The peak and the cold rate are per `base_batch_size` images, scaled to the global batch.
    `train_images` (default: `steps_per_epoch` x batch) sets the fractional epoch of "tpu_v4".
    """
    if config.lr_schedule == "tpu_v4":
        return _tpu_v4(config, train_images or steps_per_epoch * config.batch_size)
    peak = peak_learning_rate(config)
    cold = config.cold_learning_rate * config.batch_size / config.base_batch_size
    stair = max(1, round(config.lr_decay_epochs * steps_per_epoch))
    cold_steps = round(config.cold_epochs * steps_per_epoch)
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    if config.lr_schedule == "tpu_v3":

        def decay(step):
            return jnp.maximum(peak * config.lr_decay_rate ** (jnp.asarray(step) // stair), 1e-4 * peak)

    else:
        decay = optax.exponential_decay(peak, stair, config.lr_decay_rate, staircase=True)
    pieces, boundaries = [], []
    if cold_steps:
        pieces.append(optax.constant_schedule(cold))
        boundaries.append(cold_steps)
    if warmup_steps:
        pieces.append(optax.linear_schedule(cold if cold_steps else 0.0, peak, warmup_steps))
        boundaries.append(cold_steps + warmup_steps)
    if not pieces:
        return decay
    if config.lr_schedule == "tpu_v3":  # the stairs count from step 0, not from the end of warm-up
        warm = optax.join_schedules(pieces, boundaries[:-1])

        def joined(step):
            return jnp.where(jnp.asarray(step) < boundaries[-1], warm(step), decay(step))

        return joined
    return optax.join_schedules([*pieces, decay], boundaries)


def _tpu_v4(config: ml_collections.ConfigDict, train_images: int) -> optax.Schedule:
    """The "tpu_v4" schedule (see `learning_rate_schedule`); whole cold and warm-up epochs."""
    batch = config.batch_size
    cold_epochs, warm_epochs = int(config.cold_epochs), int(config.warmup_epochs)
    ramp = cold_epochs + warm_epochs
    initial = peak_learning_rate(config) / config.lr_decay_rate ** (ramp / config.lr_decay_epochs)
    cold = config.cold_learning_rate * batch / config.base_batch_size
    stair = max(1, int(config.lr_decay_epochs * train_images / batch))
    # The epoch index floor(step * batch / images), in integers; steps past the ramp are capped so
    # that step * batch stays inside int32.
    cap = (ramp + 1) * (train_images // batch + 1)

    def schedule(step):
        step = jnp.asarray(step)
        epoch = jnp.minimum(step, cap) * batch // train_images
        warm = epoch * (initial / max(ramp, 1))
        decayed = initial * config.lr_decay_rate ** (step // stair)
        rate = jnp.where(epoch < cold_epochs, cold, jnp.where(epoch < ramp, warm, decayed))
        return jnp.maximum(rate, 1e-4 * initial)

    return schedule


def highest_learning_rate(config: ml_collections.ConfigDict, schedule: optax.Schedule, train_images: int) -> float:
    """`schedule`'s highest rate (for "tpu_v4" above the config's peak by the stairs given back)."""
    ramp = math.ceil((config.cold_epochs + config.warmup_epochs + 1) * train_images / config.batch_size)
    return float(jnp.max(schedule(jnp.arange(ramp + 1))))


def per_step_decay(decay: float, batch_size: int, decay_batch_size: int) -> float:
    """A decay stated per step at `decay_batch_size` images, per step at a global batch of `batch_size`.

    1 - (1 - decay) * batch / decay_batch_size keeps the averaging window, 1 / (1 - decay) steps,
    the same number of images at any batch. `decay_batch_size=0` takes the decay per step as it is.
    Raises ValueError where the window would be shorter than one step of this batch.
    """
    if decay_batch_size <= 0:
        return decay
    scaled = 1.0 - (1.0 - decay) * batch_size / decay_batch_size
    if scaled < 0.0:
        raise ValueError(
            f"A decay of {decay} per step at decay_batch_size={decay_batch_size} averages over "
            f"{decay_batch_size / (1.0 - decay):.0f} images, fewer than one global batch of "
            f"{batch_size}: raise the decay or decay_batch_size."
        )
    return scaled


def warm_decay(decay: float, warmup: bool, updates: jnp.ndarray) -> jnp.ndarray:
    """An EMA's decay for the update that makes `updates` steps in total (1 for the first).

    With `warmup`, TF's `ExponentialMovingAverage(num_updates=global_step)`:
    min(decay, (1 + t) / (10 + t)), so the average forgets its random initialisation at once.
    """
    if not warmup:
        return jnp.float32(decay)
    t = jnp.asarray(updates, jnp.float32)
    return jnp.minimum(jnp.float32(decay), (1.0 + t) / (10.0 + t))


def tf1_rmsprop(learning_rate: optax.ScalarOrSchedule, decay: float, momentum: float, epsilon: float):
    """`tf.compat.v1.train.RMSPropOptimizer` as the paper used it.

    ms = decay * ms + (1 - decay) * g^2 with ms starting at 1.0; mom = momentum * mom + lr * g /
    sqrt(ms + epsilon) (epsilon inside the square root); w -= mom.
    """
    return optax.rmsprop(
        learning_rate, decay=decay, eps=epsilon, initial_scale=1.0, eps_in_sqrt=True, momentum=momentum
    )


def create_optimizer(config: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
    """Gradient clipping at a global norm, then the optimiser (L2 decay is part of the loss, as in slim)."""
    if config.optimizer == "rmsprop":
        opt = tf1_rmsprop(schedule, config.rmsprop_decay, config.momentum, config.rmsprop_epsilon)
    elif config.optimizer == "sgd":
        opt = optax.sgd(schedule, momentum=config.momentum, nesterov=True)
    else:
        raise ValueError(f"Unknown optimizer {config.optimizer!r} (rmsprop or sgd).")
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), opt)
    return opt
