"""`<workdir>/metrics.jsonl`: every scalar the training loop logs, one JSON object per line.

Each row is `{"step": int, "epoch": float, <name>: float, ...}`: the training scalars at each log
step, the evaluation scalars (`eval_*`) at each evaluation. A run resumed from a checkpoint logs
the steps after it again, so a step can appear twice; readers keep the later value. Written only
for local or mounted workdirs (object stores such as gs:// cannot append; TensorBoard has it all).
Plain json and os only: tools that read curves back (the ablation's statistics) need nothing else.
"""

from __future__ import annotations

import json
import os
from typing import Any

FILE = "metrics.jsonl"


def writable(workdir: str) -> bool:
    return "://" not in workdir


def append(workdir: str, step: int, epoch: float, scalars: dict[str, Any]) -> None:
    row = {"step": step, "epoch": epoch, **{k: float(v) for k, v in scalars.items()}}
    os.makedirs(workdir, exist_ok=True)
    with open(os.path.join(workdir, FILE), "a") as f:
        f.write(json.dumps(row) + "\n")


def read(workdir: str) -> list[dict[str, Any]]:
    """The rows in order of step; a step logged twice is merged, the later value of each key winning."""
    rows: dict[int, dict[str, Any]] = {}
    with open(os.path.join(workdir, FILE)) as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                rows.setdefault(row["step"], {}).update(row)
    return [rows[s] for s in sorted(rows)]
