r"""Train and evaluate a network: the main job.

    python scripts/train.py --config configs/demo.py --workdir /tmp/demo
    python scripts/train.py --config configs/inception_v4.py --workdir DIR --config.batch_size=4096

Rerunning the same command resumes from the newest good checkpoint in --workdir. Multi-host:
add --jax_distributed on every host (TPU pods and SLURM are detected; elsewhere also pass
--coordinator_address, --num_processes and --process_id).
"""

import os
from collections.abc import Sequence

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()  # before jax is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import jax  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from ml_collections import config_flags  # noqa: E402

from inception_flax import config_base, data, faults, preflight, storage, train  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file.", lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Checkpoints and TensorBoard logs; resumed when it exists.")
_DISTRIBUTED = flags.DEFINE_bool("jax_distributed", False, "Call jax.distributed.initialize() (multi-host).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "host:port of process 0 (multi-host, not TPU).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes (multi-host, not TPU).")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index (multi-host, not TPU).")
_INIT_TIMEOUT = flags.DEFINE_integer(
    "initialization_timeout", 300, "Seconds to wait for every process to join (multi-host), then exit non-zero."
)
_HEARTBEAT = flags.DEFINE_integer(
    "heartbeat_timeout",
    100,
    "Seconds without a heartbeat after which jax's coordination service declares a process dead and "
    "stops the others (multi-host): bounds how long survivors of a crashed worker wait.",
)
_SHUTDOWN = flags.DEFINE_integer(
    "shutdown_timeout", 300, "Seconds a finishing process waits for the others at the final barrier (multi-host)."
)
_START_OVER = flags.DEFINE_bool(
    "start_over",
    False,
    "When --workdir has checkpoints and none restores (all damaged), move them to checkpoints_unreadable/ "
    "and train from scratch; without it the job stops and moves nothing.",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    runtime.check_checkout(__file__)
    logging.get_absl_handler().addFilter(runtime.QuietLibraries())
    runtime.quiet_abandoned_writes()
    tf.config.set_visible_devices([], "GPU")  # tf.data only; keep TensorFlow off the accelerators
    config = _CONFIG.value
    try:  # before joining the other processes: a bad value fails at once, on its own
        config_base.check(config)
        preflight.check_paths(config, _WORKDIR.value)
    except config_base.ConfigError as e:
        raise SystemExit(f"error: {e}") from None
    if _DISTRIBUTED.value:
        jax.distributed.initialize(
            coordinator_address=_COORDINATOR.value,
            num_processes=_NUM_PROCESSES.value,
            process_id=_PROCESS_ID.value,
            initialization_timeout=_INIT_TIMEOUT.value,
            heartbeat_timeout_seconds=_HEARTBEAT.value,
            shutdown_timeout_seconds=_SHUTDOWN.value,
        )
    train.enable_compilation_cache(config.compilation_cache_dir)
    logging.info(
        "JAX process %d/%d, %d local devices", jax.process_index(), jax.process_count(), jax.local_device_count()
    )
    several = jax.process_count() > 1
    watch = faults.PeerWatch()  # another process that fails stops this one within a second
    try:
        plan = preflight.check_setting(config, _WORKDIR.value)  # the fields were checked above
        result = train.train_and_evaluate(config, _WORKDIR.value, plan=plan, start_over=_START_OVER.value)
    except (
        config_base.ConfigError,
        data.DatasetNotPreparedError,
        faults.NonFiniteError,
        storage.StorageError,
        storage.RestoreError,
    ) as e:
        logging.error("%s", e)
        if several:
            faults.fail_processes(str(e))
        raise SystemExit(f"error: {e}") from None
    except Exception as e:
        if several:  # the one full traceback, then the others are told
            logging.exception("Process %d failed", jax.process_index())
            faults.fail_processes(f"{type(e).__name__}: {e}")
        raise
    watch.stop()
    logging.info("Finished: %s", result)


if __name__ == "__main__":
    app.run(main)
