r"""Where a study run's time goes: two runs of one arm (seeds 0 and 1) in one process, with phase timers.

    python scripts/study_overhead.py --config configs/ablation.py --arm v4 --workdir /tmp/overhead

The first run starts with an empty XLA compilation cache (in `<workdir>_cache`), the second reads it.
Each phase is the wall time of the loop's functions that do it (wrapped with timers, no profiler);
"train steps and the loop" is the rest. Results: docs/ablation/overhead.md.
"""

import collections
import functools
import os
import time
from collections.abc import Sequence

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()  # before jax is imported

from absl import app, flags, logging  # noqa: E402

from inception_flax import checkpoint, data, evaluation, preflight, train  # noqa: E402
from inception_flax.ablation import runner  # noqa: E402

_CONFIG = flags.DEFINE_string("config", "configs/ablation.py", "The study's config file.")
_ARM = flags.DEFINE_string("arm", "v4", "The arm to run.")
_SCALE = flags.DEFINE_string("scale", "cpu", "The arm's scale.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the two runs go (must not hold them yet).")
flags.mark_flags_as_required(["workdir"])

PHASES = collections.Counter()
_ACTIVE: list[str] = []  # the phase being timed: a timed call inside it counts as that phase only


def _time(owner, name: str, phase: str) -> None:
    inner = getattr(owner, name)

    @functools.wraps(inner)
    def timed(*args, **kwargs):
        if _ACTIVE:  # e.g. the evaluator inside test scoring
            return inner(*args, **kwargs)
        _ACTIVE.append(phase)
        start = time.perf_counter()
        try:
            return inner(*args, **kwargs)
        finally:
            PHASES[phase] += time.perf_counter() - start
            _ACTIVE.pop()

    setattr(owner, name, timed)


def _instrument() -> None:
    _time(train, "_compile", "train step trace+compile")
    _time(evaluation.Evaluator, "run", "periodic evaluation")
    for name in ("save", "close", "check"):
        _time(checkpoint.Checkpointer, name, "checkpoints")
    _time(runner, "score_test", "test scoring")
    _time(preflight, "validate", "preflight")
    _time(train, "restore_or_init", "init/restore")
    _time(train, "abstract_state", "init/restore")
    batches = data.train_iterator

    def waited(*args, **kwargs):
        stream = batches(*args, **kwargs)
        while True:
            start = time.perf_counter()
            batch = next(stream)
            PHASES["waiting for the next batch"] += time.perf_counter() - start
            yield batch

    data.train_iterator = waited


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.set_verbosity(logging.WARNING)
    module = runner.load_config_module(_CONFIG.value)
    workdir, cache = _WORKDIR.value, _WORKDIR.value.rstrip("/") + "_cache"
    runs = []
    for seed in (0, 1):
        config = module.get_config(f"{_ARM.value},{_SCALE.value}")
        config.seed, config.compilation_cache_dir = seed, cache
        runs.append((_ARM.value, seed, config))
    if os.path.exists(workdir) or os.path.exists(cache):
        raise SystemExit(f"error: {workdir} or {cache} exists; the first run must start from nothing.")
    _instrument()
    train.enable_compilation_cache(cache)
    for i in range(2):
        PHASES.clear()
        start = time.perf_counter()
        runner.run_study(workdir, runs[: i + 1], test_split="test")
        total = time.perf_counter() - start
        PHASES["train steps and the loop"] = total - sum(PHASES.values())
        print(f"run {i} (seed {i}, {'empty' if i == 0 else 'warm'} compilation cache): {total:.1f} s")
        for phase, seconds in PHASES.most_common():
            print(f"   {phase:38s} {seconds:6.1f} s  {100 * seconds / total:5.1f}%")


if __name__ == "__main__":
    app.run(main)
