"""Which box parameter keeps detections below the IoU a class needs (docs/fusion.md, Goal 2).

For each checkpoint, every ground-truth box of one class on the validation seeds is matched to
at most one detection of that class: detections in descending score, each taking the unmatched
box of highest bird's-eye-view IoU, if that IoU is at least ``--match-iou`` (0.5). For the
matched pairs it reports the median absolute error of each parameter (the centre split into
along and across the true heading), the share of pairs whose 3D IoU reaches ``--iou`` (0.7 for
vehicles, Waymo's), and that share again with one group of parameters replaced by the truth:
the group whose correction raises it most is what limits the class.

    python -m benchmarks.box_errors outputs/train/RUN/checkpoints/last.pt [...] \\
        [--class VEHICLE] [--split val] [--max-frames N] [--out FILE.md]

A diagnostic, not a Waymo metric: the AP also counts misses, false positives and score order.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from perception import ops
from perception.models.config import ground_truth_in_grid
from perception.train.data import build_dataset
from perception.train.trainer import data_config, load_trained
from perception.types import ObjectClass

GROUPS = {"centre x, y": (0, 1), "centre z": (2,), "length, width": (3, 4), "height": (5,),
          "heading": (6,)}
"""Parameter groups replaced by the truth one at a time: (x, y, z, l, w, h, heading) columns."""


def match(gt: np.ndarray, pred: np.ndarray, scores: np.ndarray, min_iou: float
          ) -> list[tuple[int, int]]:
    """(gt index, pred index) pairs: detections by descending score, each taking the
    unmatched box of highest BEV IoU when it reaches ``min_iou``."""
    if len(gt) == 0 or len(pred) == 0:
        return []
    iou = ops.boxes_iou_bev(torch.from_numpy(pred).double(), torch.from_numpy(gt).double())
    iou = iou.numpy()
    taken = np.zeros(len(gt), dtype=bool)
    pairs = []
    for p in np.argsort(-scores, kind="stable"):
        row = np.where(taken, -1.0, iou[p])
        g = int(row.argmax())
        if row[g] >= min_iou:
            taken[g] = True
            pairs.append((g, int(p)))
    return pairs


def errors(gt: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """Per-pair errors (m, rad) of matched (K, 7) boxes; along / across the true heading."""
    d = pred[:, :2] - gt[:, :2]
    c, s = np.cos(gt[:, 6]), np.sin(gt[:, 6])
    heading = (pred[:, 6] - gt[:, 6] + np.pi / 2) % np.pi - np.pi / 2  # mod pi: front = back
    return {"along m": d[:, 0] * c + d[:, 1] * s, "across m": -d[:, 0] * s + d[:, 1] * c,
            "z m": pred[:, 2] - gt[:, 2], "length m": pred[:, 3] - gt[:, 3],
            "width m": pred[:, 4] - gt[:, 4], "height m": pred[:, 5] - gt[:, 5],
            "heading rad (mod pi)": heading}


def iou_3d_pairs(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(K,) 3D IoU of row i of a with row i of b."""
    if len(a) == 0:
        return np.zeros(0)
    iou = ops.boxes_iou_3d(torch.from_numpy(a).double(), torch.from_numpy(b).double())
    return iou.diagonal().numpy()


def collect(path: Path, label: ObjectClass, split: str, max_frames: int, min_iou: float
            ) -> tuple[np.ndarray, np.ndarray, int]:
    """(K, 7) true and (K, 7) predicted boxes of the matched pairs, and the number of true
    boxes of the class, over the split's frames."""
    model, config = load_trained(path)
    frames = build_dataset(data_config(config), split)
    n = len(frames) if max_frames <= 0 else min(max_frames, len(frames))
    gts, preds, total = [], [], 0
    with torch.no_grad():
        for start in range(0, n, 2):
            chunk = [frames[i] for i in range(start, min(n, start + 2))]
            for frame, det in zip(chunk, model.predict(chunk)):
                truth = ground_truth_in_grid(frame.boxes, model.config.grid)
                gt = truth.boxes[truth.labels == label].astype(np.float64)
                keep = det.labels == label
                pred = det.boxes[keep].astype(np.float64)
                total += len(gt)
                for g, p in match(gt, pred, det.scores[keep], min_iou):
                    gts.append(gt[g])
                    preds.append(pred[p])
    empty = np.zeros((0, 7))
    return (np.array(gts) if gts else empty), (np.array(preds) if preds else empty), total


def report(name: str, gt: np.ndarray, pred: np.ndarray, total: int, iou: float) -> list[str]:
    lines = [f"### {name}", "",
             f"{len(gt)} of {total} true boxes matched at BEV IoU >= the match threshold.", ""]
    if len(gt) == 0:
        return lines + ["Nothing matched.", ""]
    errs = errors(gt, pred)
    lines += ["| error | median absolute | median signed |", "|---|---|---|"]
    lines += [f"| {k} | {np.median(np.abs(v)):.3f} | {np.median(v):+.3f} |"
              for k, v in errs.items()]
    base = float((iou_3d_pairs(pred, gt) >= iou).mean())
    lines += ["", f"| parameters replaced by the truth | pairs with 3D IoU >= {iou} |",
              "|---|---|", f"| none | {base:.3f} |"]
    for group, cols in GROUPS.items():
        fixed = pred.copy()
        fixed[:, cols] = gt[:, cols]
        lines.append(f"| {group} | {float((iou_3d_pairs(fixed, gt) >= iou).mean()):.3f} |")
    return lines + [""]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", type=Path)
    parser.add_argument("--class", dest="label", default="VEHICLE",
                        choices=["VEHICLE", "PEDESTRIAN", "CYCLIST"])
    parser.add_argument("--split", default="val", choices=["val", "test"])
    parser.add_argument("--max-frames", type=int, default=0)
    parser.add_argument("--match-iou", type=float, default=0.5)
    parser.add_argument("--iou", type=float, default=None,
                        help="3D IoU a pair must reach (default: Waymo's, 0.7 for vehicles, "
                             "0.5 otherwise)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    label = ObjectClass[args.label]
    iou = args.iou if args.iou is not None else (0.7 if label == ObjectClass.VEHICLE else 0.5)
    missing = [str(p) for p in args.checkpoints if not p.is_file()]
    if missing:
        parser.error(f"no such checkpoint: {', '.join(missing)}")
    lines = [f"## Box errors: {args.label.lower()}, {args.split} seeds", ""]
    for path in args.checkpoints:
        gt, pred, total = collect(path, label, args.split, args.max_frames, args.match_iou)
        lines += report(path.parent.parent.name, gt, pred, total, iou)
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
