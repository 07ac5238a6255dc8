"""Why a run stalls, read from one checkpoint (`scripts/diagnose_run.py`).

Three questions a curve cannot answer. Have the weights grown away from their initialisation? Behind
BatchNorm a layer's output ignores the scale of its kernel, but its effective step shrinks as the
squared norm grows, so a network whose weights grew tenfold learns as if at a tenth of its rate
(`weight_growth`: each top-level module's squared kernel norm now and at the run's own
initialisation, redrawn from its seed). And is the validation error the weights' or the moving
BatchNorm averages'? In a network without shortcuts each layer's error in its statistics compounds
through the next (`check_bn`: the checkpoint scored on its validation and training splits with the
kept statistics and with statistics recomputed over epochs of its training batches,
`evaluation.batch_stats.population_batch_stats`). And does the input still reach the head, or does
every image give the same output from some block on (`signal`)?
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import jax
import ml_collections
import numpy as np

from inception_flax import checkpoint, data, evaluation, models
from inception_flax.evaluation.batch_stats import population_batch_stats
from inception_flax.preflight import pipeline_config


@dataclasses.dataclass(frozen=True)
class Run:
    """One checkpoint of a training run, read once for every check."""

    config: ml_collections.ConfigDict
    model: models.Inception
    variables: dict[str, Any]  # the parameters the run evaluated (raw or EMA) and their statistics
    step: int
    modules: tuple[str, ...]  # top-level modules in the order the network runs them


def load(workdir: str, step: int | None = None) -> Run:
    """A run's checkpoint (newest unless `step`) with the config it recorded."""
    info = checkpoint.describe(workdir, step)
    if info.kind != "workdir" or info.config is None:
        raise ValueError(f"{workdir} is not a training workdir with a recorded config.")
    config = ml_collections.ConfigDict(info.config)
    model, variables, info = checkpoint.load_with_info(workdir, step, ema=bool(config.eval_with_ema))
    order = dict.fromkeys(layer.path[0] for layer in models.trace_layers(model, config.image_size))
    return Run(config, model, variables, info.step, tuple(order))


def _table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = [title, "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def _train_batches(config: ml_collections.ConfigDict) -> tuple[data.Source, Any, Iterator[dict[str, np.ndarray]], int]:
    """(source, pipeline config, the run's training batches from its first step, steps per epoch)."""
    source = data.get_source(config.dataset, config.data_dir or None, config.train_split)
    pcfg = pipeline_config(config)
    steps_per_epoch = source.num_examples(config.train_split) // config.batch_size
    return source, pcfg, data.train_iterator(source, pcfg, steps_per_epoch), steps_per_epoch


def _kernel_norms(params: Any) -> dict[str, float]:
    norms: dict[str, float] = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(params):
        if path[-1].key == "kernel":
            top = path[0].key
            norms[top] = norms.get(top, 0.0) + float(np.sum(np.square(np.asarray(leaf, np.float64))))
    return norms


def weight_growth(run: Run) -> dict[str, Any]:
    """Squared kernel norm of each top-level module at the checkpoint and at initialisation.

    The initial weights are drawn again exactly as training drew them (`step.init_state`: the first
    half of `jax.random.key(config.seed)` split in two). Returns `{"step", "modules": {name: (init,
    now)}}` in the network's order.
    """
    init_rng, _ = jax.random.split(jax.random.key(run.config.seed))
    initial = models.init_variables(run.model, init_rng, run.config.image_size)
    before, after = _kernel_norms(initial["params"]), _kernel_norms(run.variables["params"])
    return {"step": run.step, "modules": {name: (before[name], after[name]) for name in run.modules}}


def growth_markdown(result: dict[str, Any]) -> str:
    """The modules as a table, with the whole network's ratio first."""
    modules = result["modules"]
    init, now = (sum(v[i] for v in modules.values()) for i in (0, 1))
    rows = [("all", init, now)] + [(name, a, b) for name, (a, b) in modules.items()]
    return _table(
        f"Step {result['step']}: squared kernel norm now / at initialisation.",
        ("module", "at initialisation", "now", "ratio"),
        ((name, f"{a:.4g}", f"{b:.4g}", f"{b / a:.2f}") for name, a, b in rows),
    )


def _spread(y: np.ndarray) -> tuple[float, float]:
    """(fraction of exact zeros, mean over units of the std across images / mean |activation|)."""
    flat = y.reshape(y.shape[0], -1).astype(np.float64)
    scale = float(np.mean(np.abs(flat)))
    return float(np.mean(flat == 0.0)), float(np.mean(np.std(flat, axis=0)) / scale) if scale > 0 else 0.0


def signal(run: Run) -> dict[str, Any]:
    """Does the input still reach the head? Each top-level module's output on one training batch.

    Per module, in training mode (the batch's own BatchNorm statistics) and in evaluation mode (the
    kept moving averages): the fraction of exact zeros, and the spread across images (the standard
    deviation over the batch of each output unit, averaged over units, relative to the mean absolute
    activation). A spread near 0 means every image gives the same output there: whatever the layers
    above learn, they cannot tell the images apart. Returns `{"step", "modules": {name: {"train":
    (zeros, spread), "eval": (zeros, spread)}}}` in the network's order.
    """
    image = jax.numpy.asarray(next(_train_batches(run.config)[2])["image"])
    top_level = lambda module, _: len(module.path) == 1  # noqa: E731
    out: dict[str, dict[str, tuple[float, float]]] = {}
    for mode, train in (("train", True), ("eval", False)):
        _, state = run.model.apply(
            run.variables,
            image,
            train=train,
            rngs={"dropout": jax.random.key(0)},
            capture_intermediates=top_level,
            mutable=["intermediates", "batch_stats"],
        )
        for name, captured in state["intermediates"].items():
            if isinstance(captured, Mapping) and "__call__" in captured:  # not the features the network sows
                out.setdefault(name, {})[mode] = _spread(np.asarray(captured["__call__"][0]))
    return {"step": run.step, "modules": {name: out[name] for name in run.modules if name in out}}


def signal_markdown(result: dict[str, Any]) -> str:
    return _table(
        f"Step {result['step']}: each module's output on one training batch; spread = std across images / mean |x|.",
        ("module", "zeros (train mode)", "spread (train mode)", "zeros (eval mode)", "spread (eval mode)"),
        (
            (name, f"{m['train'][0]:.2f}", f"{m['train'][1]:.2g}", f"{m['eval'][0]:.2f}", f"{m['eval'][1]:.2g}")
            for name, m in result["modules"].items()
        ),
    )


def check_bn(run: Run, epochs: int = 1) -> dict[str, Any]:
    """Top-1 error and loss of the checkpoint four ways.

    Keys `validation` and `train`, each with `kept` (the moving averages) and `recomputed`
    (population statistics over `epochs` epochs of the run's own augmented training batches), plus
    the checkpoint's `step`. The parameters are the ones the run evaluated (raw or EMA, its config's
    `eval_with_ema`).
    """
    if epochs < 1:
        raise ValueError(f"epochs={epochs}: at least one epoch of batches is needed.")
    config, variables = run.config, run.variables
    source, pcfg, stream, steps_per_epoch = _train_batches(config)
    batches = itertools.islice(stream, epochs * steps_per_epoch)
    recomputed = {**variables, "batch_stats": population_batch_stats(run.model, variables, batches, config.seed)}
    evaluator = evaluation.Evaluator(run.model)
    result: dict[str, Any] = {"step": run.step, "epochs": epochs}
    for name, split in (("validation", config.eval_split), ("train", config.train_split)):
        split_cfg = dataclasses.replace(pcfg, eval_split=split)
        result[name] = {
            kind: _scores(evaluator.run(v, source, split_cfg))
            for kind, v in (("kept", variables), ("recomputed", recomputed))
        }
    return result


def _scores(result: dict[str, float]) -> dict[str, float]:
    return {"top1_error": float(result["top1_error"]), "loss": float(result["loss"])}


def bn_markdown(result: dict[str, Any]) -> str:
    """The four scores as a table."""
    labels = {"kept": "moving averages (as trained)", "recomputed": "recomputed"}
    return _table(
        f"Step {result['step']}; recomputed statistics over {result['epochs']} epoch(s) of training batches.",
        ("split", "BatchNorm statistics", "top-1 error", "loss"),
        (
            (split, label, f"{100 * result[split][kind]['top1_error']:.1f}%", f"{result[split][kind]['loss']:.4g}")
            for split in ("validation", "train")
            for kind, label in labels.items()
        ),
    )
