"""The graceful-degradation table of docs/fusion.md (Goal 1) for fused models against the
specialists: for each non-empty sensor subset S, each model given only S, LEVEL_1 AP vehicle /
pedestrian / cyclist and its share of the best specialist in S, and how many of the 7 rows
reach 90 % in every class.

``python -m benchmarks.degradation_table --specialist lidar=DIR --specialist camera=DIR
--specialist radar=DIR --model DIR [--model DIR ...] [--out FILE]``

Each DIR holds a ``metrics.json`` of ``perception eval``: a specialist's with its ``all`` row,
a fused model's from ``--single`` (every subset row). The models are named by their folder.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from perception.atomic import write_text_atomic
from perception.errors import DataError

from .fusion_taxonomy_table import (
    ALL_THREE,
    GOAL_RATIO,
    SUBSETS,
    Level,
    best_ap,
    class_triple,
    degradation_cell,
    load_metrics,
    shares_of_best,
    subset_row,
)


def table(models: dict[str, dict], specialists: dict[str, dict]) -> str:
    """Markdown: one row per subset, per model its AP and share; a last row counting the
    subsets whose every class reaches :data:`GOAL_RATIO`."""
    names = list(models)
    lines = ["| given only S | best specialist in S | "
             + " | ".join(f"{n}: AP V / P / C (share)" for n in names) + " |",
             "|---" * (2 + len(names)) + "|"]
    met = dict.fromkeys(names, 0)
    for kept in SUBSETS:
        refs = [specialists[m]["all"] for m in sorted(kept)]
        cells = []
        for name, metrics in models.items():
            row = metrics[subset_row(Level(name, name, name, ALL_THREE), kept)]
            share = shares_of_best(row, refs)
            met[name] += min(share) >= GOAL_RATIO
            cells.append(f"{class_triple(row)} ({degradation_cell(share)})")
        lines.append(f"| {'+'.join(sorted(kept))} | "
                     + " / ".join(f"{ap:.3f}" for ap in best_ap(refs)) + " | "
                     + " | ".join(cells) + " |")
    lines.append(f"| rows >= {100 * GOAL_RATIO:.0f} % | | "
                 + " | ".join(f"{met[n]} of {len(SUBSETS)}" for n in names) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--specialist", action="append", default=[], metavar="SENSOR=DIR",
                        help="a single-sensor model's evaluation (lidar, camera and radar)")
    parser.add_argument("--model", action="append", default=[], type=Path, metavar="DIR",
                        help="a fused model's evaluation with --single")
    parser.add_argument("--out", type=Path, help="also write the table here")
    args = parser.parse_args(argv)
    specialists = {}
    for item in args.specialist:
        sensor, _, folder = item.partition("=")
        if sensor not in ALL_THREE or not folder:
            parser.error(f"--specialist {item!r}: expected SENSOR=DIR with SENSOR one of "
                         f"{', '.join(ALL_THREE)}")
        specialists[sensor] = Path(folder)
    missing = set(ALL_THREE) - set(specialists)
    if missing or not args.model:
        parser.error(f"needs --model and a --specialist for {', '.join(sorted(missing))}"
                     if missing else "needs at least one --model")
    try:
        refs = {s: load_metrics(d / "metrics.json") for s, d in specialists.items()}
        models = {d.name: load_metrics(d / "metrics.json") for d in args.model}
        for name, metrics in models.items():
            if len(metrics) < len(SUBSETS):
                raise DataError("has no subset rows: evaluate it with --single", source=name)
    except DataError as exc:
        print(exc, file=sys.stderr)
        return 1
    text = table(models, refs)
    print(text, end="")
    if args.out is not None:
        write_text_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
