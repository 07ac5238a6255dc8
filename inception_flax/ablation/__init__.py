"""The residual-vs-plain ablation: study runner, statistics, figures (`scripts/ablation.py`).

Names load on first use, so `inception_flax.ablation.stats` (numpy and scipy only) can be imported
without the runner's TensorFlow and orbax.
"""

import importlib

_WHERE = {
    "check_target": "report",
    "write_report": "report",
    "check_workdir": "runner",
    "deal": "runner",
    "load_config_module": "runner",
    "run_configs": "runner",
    "run_dir": "runner",
    "run_parallel": "runner",
    "run_study": "runner",
    "select": "runner",
    "shard": "runner",
    "sync_records": "runner",
    "train_or_check": "runner",
    "ArmSummary": "stats",
    "mean_ci": "stats",
    "summarize_arm": "stats",
}
__all__ = list(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
