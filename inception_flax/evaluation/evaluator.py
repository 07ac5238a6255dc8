"""Evaluation of a network on a dataset split: every example exactly once, any batch and device count.

The input pipeline gives each example as [views, h, w, 3] (one view for the central crop). The
views go through the jitted network `views_per_step` at a time, so memory stays bounded for the
144-crop protocol, and the softmax outputs are averaged over the views in log space
(log-mean-exp of the log-probabilities). Sums are reduced on device and added up on the host in
float64; padded and excluded examples carry `mask` 0 and are not counted.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from inception_flax import data, faults, models
from inception_flax.evaluation.protocols import Protocol
from inception_flax.mesh import make_mesh, shardings, to_global
from inception_flax.scoring import topk_correct


class Evaluator:
    """Compiled evaluation of one model under one protocol; reuse it across checkpoints.

    `label_offset` is added to the dataset's labels: 1 for TF-slim's 1001-class checkpoints, whose
    logit 0 is a background class, evaluated on 1000-class ImageNet. `cache_bytes`: a split whose
    prepared batches take at most this many bytes (in this process) is read and decoded once and
    kept in host memory for the evaluator's later runs (the training loop's periodic evaluation of
    a small split, where decoding costs more than the network); larger splits are read every time.
    """

    def __init__(
        self,
        model: models.Inception,
        protocol: Protocol | None = None,
        mesh: Mesh | None = None,
        views_per_step: int | None = None,
        label_offset: int = 0,
        cache_bytes: int = 0,
    ):
        self.model = model
        self.cache_bytes = cache_bytes
        self._kept: dict[tuple, list[dict[str, np.ndarray]]] = {}
        self.protocol = protocol = protocol or Protocol()
        self.mesh = mesh or make_mesh()
        self.label_offset = label_offset
        views = protocol.num_views
        # Default chunk: all views for up to 12 (the central crop, 10-crop), else 12 at a time.
        self.views_per_step = min(views, views_per_step or (views if views <= 12 else 12))
        self.replicated, self.sharded = shardings(self.mesh)
        self._add_views = jax.jit(
            self._add_views_impl,
            in_shardings=(self.replicated, self.sharded, self.sharded),
            out_shardings=self.sharded,
            donate_argnums=2,
        )
        self._summarize = jax.jit(self._summarize_impl, out_shardings=self.replicated)
        self._synced = False

    @functools.lru_cache  # noqa: B019 (one entry per batch size; the evaluator lives as long as its job)
    def _empty_fn(self, batch: int):
        shape = (batch, self.model.num_classes)
        return jax.jit(functools.partial(jnp.full, shape, -jnp.inf, jnp.float32), out_shardings=self.sharded)

    def _empty(self, batch: int) -> jax.Array:
        return self._empty_fn(batch)()

    def _add_views_impl(self, variables: Any, images: jax.Array, acc: jax.Array) -> jax.Array:
        b, v = images.shape[:2]
        logits = self.model.apply(variables, images.reshape((b * v, *images.shape[2:])), train=False)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32)).reshape(b, v, -1)
        return jnp.logaddexp(acc, jax.nn.logsumexp(logp, axis=1))

    def _summarize_impl(self, acc, labels, mask, excluded) -> dict[str, jax.Array]:
        logp = acc - math.log(self.protocol.num_views)  # log of the view-averaged probabilities
        labels = labels + self.label_offset
        loss = -jnp.take_along_axis(logp, labels[:, None], axis=-1)[:, 0]
        return {
            "loss": jnp.sum(loss * mask),
            "top1": jnp.sum(topk_correct(logp, labels, 1) * mask),
            "top5": jnp.sum(topk_correct(logp, labels, 5) * mask),
            "count": jnp.sum(mask),
            "excluded": jnp.sum(excluded),
        }

    def _batch_sums(self, variables: Any, batch: Mapping[str, np.ndarray]) -> dict[str, float]:
        images = batch["image"]
        if images.ndim == 4:  # a pipeline without views
            images = images[:, None]
        acc = self._empty(images.shape[0] * jax.process_count())
        step = self.views_per_step
        for v in range(0, images.shape[1], step):
            acc = self._add_views(variables, to_global({"x": images[:, v : v + step]}, self.sharded)["x"], acc)
        if not self._synced:  # every process has compiled the network before the first collective
            faults.sync_processes("eval_compiled")
            self._synced = True
        rest = to_global({k: batch[k] for k in ("label", "mask", "excluded")}, self.sharded)
        sums = self._summarize(acc, rest["label"], rest["mask"], rest["excluded"])
        return {k: float(v) for k, v in jax.device_get(sums).items()}

    def run(
        self, variables: Any, source: data.Source, pcfg: data.PipelineConfig, exclude: Sequence[str] = ()
    ) -> dict[str, float]:
        """Top-1/top-5 accuracy and error, mean loss and counts over `pcfg.eval_split`."""
        variables = jax.device_put(variables, self.replicated)
        preprocess = functools.partial(self.protocol.views, size=pcfg.image_size)
        totals = dict.fromkeys(("loss", "top1", "top5", "count", "excluded"), 0.0)
        for batch in self._batches(source, pcfg, preprocess, tuple(exclude)):
            for k, v in self._batch_sums(variables, batch).items():
                totals[k] += v
        n = totals["count"]
        result = {k: totals[k] / max(n, 1.0) for k in ("loss", "top1", "top5")}
        result |= {"top1_error": 1.0 - result["top1"], "top5_error": 1.0 - result["top5"]}
        result["num_examples"] = n
        result["excluded"] = totals["excluded"]
        # Examples of the split that could not be decoded (dropped by the pipeline, not counted).
        result["skipped_images"] = source.num_examples(pcfg.eval_split) - n - totals["excluded"]
        return result

    def _batches(self, source: data.Source, pcfg: data.PipelineConfig, preprocess: Any, exclude: tuple[str, ...]):
        """The split's batches: from memory when an earlier run kept them (see `cache_bytes`)."""
        key = (source.name, pcfg, exclude)  # the protocol is the evaluator's own
        if key in self._kept:
            yield from self._kept[key]
            return
        kept: list[dict[str, np.ndarray]] | None = [] if self.cache_bytes > 0 else None
        size = 0
        for batch in data.eval_iterator(source, pcfg, preprocess=preprocess, exclude=exclude):
            if kept is not None:
                size += sum(v.nbytes for v in batch.values())
                if size <= self.cache_bytes:
                    kept.append(batch)
                else:
                    kept = None
            yield batch
        if kept is not None:
            self._kept[key] = kept
