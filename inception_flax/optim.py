"""The paper's optimiser and learning-rate schedule (optax)."""

from __future__ import annotations

import ml_collections
import optax


def learning_rate_schedule(config: ml_collections.ConfigDict, steps_per_epoch: int) -> optax.Schedule:
    """lr * (batch / base_batch), times `lr_decay_rate` every `lr_decay_epochs` (staircase), after warm-up."""
    peak = config.learning_rate * config.batch_size / config.base_batch_size
    decay = optax.exponential_decay(
        peak,
        transition_steps=max(1, round(config.lr_decay_epochs * steps_per_epoch)),
        decay_rate=config.lr_decay_rate,
        staircase=True,
    )
    warmup_steps = round(config.warmup_epochs * steps_per_epoch)
    if warmup_steps == 0:
        return decay
    warmup = optax.linear_schedule(0.0, peak, warmup_steps)
    return optax.join_schedules([warmup, decay], [warmup_steps])


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
        opt = tf1_rmsprop(schedule, config.rmsprop_decay, config.rmsprop_momentum, config.rmsprop_epsilon)
    elif config.optimizer == "sgd":
        opt = optax.sgd(schedule, momentum=config.rmsprop_momentum, nesterov=True)
    else:
        raise ValueError(f"Unknown optimizer {config.optimizer!r} (rmsprop or sgd).")
    if config.grad_clip_norm > 0:
        return optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), opt)
    return opt
