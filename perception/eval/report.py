"""Presenting metrics: a text table, ``metrics.json`` and precision/recall PNGs."""

from __future__ import annotations

import json
from pathlib import Path

from ..atomic import atomic_path, write_text_atomic
from .detection import LEVELS, DetectionResult
from .tracking import TrackingResult

__all__ = ["format_table", "metrics_json", "write_report"]


def format_table(detection: DetectionResult, tracking: TrackingResult | None = None) -> str:
    """A plain-text table: class x level x AP/APH (and the tracking metrics when given)."""
    lines = [f"{'class':<12}{'level':<9}{'AP':>8}{'APH':>8}"]
    for m in detection.by_class:
        lines.append(f"{m.object_class.name:<12}{'LEVEL_' + str(m.level):<9}"
                     f"{m.ap:>8.4f}{m.aph:>8.4f}")
    lines.append("")
    lines.append(f"{'range':<30}{'AP':>8}{'APH':>8}")
    for m in detection.by_range:
        lines.append(f"{m.name:<30}{m.ap:>8.4f}{m.aph:>8.4f}")
    if tracking is not None:
        lines.append("")
        lines.append(f"{'class':<12}{'level':<9}{'MOTA':>8}{'MOTP':>8}{'miss':>8}"
                     f"{'mismatch':>10}{'fp':>8}{'IDF1':>8}")
        for t in tracking.metrics:
            lines.append(f"{t.object_class.name:<12}{'LEVEL_' + str(t.level):<9}"
                         f"{t.mota:>8.4f}{t.motp:>8.4f}{t.miss:>8.4f}{t.mismatch:>10.4f}"
                         f"{t.fp:>8.4f}{t.idf1:>8.4f}")
    c = detection.counts
    lines.append("")
    lines.append(f"frames {c.num_frames}, ground truth {c.num_gt} (dropped with 0 points: "
                 f"{c.gt_dropped_zero_points}, other classes: {c.gt_other_class}), "
                 f"predictions {c.num_pred} (other classes: {c.pred_other_class}, in frames "
                 f"without ground truth: {c.pred_frames_without_gt})")
    return "\n".join(lines)


def metrics_json(detection: DetectionResult, tracking: TrackingResult | None = None) -> dict:
    """The ``metrics.json`` dict: detection keys at the top level, ``"tracking"`` if given."""
    out = detection.to_json()
    if tracking is not None:
        out["tracking"] = tracking.to_json()
    return out


def write_report(out_dir: str | Path, detection: DetectionResult,
                 tracking: TrackingResult | None = None, plots: bool = True) -> list[Path]:
    """Write ``metrics.json`` and (``plots``) ``pr_<CLASS>.png`` into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "metrics.json"
    write_text_atomic(path, json.dumps(metrics_json(detection, tracking), indent=2,
                                       sort_keys=True))
    written = [path]
    if plots:
        written += _plot_pr(out, detection)
    return written


def _plot_pr(out: Path, detection: DetectionResult) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    written = []
    classes = sorted({m.object_class for m in detection.by_class})
    for cls in classes:
        fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
        for level in LEVELS:
            m = detection.get(cls, level)
            ax.plot(m.recalls, m.precisions, label=f"LEVEL_{level} AP {m.ap:.3f}")
            ax.plot(m.recalls, m.precisions_ha, linestyle="--",
                    label=f"LEVEL_{level} APH {m.aph:.3f}")
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1.05)
        ax.set_title(f"{cls.name}: precision / recall over score cutoffs")
        ax.legend(loc="lower left", fontsize=8)
        path = out / f"pr_{cls.name}.png"
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp)
        plt.close(fig)
        written.append(path)
    return written
