"""``perception eval``: Waymo detection (AP/APH) and tracking (MOTA/MOTP/IDF1) metrics.

``perception eval --gt GT --pred PRED [--format waymo|ours] [--out DIR]`` evaluates
prediction files against ground-truth files (Waymo ``Objects`` protos, or the package's
``.npz`` box tables). Evaluating a trained model end to end will add a positional
``CONFIG CKPT`` form beside these options.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import ConfigError, PerceptionError

log = logging.getLogger("perception.eval")

FORMATS = ("waymo", "ours")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="Waymo detection and tracking metrics of prediction files",
                       description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--gt", type=Path, metavar="GT", help="ground-truth file")
    p.add_argument("--pred", type=Path, metavar="PRED",
                   help="prediction file (with track ids: tracking metrics too)")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="file format: waymo (serialized Objects proto) or ours (.npz box "
                        "table); default: ours for .npz files, waymo otherwise")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="write metrics.json and precision/recall PNGs here")
    p.add_argument("--no-plots", action="store_true", help="with --out: skip the PNGs")
    p.add_argument("--no-tracking", action="store_true",
                   help="skip tracking metrics even when the predictions carry ids")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.gt is None or args.pred is None:
        raise ConfigError("give both --gt GT and --pred PRED")
    return _evaluate_files(args)


def _format_of(path: Path, chosen: str | None) -> str:
    if chosen is not None:
        return chosen
    return "ours" if path.suffix == ".npz" else "waymo"


def _evaluate_files(args: argparse.Namespace) -> int:
    from ..eval import box_table, waymo_objects
    from ..eval.detection import evaluate_detection
    from ..eval.report import format_table, write_report
    from ..eval.tracking import evaluate_tracking

    if _format_of(args.gt, args.format) == "ours":
        gt = box_table.load_ground_truth_table(args.gt)
    else:
        gt = waymo_objects.read_ground_truth(args.gt)
    if _format_of(args.pred, args.format) == "ours":
        pred = box_table.load_prediction_table(args.pred)
    else:
        pred = waymo_objects.read_predictions(args.pred)

    detection = evaluate_detection(gt.frames, pred.frames, pred_overlap_nlz=pred.overlap_nlz)
    tracking = None
    gt_has_ids = all(b.ids is not None for b in gt.frames.values())
    if pred.track_ids is not None and gt_has_ids and not args.no_tracking:
        try:
            tracking = evaluate_tracking(gt.frames, pred.frames, pred.track_ids,
                                         pred_overlap_nlz=pred.overlap_nlz,
                                         gt_tracking_level=gt.tracking_difficulty)
        except PerceptionError as exc:
            # Detection metrics stand on their own; say why tracking is missing.
            log.warning("tracking metrics skipped: %s", exc)
    print(format_table(detection, tracking))
    if detection.counts.pred_frames_without_gt:
        log.warning("%d prediction frame(s) have no ground truth; their predictions count as "
                    "false positives", detection.counts.pred_frames_without_gt)
    if args.out is not None:
        for path in write_report(args.out, detection, tracking, plots=not args.no_plots):
            print(f"wrote {path}")
    return 0
