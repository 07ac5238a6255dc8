"""`<workdir>/metrics.jsonl`: every scalar the training loop logs, one JSON object per line.

Each row is `{"step": int, "epoch": float, <name>: float, ...}`: the training scalars at each log
step, the evaluation scalars (`eval_*`) at each evaluation. A run resumed from a checkpoint logs
the steps after it again, so a step can appear twice; readers keep the later value. Local or in a
bucket (`paths`; a bucket object is rewritten at each append). json and etils only: tools that read
curves back (the ablation's statistics) need no TensorFlow, orbax or jax.
"""

from __future__ import annotations

import json
from typing import Any

from inception_flax import paths

FILE = "metrics.jsonl"


def append(workdir: str, step: int, epoch: float, scalars: dict[str, Any]) -> None:
    row = {"step": step, "epoch": epoch, **{k: float(v) for k, v in scalars.items()}}
    paths.append_text(paths.join(workdir, FILE), json.dumps(row) + "\n")


def read(workdir: str) -> list[dict[str, Any]]:
    """The rows in order of step; a step logged twice is merged, the later value of each key winning."""
    rows: dict[int, dict[str, Any]] = {}
    for line in paths.read_text(paths.join(workdir, FILE)).splitlines():
        if line.strip():
            row = json.loads(line)
            rows.setdefault(row["step"], {}).update(row)
    return [rows[s] for s in sorted(rows)]
