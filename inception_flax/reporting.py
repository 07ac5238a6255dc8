"""What the training loop reports: progress, training and evaluation scalars, the loss history.

Scalars go to TensorBoard (clu's writer, process 0 only) and, for tools that read curves back
without TensorFlow (the ablation), to `metrics.jsonl` (`metrics_log`). Every write passes through
the workdir's storage-error translation (`storage.Writes`), so a full disk ends training with one line.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import ml_collections
from absl import logging
from clu import metric_writers, parameter_overview, periodic_actions

from inception_flax import metrics_log, storage


class Reporter:
    def __init__(
        self,
        config: ml_collections.ConfigDict,
        workdir: str,
        writes: storage.Writes,
        total_steps: int,
        steps_per_epoch: int,
    ):
        self.config, self.workdir, self.writes = config, workdir, writes
        self.total_steps, self.steps_per_epoch = total_steps, steps_per_epoch
        self.is_main = jax.process_index() == 0
        self.writer = metric_writers.create_default_writer(workdir, just_logging=not self.is_main, asynchronous=True)
        self.history: list[tuple[int, float]] = []  # (step, mean train loss since the previous log)
        self.hooks: list[periodic_actions.PeriodicAction] = []
        self.train_metrics = None
        self.last_log = (time.time(), 0)

    def begin(self, step: int, params: Any = None) -> None:
        """At the start of a run (with its parameters) or after a rewind (without): fresh progress
        hooks, which expect increasing steps. A fresh run also records its settings and parameters."""
        first = params is not None
        self.hooks = [
            periodic_actions.ReportProgress(
                num_train_steps=self.total_steps, writer=self.writer, every_steps=self.config.log_every_steps
            )
        ]
        if first and self.is_main and self.config.profile:
            self.hooks.append(
                periodic_actions.Profile(logdir=self.workdir, num_profile_steps=5, first_profile=step + 10)
            )
        self.train_metrics, self.last_log = None, (time.time(), step)
        if first and step == 0 and self.is_main:
            hparams = {k: v for k, v in self.config.to_dict().items() if not isinstance(v, dict | list | tuple)}
            with self.writes.writing("Writing TensorBoard summaries", self.workdir):
                self.writer.write_hparams(hparams)
            logging.info("%s", parameter_overview.get_parameter_overview(params, include_stats=False))

    def step(self, step: int, metrics: Any) -> None:
        self.train_metrics = metrics if self.train_metrics is None else self.train_metrics.merge(metrics)
        for hook in self.hooks:
            hook(step)

    def train(self, step: int, skipped_images: int) -> None:
        """The training scalars averaged since the last call, with the throughput."""
        now = time.time()
        summary = {f"train_{k}": v for k, v in self.train_metrics.compute().items()}
        summary["images_per_second"] = (
            (step - self.last_log[1]) * self.config.batch_size / max(now - self.last_log[0], 1e-9)
        )
        summary["skipped_images"] = skipped_images
        self.write(step, summary)
        self.history.append((step, float(summary["train_loss"])))
        self.train_metrics, self.last_log = None, (now, step)

    def eval(self, step: int, result: dict[str, Any]) -> None:
        self.write(step, {f"eval_{k}": v for k, v in result.items()})

    def write(self, step: int, scalars: dict[str, Any]) -> None:
        with self.writes.writing("Writing metrics", self.workdir):
            self.writer.write_scalars(step, scalars)
            if self.is_main:
                metrics_log.append(self.workdir, step, step / self.steps_per_epoch, scalars)

    def flush(self) -> None:
        with self.writes.writing("Writing metrics", self.workdir):
            self.writer.flush()

    def close(self) -> None:
        """Closes the writer; after a storage error already raised, a second one is only logged."""
        already_failed = self.writes.failed
        try:
            with self.writes.writing("Writing TensorBoard summaries", self.workdir):
                self.writer.close()
        except Exception as e:
            if not already_failed:
                raise
            logging.warning("After the storage error, closing the metric writer also failed: %s", str(e)[:300])
