"""The residual-vs-plain ablation: study runner, statistics, figures (`scripts/ablation.py`)."""

from inception_flax.ablation.report import check_target, write_report
from inception_flax.ablation.runner import (
    check_workdir,
    load_config_module,
    run_configs,
    run_dir,
    run_parallel,
    run_study,
    shard,
    train_or_check,
)
from inception_flax.ablation.stats import ArmSummary, mean_ci, summarize_arm

__all__ = [
    "ArmSummary",
    "check_target",
    "check_workdir",
    "load_config_module",
    "mean_ci",
    "run_configs",
    "run_dir",
    "run_parallel",
    "run_study",
    "shard",
    "summarize_arm",
    "train_or_check",
    "write_report",
]
