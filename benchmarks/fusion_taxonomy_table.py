"""The fusion-taxonomy table (docs/fusion.md) from the evaluations that
``benchmarks/fusion_taxonomy.sh`` wrote: one ``<eval-dir>/<row>/metrics.json`` per fusion level,
each from ``perception eval CONFIG CKPT --split test --single --misaligned``.

``python -m benchmarks.fusion_taxonomy_table --eval-dir DIR [--budget TEXT] [--out FILE]
[--no-latency]`` prints three Markdown tables and writes them to FILE:

1. every sensor present: AP and APH at LEVEL_1 and LEVEL_2 per class, parameters and CPU
   latency per frame (one thread pinned to one core, median of 3 ``predict`` calls on one
   simulator frame, as in ``bench_models``);
2. the ablation rows: LEVEL_1 AP with each modality removed and each kept alone;
3. the misaligned rows: LEVEL_1 AP with 1 deg camera yaw, 0.2 m lidar shift, 100 ms camera lag
   and all three, and the change per class against the aligned row;
4. graceful degradation: each level given only S against the best specialist in S.

A level whose metrics.json is missing is a row of dashes and is named on stderr; a
metrics.json that is not the evaluator's output is a ``DataError``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from perception.atomic import write_text_atomic
from perception.config import config_dir
from perception.data.sim import Simulator
from perception.errors import DataError
from perception.models.detector import build_detector
from perception.train.config import load_experiment
from perception.train.evaluate import row_name, with_late_merge
from perception.train.trainer import load_trained
from perception.types import DETECTION_CLASSES, Modality

from .bench_models import measure, one_pinned_thread

CLASSES = tuple(c.name for c in DETECTION_CLASSES)


@dataclass(frozen=True)
class Level:
    """One row of the table: the evaluation directory ``row`` of ``config``'s checkpoint,
    a model of ``modalities``."""
    label: str
    row: str
    config: str
    modalities: tuple[str, ...]
    late_merge: str | None = None


ALL_THREE = ("camera", "lidar", "radar")
LEVELS = (
    Level("early: point painting", "sim_cpu_early_painting", "sim_cpu_early_painting",
          ("camera", "lidar")),
    Level("intermediate: BEV concat", "sim_cpu_camera_lidar_radar",
          "sim_cpu_camera_lidar_radar", ALL_THREE),
    Level("intermediate: BEV gated", "sim_cpu_camera_lidar_radar_gated",
          "sim_cpu_camera_lidar_radar_gated", ALL_THREE),
    Level("late: weighted box fusion", "sim_cpu_late", "sim_cpu_late", ALL_THREE, "wbf"),
    Level("late: NMS", "sim_cpu_late_nms", "sim_cpu_late", ALL_THREE, "nms"),
    Level("control: lidar, same fine-tune", "sim_cpu_lidar_continued",
          "sim_cpu_lidar_continued", ("lidar",)),
    Level("specialist: lidar", "sim_cpu_lidar", "sim_cpu_lidar", ("lidar",)),
    Level("specialist: camera", "sim_cpu_camera", "sim_cpu_camera", ("camera",)),
    Level("specialist: radar", "sim_cpu_radar", "sim_cpu_radar", ("radar",)),
)
SPECIALISTS = {"lidar": "sim_cpu_lidar", "camera": "sim_cpu_camera", "radar": "sim_cpu_radar"}
GOAL_RATIO = 0.9
"""Graceful degradation: given only S, at least this share of the best specialist in S."""

SUBSET_ROWS = (
    ("without camera", "without_camera"), ("without lidar", "without_lidar"),
    ("without radar", "without_radar"), ("only camera", "only_camera"),
    ("only lidar", "only_lidar"), ("only radar", "only_radar"))
MISALIGNED_ROWS = (
    ("camera yaw 1 deg", "camera_yaw_1deg"),
    ("lidar shift 0.2 m", "lidar_shift_0.2m"),
    ("camera lag 100 ms", "camera_lag_100ms"),
    ("all three", "misaligned_all"))


def load_metrics(path: Path) -> dict:
    """The evaluator's ``{row: {"<CLASS>_LEVEL_<n>": {"AP": .., "APH": ..}}}``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise DataError(f"cannot read metrics: {e}", source=str(path)) from e
    if not isinstance(data, dict) or "all" not in data:
        raise DataError("not a metrics.json of perception eval (no 'all' row)",
                        source=str(path))
    for name, row in data.items():
        for c in CLASSES:
            for lvl in (1, 2):
                m = row.get(f"{c}_LEVEL_{lvl}") if isinstance(row, dict) else None
                if not isinstance(m, dict) or not all(
                        isinstance(m.get(k), (int, float)) for k in ("AP", "APH")):
                    raise DataError(f"row {name!r} has no AP/APH for {c} LEVEL_{lvl}",
                                    source=str(path))
    return data


def class_triple(row: dict | None, metric: str = "AP", level: int = 1) -> str:
    """``"0.512 / 0.734 / 0.601"`` (vehicle / pedestrian / cyclist), or a dash."""
    if row is None:
        return "-"
    return " / ".join(f"{row[f'{c}_LEVEL_{level}'][metric]:.3f}" for c in CLASSES)


def ap_change(row: dict | None, aligned: dict | None) -> str:
    """LEVEL_1 AP change against the aligned row per class, signed: ``"-0.030 / +0.004 /
    +0.383"``. Per class, not a mean: a class with few objects swings far more than the
    others and would dominate a mean."""
    if row is None or aligned is None:
        return "-"
    return " / ".join(f"{row[f'{c}_LEVEL_1']['AP'] - aligned[f'{c}_LEVEL_1']['AP']:+.3f}"
                      for c in CLASSES)


def subset_row(level: Level, kept: frozenset[str]) -> str | None:
    """The evaluator's row name for ``level`` given only ``kept`` (None: not evaluated)."""
    have = frozenset(level.modalities)
    if not kept <= have or not kept:
        return None
    return row_name(frozenset(Modality(m) for m in have - kept),
                    tuple(Modality(m) for m in level.modalities))


def degradation(level: Level, kept: frozenset[str], metrics: dict[str, dict | None]
                ) -> list[float] | None:
    """Per class, ``level`` given only ``kept`` as a share of the best specialist whose
    modality is in ``kept`` (LEVEL_1 AP); None when a figure is missing."""
    name = subset_row(level, kept)
    own = (metrics.get(level.row) or {}).get(name) if name else None
    references = [metrics.get(SPECIALISTS[m]) for m in sorted(kept)]
    if own is None or any(r is None for r in references):
        return None
    return shares_of_best(own, [r["all"] for r in references])


def best_ap(references: list[dict]) -> list[float]:
    """Per class, the best LEVEL_1 AP among the metrics rows ``references``."""
    return [max(r[f"{c}_LEVEL_1"]["AP"] for r in references) for c in CLASSES]


def shares_of_best(own: dict, references: list[dict]) -> list[float]:
    """Per class, the metrics row ``own``'s LEVEL_1 AP over the best of ``references``."""
    # a specialist at 0 AP sets no bar: any AP meets it
    return [own[f"{c}_LEVEL_1"]["AP"] / best if best > 0 else float("inf")
            for c, best in zip(CLASSES, best_ap(references))]


def degradation_cell(shares: list[float] | None) -> str:
    """``"104 % / 97 % / 88 %"``, bold when every class reaches :data:`GOAL_RATIO`; ``ref 0``
    where the specialist's AP is 0."""
    if shares is None:
        return "-"
    text = " / ".join("ref 0" if x == float("inf") else f"{100 * x:.0f} %" for x in shares)
    return f"**{text}**" if min(shares) >= GOAL_RATIO else text


SUBSETS = tuple(frozenset(s) for s in (
    ALL_THREE, ("lidar", "radar"), ("camera", "lidar"), ("camera", "radar"), ("lidar",),
    ("camera",), ("radar",)))


def latency_and_parameters(levels: tuple[Level, ...], checkpoints: Path
                           ) -> dict[str, tuple[int, float]]:
    """``{config: (parameters, CPU s per frame)}`` of each level's trained checkpoint on one
    frame of its simulator preset (the untrained model when no checkpoint exists)."""
    out: dict[str, tuple[int, float]] = {}
    frames = {}
    with one_pinned_thread():
        for level in levels:
            key = level.row
            config = load_experiment(config_dir() / "models" / f"{level.config}.yaml")
            ckpt = checkpoints / level.config / "checkpoints" / "last.pt"
            model = load_trained(ckpt)[0] if ckpt.is_file() else build_detector(config.model)
            if level.late_merge is not None:
                model.config = with_late_merge(model.config, level.late_merge)
            preset = config.data.sim_preset
            if preset not in frames:
                frames[preset] = next(iter(Simulator(preset, seed=0).frames(1)))
            parameters, cpu_s, _ = measure(model, frames[preset])
            out[key] = (parameters, cpu_s)
            print(f"{level.row}: {cpu_s * 1000:.0f} ms/frame", file=sys.stderr)
    return out


def header(caption: str, first: str, names: list[str]) -> list[str]:
    """A captioned Markdown table head: ``| level | first | names... |`` and its rule."""
    return ["", caption, "", f"| level | {first} | " + " | ".join(names) + " |",
            "|---|---|" + "---|" * len(names)]


def tables(metrics: dict[str, dict | None], costs: dict[str, tuple[int, float]],
           budget: str = "") -> str:
    """The three Markdown tables, one row per level in :data:`LEVELS` order."""
    lines = []
    if budget:
        lines += [f"Budget: {budget}. Test seeds (data.test_seeds), LEVEL_1/LEVEL_2 at the "
                  f"official Waymo IoU thresholds; V / P / C = vehicle / pedestrian / "
                  f"cyclist.", ""]
    lines += ["| level | parameters | CPU ms/frame | AP L1 V / P / C | APH L1 V / P / C | "
              "AP L2 V / P / C | APH L2 V / P / C | AP L1, all misaligned |",
              "|---|---|---|---|---|---|---|---|"]
    for level in LEVELS:
        m = metrics.get(level.row)
        params, cpu_s = costs.get(level.row, (0, 0.0))
        cost = [f"{params / 1e6:.2f} M", f"{cpu_s * 1000:.0f}"] if params else ["-", "-"]
        all_row = m["all"] if m else None
        lines.append("| " + " | ".join(
            [level.label] + cost
            + [class_triple(all_row, k, lvl) for lvl in (1, 2) for k in ("AP", "APH")]
            + [class_triple(m.get("misaligned_all")) if m else "-"]) + " |")
    lines += header("LEVEL_1 AP V / P / C with sensors removed at test time (the fuser, or "
                    "the late merge, is told which are absent):", "all",
                    [n for n, _ in SUBSET_ROWS])
    for level in LEVELS:
        m = metrics.get(level.row) or {}
        lines.append("| " + " | ".join([level.label, class_triple(m.get("all"))] + [
            class_triple(m.get(key)) for _, key in SUBSET_ROWS]) + " |")
    lines += header("LEVEL_1 AP V / P / C with every sensor present and misaligned at test "
                    "time; in brackets the change per class against the aligned row:",
                    "aligned", [n for n, _ in MISALIGNED_ROWS])
    for level in LEVELS:
        m = metrics.get(level.row) or {}
        aligned = m.get("all")
        cells = [f"{class_triple(m.get(key))} ({ap_change(m.get(key), aligned)})"
                 if m.get(key) else "-" for _, key in MISALIGNED_ROWS]
        lines.append("| " + " | ".join([level.label, class_triple(aligned)] + cells) + " |")
    lines += header(f"Graceful degradation: each level given only S, LEVEL_1 AP V / P / C as "
                    f"a share of the best specialist in S (same budget); bold where every "
                    f"class reaches {100 * GOAL_RATIO:.0f} %:", "met",
                    ["+".join(sorted(s)) for s in SUBSETS])
    for level in LEVELS:
        if len(level.modalities) < 2:
            continue
        shares = [degradation(level, kept, metrics) for kept in SUBSETS]
        judged = [x for x in shares if x is not None]
        met = f"{sum(min(x) >= GOAL_RATIO for x in judged)} of {len(judged)}"
        lines.append("| " + " | ".join([level.label, met] + [
            degradation_cell(x) for x in shares]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--eval-dir", type=Path, required=True,
                        help="folder with one <row>/metrics.json per level")
    parser.add_argument("--checkpoints", type=Path, default=Path("outputs/train"),
                        help="folder with <config>/checkpoints/last.pt (for the latency)")
    parser.add_argument("--budget", default="", help="the training budget, for the caption")
    parser.add_argument("--out", type=Path, help="also write the tables here")
    parser.add_argument("--no-latency", action="store_true",
                        help="skip the parameter and latency columns")
    args = parser.parse_args(argv)
    if not args.eval_dir.is_dir():
        print(f"--eval-dir {args.eval_dir}: no such folder", file=sys.stderr)
        return 2
    metrics: dict[str, dict | None] = {}
    for level in LEVELS:
        path = args.eval_dir / level.row / "metrics.json"
        metrics[level.row] = load_metrics(path) if path.is_file() else None
        if metrics[level.row] is None:
            print(f"{level.row}: no {path}", file=sys.stderr)
    present = tuple(level for level in LEVELS if metrics[level.row] is not None)
    costs = {} if args.no_latency else latency_and_parameters(present, args.checkpoints)
    text = tables(metrics, costs, args.budget)
    print(text, end="")
    if args.out is not None:
        write_text_atomic(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
