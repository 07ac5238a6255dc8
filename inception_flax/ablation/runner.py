"""Runs a study (arms x seeds) with the normal training loop, one workdir per run, resumably.

Layout: `<workdir>/<run>/seed<k>/` is an ordinary training workdir (checkpoints, TensorBoard,
`metrics.jsonl`) plus `run.json`, the settings it was started with, and `done.json` once finished
(with the test score when the study names a `test_split`, and `diverged` when training stopped on
a non-finite loss; its `seconds` add up every segment of a resumed run, kept in `clock.json`
meanwhile, a segment killed outright up to its last heartbeat). `<run>` is the arm, or
`<arm>@lr<rate>` in a pilot over learning rates.
Rerunning the study skips finished runs and resumes an interrupted one from its last checkpoint;
a run whose recorded settings differ from what the config asks now is refused before anything
trains, and nothing is overwritten.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import ml_collections
from absl import logging

from inception_flax import config_base, faults, metrics_log, paths, preflight, train

SETTINGS_FILE = "run.json"
DONE_FILE = "done.json"
CLOCK_FILE = "clock.json"  # wall seconds of a run's segments so far (a resumed run has several)
HEARTBEAT_SECONDS = 60.0  # how often a training segment stamps the clock file as still alive


def load_config_module(path: str):
    """A study's config file as a module (its `get_config(arm)` and `get_study(name)`)."""
    spec = importlib.util.spec_from_file_location("study_config", path)
    if spec is None or not os.path.exists(path):
        raise ValueError(f"No config file {path}.")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in the config look their module up
    spec.loader.exec_module(module)
    return module


def run_dir(workdir: str, arm: str, seed: int) -> str:
    return paths.join(workdir, arm, f"seed{seed}")


def pilot_name(arm: str, rate: float) -> str:
    return f"{arm}@lr{rate:g}"


def split_name(name: str) -> tuple[str, float | None]:
    """(arm, pilot rate or None) of a run name."""
    arm, _, rate = name.partition("@lr")
    return arm, float(rate) if rate else None


def run_configs(
    get_config: Callable[[str], ml_collections.ConfigDict], study: Any
) -> list[tuple[str, int, ml_collections.ConfigDict]]:
    """(run name, seed, config) for every run of `study`, in the order they run (seed-major).

    A study with `learning_rates` (a pilot) runs every arm at each rate, and an arm named in
    `extra_rates` also at those; one with `rate_factor` runs every arm at that multiple of its
    configured rate.
    """
    runs = []
    for seed in study.seeds:
        for arm in study.arms:
            rates = tuple(getattr(study, "learning_rates", ())) + dict(getattr(study, "extra_rates", ())).get(arm, ())
            for rate in rates or (None,):
                config = get_config(f"{arm},{study.scale}")
                config.seed = seed
                if rate is not None:
                    config.learning_rate = rate
                config.learning_rate *= getattr(study, "rate_factor", 1.0)
                runs.append((arm if rate is None else pilot_name(arm, rate), seed, config))
    return runs


def shard(runs: list, index: int, count: int) -> list:
    """Every `count`-th run from `index`: disjoint run directories for processes sharing a workdir."""
    if not 0 <= index < count:
        raise ValueError(f"shard {index}/{count}: the index must be in [0, {count}).")
    return runs[index::count]


def deal(workdir: str, runs: list[tuple[str, int, ml_collections.ConfigDict]], count: int) -> list[list[int]]:
    """The indices (in `runs`) of the runs not finished in `workdir`, dealt in turn to `count`
    workers; empty shares are dropped.

    Dealing only the unfinished runs keeps the workers even when a study resumes with a few runs
    left, where shards of the whole list (`shard`) can leave one worker idle while another trains
    several of them."""
    todo = [i for i, (arm, seed, _) in enumerate(runs) if not _finished(run_dir(workdir, arm, seed))]
    return [share for share in (todo[k::count] for k in range(count)) if share]


def select(runs: list, spec: str) -> list:
    """A worker's runs from its `--shard`: `k/N` (every N-th run from the k-th) or `i,j,...` (the
    indices its parent dealt it)."""
    if "/" in spec:
        index, _, count = spec.partition("/")
        return shard(runs, int(index), int(count))
    indices = [int(i) for i in spec.split(",")]
    if not all(0 <= i < len(runs) for i in indices):
        raise ValueError(f"--shard={spec}: the study has runs 0 to {len(runs) - 1}.")
    return [runs[i] for i in indices]


def _settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return json.loads(config.to_json_best_effort(sort_keys=True))


def check_workdir(workdir: str, runs: list[tuple[str, int, ml_collections.ConfigDict]]) -> None:
    """Refuses a study workdir whose runs were started with other settings (nothing is touched)."""
    clashes = []
    for arm, seed, config in runs:
        path = paths.join(run_dir(workdir, arm, seed), SETTINGS_FILE)
        if paths.path(path).exists():
            recorded = json.loads(paths.read_text(path))
            wanted = _settings(config)
            diff = sorted(k for k in recorded.keys() | wanted.keys() if recorded.get(k) != wanted.get(k))
            if diff:
                clashes.append(
                    f"{arm}/seed{seed} ({', '.join(f'{k}: {recorded.get(k)!r} -> {wanted.get(k)!r}' for k in diff[:4])})"
                )
    if clashes:
        raise config_base.ConfigError(
            f"{workdir} holds runs made with other settings than the config asks now: {'; '.join(clashes)}. "
            "Use another --workdir (nothing was changed)."
        )


# done.json last: a record is complete once it is there.
RECORD_FILES = (SETTINGS_FILE, metrics_log.FILE, DONE_FILE)


def _finished(path: str) -> bool:
    return paths.path(paths.join(path, DONE_FILE)).exists()


def save_record(source: str, target: str, arm: str, seed: int) -> None:
    """Copies a finished run's settings, metrics log and result between two study folders."""
    for name in RECORD_FILES:
        path = paths.join(run_dir(source, arm, seed), name)
        if paths.path(path).exists():  # a run that diverged before its first log has no metrics
            paths.write_text(paths.join(run_dir(target, arm, seed), name), paths.read_text(path))


def sync_records(records: str, workdir: str, runs: list[tuple[str, int, ml_collections.ConfigDict]]) -> int:
    """Copies every finished run kept in `records` into `workdir` and the other way; returns how
    many came from `records`. A study then spans sittings on machines that keep nothing but the
    repository: `records` (a committed folder) holds each finished run's settings, result and
    metrics log, a few kB, never checkpoints. Settings that differ from the config's are refused
    on either side before anything is copied."""
    check_workdir(records, runs)
    check_workdir(workdir, runs)
    restored = 0
    for arm, seed, _ in runs:
        kept, here = _finished(run_dir(records, arm, seed)), _finished(run_dir(workdir, arm, seed))
        if kept and not here:
            save_record(records, workdir, arm, seed)
            restored += 1
        elif here and not kept:
            save_record(workdir, records, arm, seed)
    return restored


def train_or_check(
    workdir: str,
    runs: list[tuple[str, int, ml_collections.ConfigDict]],
    report_only: bool,
    test_split: str = "",
    records: str = "",
) -> None:
    """Trains every run not finished yet or, for a report only, checks that `workdir` holds these runs.

    With `records`, finished runs kept there count as finished here, and each run finished now is
    kept there too."""
    if records:
        logging.info("%d finished runs restored from %s", sync_records(records, workdir, runs), records)
    if report_only:
        check_workdir(workdir, runs)
    else:
        train.enable_compilation_cache(runs[0][2].compilation_cache_dir)
        run_study(workdir, runs, test_split=test_split, records=records)


def score_test(path: str, config: ml_collections.ConfigDict, split: str) -> dict[str, float]:
    """The last checkpoint of a finished run on `split`, evaluated as in training (raw or EMA weights)."""
    from inception_flax.evaluation.runner import EvalRequest, evaluate

    (result,) = evaluate(
        EvalRequest(checkpoint=path, split=split, ema=config.eval_with_ema, batch_size=config.batch_size)
    )
    return {f"test_{k}": float(result[k]) for k in ("top1_error", "loss", "num_examples") if k in result}


def run_study(
    workdir: str,
    runs: list[tuple[str, int, ml_collections.ConfigDict]],
    progress: Callable[[str], None] = print,
    test_split: str = "",
    records: str = "",
) -> list[dict[str, Any]]:
    """Trains every run not finished yet, in order; returns each run's final metrics (from done.json).

    A run that stops on a non-finite loss is finished too (`diverged`: its step), not an error: in
    a study, how many runs diverge is a result. A run stopped by SIGTERM (preemption) is not: the
    study stops there, and the same command resumes it.
    """
    check_workdir(workdir, runs)
    # Every user error before the first run trains; each run then trusts its plan.
    plans = {(arm, seed): preflight.validate(config, run_dir(workdir, arm, seed)) for arm, seed, config in runs}
    results, start, trained = [], time.time(), 0
    todo = [r for r in runs if not _finished(run_dir(workdir, r[0], r[1]))]
    for i, (arm, seed, config) in enumerate(runs, 1):
        path = run_dir(workdir, arm, seed)
        done = paths.join(path, DONE_FILE)
        if paths.path(done).exists():
            results.append(json.loads(paths.read_text(done)))
            continue
        elapsed = time.time() - start
        eta = "" if not trained else f", study ETA {(elapsed / trained) * (len(todo) - trained) / 60:.1f} min"
        progress(f"[run {i}/{len(runs)}] {arm} seed {seed} in {path} ({len(todo) - trained} to train{eta})")
        paths.write_text(paths.join(path, SETTINGS_FILE), json.dumps(_settings(config), indent=1, sort_keys=True))
        segment = _Segment(path)
        try:
            result = train.train_and_evaluate(config, path, plan=plans[arm, seed])
        except faults.NonFiniteError as e:
            progress(f"{arm} seed {seed} diverged at step {e.step}: {e}")
            result = {"diverged": e.step}
        except BaseException:  # a segment that ends in an error still took its time
            segment.close()
            raise
        if result.get("preempted"):
            segment.close()
            # Not finished: no done.json, no test score, and no next run (the machine is going away).
            progress(f"{arm} seed {seed} stopped at step {result['step']} for preemption; rerun to resume.")
            return results
        if test_split and "diverged" not in result:
            result |= score_test(path, config, test_split)
        clock = segment.close()
        result = {
            "arm": arm,
            "seed": seed,
            "seconds": clock["seconds"],
            "segments": clock["segments"],
            "segments_killed": clock["killed"],
            **result,
        }
        paths.write_text(done, json.dumps(result))
        if records:
            save_record(workdir, records, arm, seed)
        results.append(result)
        trained += 1
        logging.info("Finished %s seed %d in %.0f s", arm, seed, result["seconds"])
        if result.get("stop_requested"):
            progress(f"SIGTERM during {arm} seed {seed}, which finished; stopping here: rerun to resume.")
            return results
    progress(f"All {len(runs)} runs finished ({trained} trained now, {(time.time() - start) / 60:.1f} min).")
    return results


class _Segment:
    """The wall clock of one training segment of a run, kept in the run's clock file.

    While the segment trains, a thread stamps the file every HEARTBEAT_SECONDS, so a process
    killed outright (SIGKILL, a lost VM) still leaves its time on disk: the next segment counts it
    from its start to its last stamp (`killed`), short by at most one heartbeat. A segment that
    returns (finish, preempt, raise) counts to the moment it returns.
    """

    def __init__(self, path: str):
        self._file = paths.join(path, CLOCK_FILE)
        clock = json.loads(paths.read_text(self._file)) if paths.path(self._file).exists() else {}
        self._clock = {"seconds": 0.0, "segments": 0, "killed": 0, **clock}
        open_segment = self._clock.pop("open", None)
        if open_segment is not None:  # the last segment never returned
            self._clock["seconds"] += open_segment["alive"] - open_segment["start"]
            self._clock["segments"] += 1
            self._clock["killed"] += 1
        self._start = time.time()
        self._write(alive=self._start)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="run-clock", daemon=True)
        self._thread.start()

    def _write(self, alive: float | None = None) -> None:
        clock = dict(self._clock)
        if alive is not None:
            clock["open"] = {"start": self._start, "alive": alive}
        paths.write_text(self._file, json.dumps(clock))

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                self._write(alive=time.time())
            except Exception as e:  # a missed stamp costs one heartbeat of accuracy, not the run
                logging.warning("Could not stamp %s: %s", self._file, e)

    def close(self) -> dict[str, float]:
        """Ends the segment: adds its time to the totals, which it writes and returns."""
        self._stop.set()
        self._thread.join()
        self._clock["seconds"] += time.time() - self._start
        self._clock["segments"] += 1
        self._write()
        return dict(self._clock)


def cpu_groups(count: int) -> list[set[int]]:
    """The CPUs this process may use, cut into `count` disjoint groups (one per worker)."""
    if not hasattr(os, "sched_getaffinity"):
        raise ValueError("--parallel needs Linux (CPU affinity); run without it, or one study per --workdir.")
    cpus = sorted(os.sched_getaffinity(0))
    if not 1 <= count <= len(cpus):
        raise ValueError(f"--parallel={count}: use 1 to {len(cpus)} (one worker per group of CPUs).")
    return [set(cpus[i::count]) for i in range(count)]


def worker_env(count: int, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of one of `count` workers: on a GPU they share its memory.

    JAX takes 75% of a GPU's memory per process by default, so a second worker on the same GPU
    would fail to allocate; each gets an equal share instead (an explicit setting is kept). The
    variable means nothing on a CPU."""
    env = dict(os.environ if environ is None else environ)
    env.setdefault("XLA_PYTHON_CLIENT_MEM_FRACTION", f"{0.9 / count:.3f}")
    return env


def run_parallel(
    command: list[str], count: int, progress: Callable[[str], None] = print, shares: list[list[int]] | None = None
) -> None:
    """Runs `command + ["--shard=..."]` for every worker at once, each pinned to its own CPUs.

    Small networks use two cores poorly: two single-core workers train about twice the runs per
    hour of one two-core process (docs/ablation/README.md); on a GPU, several small runs share
    the device (`worker_env`). Without `shares` worker k of `count` trains every `count`-th run
    from the k-th (`--shard=k/count`); with them (`deal`), one worker per share trains the runs
    it names, and the CPUs are cut into as many groups. Either way the workers never share a run
    directory; a rerun resumes each run where it stopped.
    """
    import subprocess

    cpu_groups(count)  # a count the CPUs cannot serve is refused even when fewer runs are left
    specs = [f"{k}/{count}" for k in range(count)] if shares is None else [",".join(map(str, s)) for s in shares]
    procs = []
    for k, (cpus, spec) in enumerate(zip(cpu_groups(len(specs)) if specs else [], specs, strict=True)):
        progress(f"worker {k}/{len(specs)} on CPUs {sorted(cpus)}: --shard={spec}")
        procs.append(
            subprocess.Popen(
                [*command, f"--shard={spec}"],
                env=worker_env(len(specs)),
                preexec_fn=lambda cpus=cpus: os.sched_setaffinity(0, cpus),  # noqa: PLW1509 -- no threads yet
            )
        )
    codes = [p.wait() for p in procs]
    failed = [k for k, code in enumerate(codes) if code]
    if failed:
        raise RuntimeError(f"worker(s) {failed} failed (exit {[codes[k] for k in failed]}); rerun to resume.")
