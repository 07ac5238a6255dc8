"""The training step: state, loss (the paper's recipe) and one jitted-able update.

Imports only jax, flax, optax, clu.metrics and ml_collections (no TensorFlow), so the step can be
benchmarked or embedded where the input pipeline's dependencies are not installed.
"""

import functools
from collections.abc import Mapping
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import optax
from clu import metrics

from inception_flax import models
from inception_flax.recipe import Recipe
from inception_flax.scoring import topk_correct


@flax.struct.dataclass
class TrainState:
    step: jax.Array
    params: Any
    batch_stats: Any
    opt_state: Any
    ema_params: Any
    rng: jax.Array  # raw uint32 key data, so orbax stores it as a plain array
    ema_batch_stats: Any = None  # the BatchNorm statistics averaged like ema_params (config.ema_batch_stats)


@flax.struct.dataclass
class TrainMetrics(metrics.Collection):
    loss: metrics.Average.from_output("loss")
    l2_loss: metrics.Average.from_output("l2_loss")
    top1: metrics.Average.from_output("top1")
    top5: metrics.Average.from_output("top5")
    grad_norm: metrics.Average.from_output("grad_norm")
    learning_rate: metrics.LastValue.from_output("learning_rate")


def architecture(config: ml_collections.ConfigDict, num_classes: int) -> dict[str, Any]:
    """The network options that shape its variables: what a checkpoint records and a resume must match.

    With `model_options` (the network's own: residual, scales, ...), the one place that says which
    config fields the network takes; `model_options` below adds how it runs.
    """
    return {
        "num_classes": num_classes,
        "width": config.width,
        "aux_logits": config.aux_logits,
        **config.model_options.to_dict(),
    }


def compute_dtype(config: ml_collections.ConfigDict) -> Any:
    """bfloat16 where `half_precision` says so; unset: on accelerators (TPUs and GPUs run bfloat16
    matmuls at full rate, the CPU emulates them), float32 on the CPU."""
    half = config.half_precision
    if half is None:
        half = jax.default_backend() != "cpu"
    return jnp.bfloat16 if half else jnp.float32


def bn_group_size(config: ml_collections.ConfigDict) -> int:
    """Images per BatchNorm group in training: -1 is each device's share of the global batch."""
    if config.bn_group_size >= 0:
        return config.bn_group_size
    return config.batch_size // jax.device_count()


def model_options(config: ml_collections.ConfigDict, num_classes: int, bn_momentum: float) -> dict[str, Any]:
    """Everything `models.create(config.model, ...)` takes: the architecture, then how it trains
    (`bn_momentum` per step at this batch: `Recipe.bn_momentum`)."""
    return {
        **architecture(config, num_classes),
        "dropout_rate": config.dropout_rate,
        "bn_momentum": bn_momentum,
        "dtype": compute_dtype(config),
        "bn_group_size": bn_group_size(config),
        "remat": config.remat,
    }


def l2_loss(params: Any, decay_biases: bool) -> jax.Array:
    """slim's L2: sum of 0.5 * ||w||^2 over conv/dense kernels (and non-BatchNorm biases if asked)."""

    def keep(path, leaf):
        names = [getattr(p, "key", "") for p in path]
        return names[-1] == "kernel" or (decay_biases and names[-1] == "bias" and "bn" not in names)

    leaves = [x for path, x in jax.tree_util.tree_leaves_with_path(params) if keep(path, x)]
    return 0.5 * sum(jnp.sum(jnp.square(x.astype(jnp.float32))) for x in leaves)


def cross_entropy(logits: jax.Array, labels: jax.Array, num_classes: int, smoothing: float) -> jax.Array:
    targets = optax.smooth_labels(jax.nn.one_hot(labels, num_classes), smoothing) if smoothing else None
    if targets is None:
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    return optax.softmax_cross_entropy(logits, targets)


def assemble_state(
    tx: optax.GradientTransformation, variables: Mapping[str, Any], rng: jax.Array, ema_batch_stats: bool = False
) -> TrainState:
    """The training state around fresh variables (jittable)."""
    params = variables["params"]
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        batch_stats=variables["batch_stats"],
        opt_state=tx.init(params),
        ema_params=params,
        rng=jax.random.key_data(rng),
        ema_batch_stats=variables["batch_stats"] if ema_batch_stats else None,
    )


def abstract_state(
    model: models.Inception, tx: optax.GradientTransformation, image_size: int, ema_batch_stats: bool
) -> TrainState:
    """`init_state`'s result as ShapeDtypeStructs (no computation)."""
    variables = models.abstract_variables(model, image_size)
    assemble = functools.partial(assemble_state, tx, ema_batch_stats=ema_batch_stats)
    return jax.eval_shape(assemble, variables, jax.random.key(0))


def init_state(
    model: models.Inception,
    tx: optax.GradientTransformation,
    image_size: int,
    ema_batch_stats: bool,
    rng: jax.Array,
    sharding: Any = None,
    abstract: TrainState | None = None,
) -> TrainState:
    """A fresh state, placed with `sharding`. Not jittable: `models.init_variables` draws the
    parameters eagerly, where `jax.jit(model.init)` would compile one kernel per parameter.
    `abstract` (from `abstract_state`) spares tracing the network's shapes a second time."""
    init_rng, state_rng = jax.random.split(rng)
    shapes = None if abstract is None else {"params": abstract.params, "batch_stats": abstract.batch_stats}
    variables = models.init_variables(model, init_rng, image_size, shapes)
    assemble = functools.partial(assemble_state, tx, ema_batch_stats=ema_batch_stats)
    assemble = jax.jit(assemble, in_shardings=sharding, out_shardings=sharding)
    return assemble(variables, state_rng)


def jit_train_step(
    model: models.Inception, tx: optax.GradientTransformation, recipe: Recipe, replicated: Any, batch_sharding: Any
) -> Any:
    """`train_step` jitted as training runs it: the state replicated and donated, the batch split.

    The one definition that `train.py` runs and `compile_check` compiles for hardware not here."""
    return jax.jit(
        functools.partial(train_step, model=model, tx=tx, recipe=recipe),
        in_shardings=(replicated, batch_sharding),
        out_shardings=(replicated, replicated, replicated),
        donate_argnums=0,
    )


def train_step(
    state: TrainState,
    batch: Mapping[str, jax.Array],
    *,
    model: models.Inception,
    tx: optax.GradientTransformation,
    recipe: Recipe,
) -> tuple[TrainState, TrainMetrics, jax.Array]:
    """One step of `recipe` (its numbers: the loss, the schedule, the EMA decay); a non-finite loss
    or gradient leaves the state unchanged and returns finite=False."""
    dropout_rng = jax.random.fold_in(jax.random.wrap_key_data(state.rng), state.step)
    num_classes = model.num_classes

    def loss_fn(params):
        out, updates = model.apply(
            {"params": params, "batch_stats": state.batch_stats},
            batch["image"],
            train=True,
            rngs={"dropout": dropout_rng},
            mutable=["batch_stats"],
        )
        logits, aux = out if isinstance(out, tuple) else (out, None)
        loss = jnp.mean(cross_entropy(logits, batch["label"], num_classes, recipe.label_smoothing))
        if aux is not None:
            aux_loss = jnp.mean(cross_entropy(aux, batch["label"], num_classes, recipe.label_smoothing))
            loss = loss + recipe.aux_loss_weight * aux_loss
        l2 = l2_loss(params, recipe.weight_decay_biases)
        return loss + recipe.weight_decay * l2, (loss, l2, logits, updates["batch_stats"])

    grads, (loss, l2, logits, batch_stats) = jax.grad(loss_fn, has_aux=True)(state.params)
    grad_norm = optax.global_norm(grads)
    # A finite gradient norm bounds the update (clipping, RMSProp and SGD only rescale the
    # gradient), so the loss and the norm decide. The state moves under `lax.cond` rather than
    # being selected leaf by leaf after the update: XLA then updates it in place, without a second
    # copy of the state to choose from (less scratch memory, fewer fusions, a faster compile, the
    # same values; figures in docs/performance.md).
    finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)

    def update(state: TrainState) -> TrainState:
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        decay = recipe.ema_decay_at(state.step + 1)

        def average(old, new):
            return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p, old, new)

        ema_stats = None if state.ema_batch_stats is None else average(state.ema_batch_stats, batch_stats)
        return state.replace(
            step=state.step + 1,
            params=params,
            batch_stats=batch_stats,
            opt_state=opt_state,
            ema_params=average(state.ema_params, params),
            ema_batch_stats=ema_stats,
        )

    new_state = jax.lax.cond(finite, update, lambda state: state, state)
    step_metrics = TrainMetrics.single_from_model_output(
        loss=loss,
        l2_loss=l2,
        top1=topk_correct(logits, batch["label"], 1),
        top5=topk_correct(logits, batch["label"], 5),
        grad_norm=grad_norm,
        learning_rate=recipe.learning_rate(state.step),
    )
    return new_state, step_metrics, finite
