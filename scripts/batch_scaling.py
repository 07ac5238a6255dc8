r"""Run the batch-size scaling study (one arm per global batch x seeds) and build its report.

    python scripts/batch_scaling.py --config configs/batch_scaling.py --workdir /tmp/batch_scaling
    python scripts/batch_scaling.py --config configs/batch_scaling.py --workdir /tmp/batch_scaling --report_only

Each run trains in `<workdir>/<arm>/seed<k>` with the normal loop; rerunning skips finished runs
and resumes an interrupted one. The report (curves.csv, summary.json, summary.md, errors.png)
goes to `<workdir>/report/` or --report_dir.
"""

import os
from collections.abc import Sequence

from inception_flax import runtime

runtime.use_fast_cpu_convolutions()  # before jax is imported
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from inception_flax import ablation, config_base, data, paths  # noqa: E402
from inception_flax.ablation import scaling  # noqa: E402

_CONFIG = flags.DEFINE_string(
    "config", None, "Config file with get_config(arm), get_study(name), BATCHES and EVAL_IMAGES."
)
_STUDY = flags.DEFINE_string("study", "cpu", "Study defined in the config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "One subdirectory per run; the report in <workdir>/report.")
_REPORT_ONLY = flags.DEFINE_bool("report_only", False, "Rebuild the report from what is on disk; train nothing.")
_REPORT_DIR = flags.DEFINE_string("report_dir", None, "Where the report goes (default <workdir>/report).")
_BASE_ARM = flags.DEFINE_string("base_arm", "b32", "The arm the others are compared with.")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    logging.get_absl_handler().addFilter(runtime.QuietLibraries())
    tf.config.set_visible_devices([], "GPU")
    out = _REPORT_DIR.value or paths.join(_WORKDIR.value, "report")
    try:
        module = ablation.load_config_module(_CONFIG.value)
        runs = ablation.run_configs(module.get_config, module.get_study(_STUDY.value))
        ablation.train_or_check(_WORKDIR.value, runs, _REPORT_ONLY.value)
        scaling.write_report(_WORKDIR.value, runs, module.BATCHES, _BASE_ARM.value, out, module.EVAL_IMAGES)
    except (ValueError, config_base.ConfigError, data.DatasetNotPreparedError) as e:
        raise SystemExit(f"error: {e}") from None
    print(paths.read_text(paths.join(out, "summary.md")))


if __name__ == "__main__":
    app.run(main)
