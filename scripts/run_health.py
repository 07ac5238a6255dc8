r"""Plot how runs trained: validation error, training accuracy, gradient norm, weight norm.

    python scripts/run_health.py --out docs/ablation/rates/twin.png --title "Faithful twin, 150 epochs" \
        docs/ablation/rates/runs/twin@lr0.005/seed100 docs/ablation/rates/runs/ir_v2@lr0.005/seed100

Each argument is a run directory (a workdir or a study record) holding `metrics.jsonl`; its label is
the run's name (`arm@lr<rate>/seed<k>` for study runs). A run that stalls, whose gradients explode
or whose weights grow while its error stays at chance shows it here.
"""

from collections.abc import Sequence

from absl import app, flags

from inception_flax import metrics_log, paths
from inception_flax.ablation import plots

_OUT = flags.DEFINE_string("out", None, "The PNG to write.")
_TITLE = flags.DEFINE_string("title", "", "The figure's title.")
flags.mark_flags_as_required(["out"])


def main(argv: Sequence[str]) -> None:
    if len(argv) < 2:
        raise app.UsageError("Name at least one run directory.")
    runs = {}
    for run in argv[1:]:
        if not paths.path(paths.join(run, metrics_log.FILE)).exists():
            raise SystemExit(f"error: no {metrics_log.FILE} in {run}")
        parts = run.rstrip("/").split("/")
        runs["/".join(parts[-2:])] = metrics_log.read(run)
    print(plots.health_figure(runs, _OUT.value, _TITLE.value))


if __name__ == "__main__":
    app.run(main)
