r"""Whether a study's runs had flattened: the last-third slope of every validation curve.

    python scripts/curve_slopes.py --curves docs/ablation/study/curves.csv --out docs/ablation/study/slopes.md

Reads a report's `curves.csv` (no run directories needed) and prints, per arm and seed, the
least-squares slope of the validation top-1 error over the last third of the run, with its 95%
interval; the `length` pilot's rule reads it (a flat curve's interval includes 0).
"""

from collections.abc import Sequence

from absl import app, flags

from inception_flax import paths
from inception_flax.ablation import report

_CURVES = flags.DEFINE_string("curves", None, "A study report's curves.csv.")
_OUT = flags.DEFINE_string("out", None, "Also write the table here (markdown).")
flags.mark_flags_as_required(["curves"])


def main(argv: Sequence[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not paths.path(_CURVES.value).exists():
        raise SystemExit(f"error: no file {_CURVES.value}")
    table = report.plateau_markdown(report.read_curves_csv(_CURVES.value))
    if _OUT.value:
        paths.write_text(_OUT.value, table)
    print(table, end="")


if __name__ == "__main__":
    app.run(main)
