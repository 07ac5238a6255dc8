"""How much of a run's validation error is its BatchNorm statistics (`scripts/bn_check.py`).

A study curve scores each evaluation with the moving BatchNorm averages training kept. For a network
whose blocks feed each other without shortcuts, small errors in those averages can compound through
the depth, so a curve may show an error the weights do not have. This scores one checkpoint of a run
on its validation split and on its training split (central crop), each with the kept statistics and
with statistics recomputed over whole epochs of its training batches
(`evaluation.batch_stats.population_batch_stats`).
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import ml_collections

from inception_flax import checkpoint, data, evaluation
from inception_flax.evaluation.batch_stats import population_batch_stats
from inception_flax.preflight import pipeline_config


def check_run(workdir: str, step: int | None = None, epochs: int = 1) -> dict[str, Any]:
    """Top-1 error and loss of a run's checkpoint (newest unless `step`) four ways.

    Keys `validation` and `train`, each with `kept` (the moving averages) and `recomputed`
    (population statistics over `epochs` epochs of the run's own augmented training batches), plus
    the checkpoint's `step`. The parameters are the ones the run evaluated (raw or EMA, its config's
    `eval_with_ema`).
    """
    if epochs < 1:
        raise ValueError(f"epochs={epochs}: at least one epoch of batches is needed.")
    info = checkpoint.describe(workdir, step)
    if info.kind != "workdir" or info.config is None:
        raise ValueError(f"{workdir} is not a training workdir with a recorded config.")
    config = ml_collections.ConfigDict(info.config)
    model, variables, info = checkpoint.load_with_info(workdir, step, ema=bool(config.eval_with_ema))
    source = data.get_source(config.dataset, config.data_dir or None, config.train_split)
    pcfg = pipeline_config(config)
    steps_per_epoch = source.num_examples(config.train_split) // config.batch_size
    batches = itertools.islice(data.train_iterator(source, pcfg, steps_per_epoch), epochs * steps_per_epoch)
    recomputed = {**variables, "batch_stats": population_batch_stats(model, variables, batches, config.seed)}
    evaluator = evaluation.Evaluator(model)
    result: dict[str, Any] = {"step": info.step, "epochs": epochs}
    for name, split in (("validation", config.eval_split), ("train", config.train_split)):
        split_cfg = dataclasses.replace(pcfg, eval_split=split)
        result[name] = {
            kind: _scores(evaluator.run(v, source, split_cfg))
            for kind, v in (("kept", variables), ("recomputed", recomputed))
        }
    return result


def _scores(result: dict[str, float]) -> dict[str, float]:
    return {"top1_error": float(result["top1_error"]), "loss": float(result["loss"])}


def markdown(result: dict[str, Any]) -> str:
    """The four scores as a table."""
    lines = [
        f"Step {result['step']}; recomputed statistics over {result['epochs']} epoch(s) of training batches.",
        "",
        "| split | BatchNorm statistics | top-1 error | loss |",
        "|---|---|---|---|",
    ]
    for split in ("validation", "train"):
        for kind, label in (("kept", "moving averages (as trained)"), ("recomputed", "recomputed")):
            s = result[split][kind]
            lines.append(f"| {split} | {label} | {100 * s['top1_error']:.1f}% | {s['loss']:.4g} |")
    return "\n".join(lines)
