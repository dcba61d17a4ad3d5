"""``perception eval``: Waymo detection (AP/APH) and tracking (MOTA/MOTP/IDF1) metrics.

``perception eval CONFIG CKPT [--out DIR] [--no-ablations] [--max-frames N] [--iou V P C]``
runs a trained detector over the validation frames of CONFIG's data section and reports
AP/APH at LEVEL_1 and LEVEL_2 per class, with every modality present and with each one
removed at test time.

``perception eval --gt GT --pred PRED [--format waymo|ours] [--out DIR]`` evaluates
prediction files against ground-truth files (Waymo ``Objects`` protos, or the package's
``.npz`` box tables).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..atomic import write_text_atomic
from ..errors import ConfigError, PerceptionError

log = logging.getLogger("perception.eval")

FORMATS = ("waymo", "ours")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="Waymo detection and tracking metrics of a trained "
                       "detector or of prediction files", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("config", type=Path, nargs="?", metavar="CONFIG",
                   help="experiment YAML whose validation frames to evaluate on")
    p.add_argument("checkpoint", type=Path, nargs="?", metavar="CKPT",
                   help="checkpoint written by perception train, or a weights file "
                        "(such as perception/weights/sim_fusion.pt; needs CONFIG)")
    p.add_argument("--no-ablations", action="store_true",
                   help="CONFIG CKPT: skip the rows with one modality removed")
    p.add_argument("--max-frames", type=int, default=0, metavar="N",
                   help="CONFIG CKPT: evaluate the first N validation frames (0: all)")
    p.add_argument("--split", choices=("val", "test"), default="val",
                   help="CONFIG CKPT: the validation seeds (default) or the second held-out "
                        "test seeds (data.test_seeds; for final tables only)")
    p.add_argument("--single", action="store_true",
                   help="CONFIG CKPT: also rows with one modality alone")
    p.add_argument("--misaligned", action="store_true",
                   help="CONFIG CKPT: also rows with test-time misalignment (1 deg camera "
                        "yaw, 0.2 m lidar shift, 100 ms camera lag, all three)")
    p.add_argument("--late-merge", choices=("nms", "wbf"),
                   help="CONFIG CKPT: late fusion's box merge (default: the config's); it "
                        "runs at decode time, so one late model is evaluated with both")
    p.add_argument("--iou", type=float, nargs=3, metavar=("VEH", "PED", "CYC"),
                   help="3D IoU a match needs per class (default: Waymo's 0.7 0.5 0.5)")
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
    if args.config is not None:
        if args.checkpoint is None:
            raise ConfigError("give both CONFIG and CKPT (or --gt GT and --pred PRED)")
        if args.gt is not None or args.pred is not None:
            raise ConfigError("give either CONFIG CKPT or --gt/--pred, not both")
        return _evaluate_checkpoint(args)
    if args.gt is None or args.pred is None:
        raise ConfigError("give CONFIG CKPT, or both --gt GT and --pred PRED")
    return _evaluate_files(args)


def _detection_config(iou: list[float] | None):
    from ..eval.detection import DetectionConfig

    if iou is None:
        return None
    if not all(0.0 < t <= 1.0 for t in iou):
        raise ConfigError(f"--iou: thresholds must lie in (0, 1], got {iou}")
    return DetectionConfig(iou_vehicle=iou[0], iou_pedestrian=iou[1], iou_cyclist=iou[2])


def _evaluate_checkpoint(args: argparse.Namespace) -> int:
    import json

    from ..train.evaluate import evaluate_checkpoint, format_rows
    from ..train.misalign import STANDARD

    if not args.config.is_file():
        raise ConfigError(f"{args.config}: config file not found")
    if args.max_frames < 0:
        raise ConfigError(f"--max-frames: expected >= 0, got {args.max_frames}")
    results = evaluate_checkpoint(args.checkpoint, args.max_frames,
                                  config_path=args.config, ablations=not args.no_ablations,
                                  progress=True, detection_config=_detection_config(args.iou),
                                  single_modalities=args.single, split=args.split,
                                  misalignments=STANDARD if args.misaligned else (),
                                  late_merge=args.late_merge)
    print(format_rows(results))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        path = args.out / "metrics.json"
        # a killed or failed run never leaves half a metrics.json
        write_text_atomic(path, json.dumps(results, indent=2))
        print(f"wrote {path}")
    return 0


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

    detection = evaluate_detection(gt.frames, pred.frames, pred_overlap_nlz=pred.overlap_nlz,
                                   config=_detection_config(args.iou))
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
