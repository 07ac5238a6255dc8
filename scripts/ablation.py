r"""Run a residual-vs-plain study (arms x seeds) and build its report.

    python scripts/ablation.py --config configs/ablation.py --study cpu --workdir /tmp/ablation --parallel 2
    python scripts/ablation.py --config configs/ablation.py --study cpu --workdir /tmp/ablation --report_only

Each run trains in `<workdir>/<arm>/seed<k>` with the normal loop. Rerunning the command skips
finished runs and resumes an interrupted one. `--parallel N` deals the runs not finished yet to N
workers in turn, each on its own share of the CPUs. The report (curves.csv, summary.json,
summary.md, PNG figures) goes to `<workdir>/report/`.
"""

import os
import sys
from collections.abc import Sequence

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()  # before jax is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from inception_flax import ablation, config_base, data, paths  # noqa: E402

_CONFIG = flags.DEFINE_string("config", None, "Config file with get_config(arm) and get_study(name).")
_STUDY = flags.DEFINE_string("study", "cpu", "Study defined in the config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "One subdirectory per run; the report in <workdir>/report.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Rebuild the report from what is on disk; train nothing.")
_REPORT_DIR = flags.DEFINE_string("report_dir", None, "Where the report goes (default <workdir>/report).")
_PARALLEL = flags.DEFINE_integer("parallel", 1, "Runs trained at once, each pinned to its own CPUs.")
_RECORDS = flags.DEFINE_string(
    "records",
    "",
    "A folder (committed) that keeps each finished run's settings, result and metrics log: "
    "runs found there are not trained again, so a study can span sittings on machines that keep nothing.",
)
_SHARD = flags.DEFINE_string(
    "shard",
    "",
    "A worker's runs, and no report: k/N, every N-th run from the k-th; or i,j,..., these runs of the study's "
    "list (what --parallel deals each worker).",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    runtime.check_checkout(__file__)
    logging.get_absl_handler().addFilter(runtime.QuietLibraries())
    tf.config.set_visible_devices([], "GPU")
    try:
        module = ablation.load_config_module(_CONFIG.value)
        study = module.get_study(_STUDY.value)
        ablation.check_target(study)
        runs = ablation.run_configs(module.get_config, study)
        test_split = getattr(study, "test_split", "")
        if _SHARD.value:
            shard = ablation.select(runs, _SHARD.value)
            ablation.train_or_check(_WORKDIR.value, shard, False, test_split, _RECORDS.value)
            return
        if _PARALLEL.value > 1 and not _REPORT_ONLY.value:
            if _RECORDS.value:  # checks both folders, then runs finished elsewhere count before dealing
                ablation.sync_records(_RECORDS.value, _WORKDIR.value, runs)
            else:
                ablation.check_workdir(_WORKDIR.value, runs)
            command = [sys.executable, os.path.abspath(__file__), f"--config={_CONFIG.value}"]
            command += [f"--study={_STUDY.value}", f"--workdir={_WORKDIR.value}", f"--records={_RECORDS.value}"]
            shares = ablation.deal(_WORKDIR.value, runs, _PARALLEL.value)
            ablation.run_parallel(command, _PARALLEL.value, shares=shares)
        else:
            ablation.train_or_check(_WORKDIR.value, runs, _REPORT_ONLY.value, test_split, _RECORDS.value)
        summary = ablation.write_report(_WORKDIR.value, runs, study, _REPORT_DIR.value)
    except (ValueError, RuntimeError, config_base.ConfigError, data.DatasetNotPreparedError) as e:
        raise SystemExit(f"error: {e}") from None
    out = _REPORT_DIR.value or paths.join(_WORKDIR.value, "report")
    print(paths.read_text(paths.join(out, "summary.md")))
    print(f"Report: {out} ({', '.join(summary['figures'])})")


if __name__ == "__main__":
    app.run(main)
