"""Evaluate a training workdir or converted weights: what `scripts/evaluate.py` runs.

Defaults come from the checkpoint: a workdir's recorded training config (dataset, data_dir,
eval split, image size), or, for converted weights, ImageNet validation at the network's native
size with the protocol its publisher measured with. Results go to stdout, to `--json`, and for
a workdir to `<workdir>/eval/<split>_<protocol>.jsonl` plus TensorBoard scalars under
`<workdir>/eval/<split>_<protocol>/`; `all_steps` evaluates every checkpoint not yet in that record.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from typing import Any

import jax
from absl import logging

from inception_flax import checkpoint, data, paths
from inception_flax.evaluation.evaluator import Evaluator
from inception_flax.evaluation.protocols import Protocol

NATIVE_IMAGE_SIZE = 299


@dataclasses.dataclass(frozen=True)
class EvalRequest:
    """What to evaluate; None means "from the checkpoint" (see the module docstring)."""

    checkpoint: str
    step: int | None = None
    ema: bool = True
    dataset: str | None = None
    split: str | None = None
    data_dir: str | None = None
    image_size: int | None = None
    batch_size: int | None = None
    protocol: str = "central"
    crop_fraction: float | None = None
    interpolation: str | None = None
    resize: str | None = None
    views_per_step: int | None = None
    exclude_list: str | None = None
    all_steps: bool = False


def read_exclude_list(path: str) -> list[str]:
    """Ids to leave out: ImageNet validation numbers (1-based, as in the ILSVRC-2014 blacklist) or file names."""
    ids = []
    for line in paths.read_text(path).splitlines():
        token = line.split("#", 1)[0].strip()
        if not token:
            continue
        ids.append(f"ILSVRC2012_val_{int(token):08d}.JPEG" if token.isdigit() else token.rsplit("/", 1)[-1])
    return ids


def _protocol(request: EvalRequest, info: checkpoint.CheckpointInfo) -> Protocol:
    defaults = dict(info.meta.get("eval_defaults", {})) if info.kind == "weights" else {}
    overrides = {"crop_fraction": request.crop_fraction, "interpolation": request.interpolation}
    overrides["resize"] = request.resize
    defaults |= {k: v for k, v in overrides.items() if v is not None}
    return Protocol(request.protocol, **defaults)


def _settings(request: EvalRequest, info: checkpoint.CheckpointInfo) -> dict[str, Any]:
    config = info.config or {}
    if info.kind == "workdir" and not config:
        logging.warning("%s records no training config (an older run): using ImageNet defaults.", info.path)
    dataset = request.dataset or config.get("dataset") or "imagenet2012"
    return {
        "dataset": dataset,
        "data_dir": request.data_dir or config.get("data_dir") or None,
        "split": request.split or config.get("eval_split") or "validation",
        "image_size": request.image_size or config.get("image_size") or NATIVE_IMAGE_SIZE,
    }


def _default_batch(protocol: Protocol, views_per_step: int | None) -> int:
    chunk = min(protocol.num_views, views_per_step or 12)
    devices = jax.device_count()
    return max(devices, (64 // chunk) // devices * devices)


def _label_offset(info: checkpoint.CheckpointInfo, num_outputs: int, source: data.Source) -> int:
    offset = 1 if info.meta.get("background_class") and num_outputs == source.num_classes + 1 else 0
    if num_outputs - offset != source.num_classes:
        raise ValueError(
            f"The checkpoint's classifier has {num_outputs} outputs but {source.name} has "
            f"{source.num_classes} classes; evaluate it on a dataset with the same classes (--dataset)."
        )
    return offset


def record_path(workdir: str, split: str, protocol: Protocol, ema: bool) -> str:
    tag = re.sub(r"[^\w.-]+", "_", f"{split}_{protocol.tag}{'' if ema else '_noema'}").strip("_")
    return paths.join(workdir, "eval", tag)


def _done_steps(record: str) -> set[int]:
    if not paths.path(f"{record}.jsonl").exists():
        return set()
    return {json.loads(line)["step"] for line in paths.read_text(f"{record}.jsonl").splitlines() if line.strip()}


def evaluate(request: EvalRequest) -> list[dict[str, Any]]:
    """Evaluates the checkpoint(s) `request` names; returns one result dict per evaluated step."""
    info = checkpoint.describe(request.checkpoint, request.step)
    protocol = _protocol(request, info)
    settings = _settings(request, info)
    batch = request.batch_size or _default_batch(protocol, request.views_per_step)
    if batch % jax.device_count():
        raise ValueError(f"--batch_size={batch} must be divisible by the {jax.device_count()} devices.")
    model = info.create_model()
    if settings["image_size"] < model.min_input_size:
        raise ValueError(
            f"--image_size={settings['image_size']} is below {info.model}'s minimum {model.min_input_size}."
        )
    source = data.get_source(settings["dataset"], settings["data_dir"], data_dir_flag="--data_dir")
    label_offset = _label_offset(info, model.num_classes, source)
    exclude = read_exclude_list(request.exclude_list) if request.exclude_list else []
    pcfg = data.PipelineConfig(
        image_size=settings["image_size"],
        global_batch=batch,
        eval_split=settings["split"],
        process_index=jax.process_index(),
        process_count=jax.process_count(),
    )
    source.num_examples(pcfg.eval_split)  # an unknown split fails here, before compiling
    evaluator = Evaluator(model, protocol, views_per_step=request.views_per_step, label_offset=label_offset)

    steps: list[int | None] = [info.step]
    record = None
    if info.kind == "workdir":
        record = record_path(info.path, settings["split"], protocol, request.ema)
        if request.all_steps:
            done = _done_steps(record)
            steps = [s for s in checkpoint.steps(info.path) if s not in done]
            logging.info("%d checkpoint(s) to evaluate (%d already in %s.jsonl).", len(steps), len(done), record)
    results = []
    for step in steps:
        start = time.time()
        _, variables, loaded = checkpoint.load_with_info(info.path, step, request.ema)
        if (loaded.model, loaded.options) != (info.model, info.options):
            raise ValueError(f"Step {loaded.step} of {info.path} holds another model than step {info.step}.")
        metrics = evaluator.run(variables, source, pcfg, exclude)
        result = {
            "checkpoint": info.path,
            "kind": info.kind,
            "model": info.model,
            "step": loaded.step,
            "ema": request.ema if info.kind == "workdir" else None,
            **settings,
            "protocol": dataclasses.asdict(protocol),
            "batch_size": batch,
            **metrics,
            "seconds": time.time() - start,
        }
        if record is not None and jax.process_index() == 0:
            _write_record(record, result)
        results.append(result)
    return results


def _write_record(record: str, result: dict[str, Any]) -> None:
    from clu import metric_writers

    paths.append_text(f"{record}.jsonl", json.dumps(result) + "\n")
    writer = metric_writers.create_default_writer(record, asynchronous=False)
    keys = ("top1", "top5", "top1_error", "top5_error", "loss", "num_examples")
    writer.write_scalars(result["step"], {f"eval_{k}": result[k] for k in keys})
    writer.close()


def format_table(results: list[dict[str, Any]]) -> str:
    """A readable table: one row per evaluated checkpoint."""
    header = (
        f"{'step':>8}  {'top-1':>7}  {'top-5':>7}  {'top-1 err':>9}  {'top-5 err':>9}  {'loss':>7}  {'examples':>8}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        step = "-" if r["step"] is None else str(r["step"])
        lines.append(
            f"{step:>8}  {r['top1']:>7.2%}  {r['top5']:>7.2%}  {r['top1_error']:>9.2%}  {r['top5_error']:>9.2%}  "
            f"{r['loss']:>7.4f}  {int(r['num_examples']):>8d}"
        )
    if results:
        r = results[-1]
        p = r["protocol"]
        resize = f"{p['resize']}, " if p["name"] == "central" else ""  # multi-crop always resizes the shorter side
        lines.append(
            f"{r['model']} on {r['dataset']} {r['split']} at {r['image_size']}px, protocol {p['name']} "
            f"(crop {p['crop_fraction']:g}, {resize}{p['interpolation']}); "
            f"excluded {int(r['excluded'])}, undecodable {int(r['skipped_images'])}"
        )
    return "\n".join(lines)
