"""Runs a study (arms x seeds) with the normal training loop, one workdir per run, resumably.

Layout: `<workdir>/<arm>/seed<k>/` is an ordinary training workdir (checkpoints, TensorBoard,
`metrics.jsonl`) plus `run.json`, the settings it was started with, and `done.json` once finished.
Rerunning the study skips finished runs and resumes an interrupted one from its last checkpoint;
a run whose recorded settings differ from what the config asks now is refused before anything
trains, and nothing is overwritten.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import ml_collections
from absl import logging

from inception_flax import recipe, train

SETTINGS_FILE = "run.json"
DONE_FILE = "done.json"


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
    return os.path.join(workdir, arm, f"seed{seed}")


def run_configs(
    get_config: Callable[[str], ml_collections.ConfigDict], study: Any
) -> list[tuple[str, int, ml_collections.ConfigDict]]:
    """(arm, seed, config) for every run of `study`, in the order they run (seed-major)."""
    runs = []
    for seed in study.seeds:
        for arm in study.arms:
            config = get_config(f"{arm},{study.scale}")
            config.seed = seed
            runs.append((arm, seed, config))
    return runs


def _settings(config: ml_collections.ConfigDict) -> dict[str, Any]:
    return json.loads(config.to_json_best_effort(sort_keys=True))


def check_workdir(workdir: str, runs: list[tuple[str, int, ml_collections.ConfigDict]]) -> None:
    """Refuses a study workdir whose runs were started with other settings (nothing is touched)."""
    clashes = []
    for arm, seed, config in runs:
        path = os.path.join(run_dir(workdir, arm, seed), SETTINGS_FILE)
        if os.path.exists(path):
            with open(path) as f:
                recorded = json.load(f)
            wanted = _settings(config)
            recorded = {**recipe.implied_before(wanted), **recorded}  # runs recorded before those fields
            diff = sorted(k for k in recorded.keys() | wanted.keys() if recorded.get(k) != wanted.get(k))
            if diff:
                clashes.append(
                    f"{arm}/seed{seed} ({', '.join(f'{k}: {recorded.get(k)!r} -> {wanted.get(k)!r}' for k in diff[:4])})"
                )
    if clashes:
        raise train.ConfigError(
            f"{workdir} holds runs made with other settings than the config asks now: {'; '.join(clashes)}. "
            "Use another --workdir (nothing was changed)."
        )


def train_or_check(workdir: str, runs: list[tuple[str, int, ml_collections.ConfigDict]], report_only: bool) -> None:
    """Trains every run not finished yet or, for a report only, checks that `workdir` holds these runs."""
    if report_only:
        check_workdir(workdir, runs)
    else:
        train.enable_compilation_cache(runs[0][2].compilation_cache_dir)
        run_study(workdir, runs)


def run_study(
    workdir: str,
    runs: list[tuple[str, int, ml_collections.ConfigDict]],
    progress: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Trains every run not finished yet, in order; returns each run's final metrics (from done.json)."""
    check_workdir(workdir, runs)
    for _, _, config in runs:  # every user error before the first run trains
        train.validate(config, os.path.join(workdir, "_probe_does_not_exist"))
    results, start, trained = [], time.time(), 0
    todo = [r for r in runs if not os.path.exists(os.path.join(run_dir(workdir, r[0], r[1]), DONE_FILE))]
    for i, (arm, seed, config) in enumerate(runs, 1):
        path = run_dir(workdir, arm, seed)
        done = os.path.join(path, DONE_FILE)
        if os.path.exists(done):
            with open(done) as f:
                results.append(json.load(f))
            continue
        elapsed = time.time() - start
        eta = "" if not trained else f", study ETA {(elapsed / trained) * (len(todo) - trained) / 60:.1f} min"
        progress(f"[run {i}/{len(runs)}] {arm} seed {seed} in {path} ({len(todo) - trained} to train{eta})")
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, SETTINGS_FILE), "w") as f:
            json.dump(_settings(config), f, indent=1, sort_keys=True)
        run_start = time.time()
        result = train.train_and_evaluate(config, path)
        result = {"arm": arm, "seed": seed, "seconds": time.time() - run_start, **result}
        with open(done, "w") as f:
            json.dump(result, f)
        results.append(result)
        trained += 1
        logging.info("Finished %s seed %d in %.0f s", arm, seed, result["seconds"])
    progress(f"All {len(runs)} runs finished ({trained} trained now, {(time.time() - start) / 60:.1f} min).")
    return results
