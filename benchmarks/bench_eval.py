"""Waymo detection metrics on a Waymo-val-sized synthetic set, ours vs the official evaluator.

The issue's target set is 40k frames with about 200 ground-truth boxes and 300 predictions
each, evaluated for all classes, both levels and the range breakdown in under 5 minutes on
2 cores. By default this runs ``BENCH_EVAL_FRAMES`` = 4000 frames (well under a minute on a
busy 2-core machine with the NumPy IoU) and extrapolates linearly: the metrics cost is a sum
over frames plus a per-cutoff tail that does not grow with the frame count. Set
``BENCH_EVAL_FRAMES=40000`` for the full size.

When ``$WOD_OFFICIAL_PYTHON`` points to a venv with the official evaluator, the official
TensorFlow op runs on the same frames (``BENCH_EVAL_OFFICIAL_FRAMES``, default 100, a subset
because it is slow), and the per-frame ratio is reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from perception.eval.detection import evaluate_detection
from perception.eval.frames import FrameKey
from perception.types import Boxes3D, Detections

from .harness import Report, peak_rss_mib

FULL_FRAMES = 40_000
GT_PER_FRAME = 200
PRED_PER_FRAME = 300
OFFICIAL_SCRIPT = Path(__file__).resolve().parent.parent / "tests" / "eval" / "official_eval.py"

# Class mix and sizes (l, w, h) of vehicles, pedestrians and cyclists.
_CLASSES = np.array([1, 2, 4])
_CLASS_P = np.array([0.55, 0.35, 0.10])
_SIZES = np.array([[4.6, 2.0, 1.7], [0.9, 0.9, 1.8], [1.8, 0.7, 1.7]])


def make_frames(n_frames: int, seed: int = 0
                ) -> tuple[dict[FrameKey, Boxes3D], dict[FrameKey, Detections]]:
    """Ground truth in a 150 m square around the vehicle; predictions are noisy copies of
    90 % of it plus uniform false positives, scores correlated with quality."""
    rng = np.random.default_rng(seed)
    gts, preds = {}, {}
    for f in range(n_frames):
        key = FrameKey(f"seg{f // 200:04d}", 1_000_000_000 * (f % 200))
        cls_idx = rng.choice(3, GT_PER_FRAME, p=_CLASS_P)
        size = _SIZES[cls_idx] * rng.uniform(0.85, 1.15, (GT_PER_FRAME, 3))
        xyz = np.concatenate([rng.uniform(-75, 75, (GT_PER_FRAME, 2)),
                              rng.uniform(-1, 1, (GT_PER_FRAME, 1))], axis=1)
        heading = rng.uniform(-np.pi, np.pi, (GT_PER_FRAME, 1))
        boxes = np.concatenate([xyz, size, heading], axis=1).astype(np.float32)
        points = rng.integers(0, 400, GT_PER_FRAME)
        gts[key] = Boxes3D(boxes, _CLASSES[cls_idx], num_points=points)

        n_tp = int(0.9 * GT_PER_FRAME)
        tp = boxes[:n_tp].copy()
        noise = rng.normal(0, 1, (n_tp, 7)) * np.array([0.15, 0.15, 0.1, 0.05, 0.05, 0.05, 0.1])
        tp += noise.astype(np.float32)
        tp[:, 3:6] = np.abs(tp[:, 3:6]) + 0.05
        n_fp = PRED_PER_FRAME - n_tp
        fp_cls = rng.choice(3, n_fp, p=_CLASS_P)
        fp = np.concatenate([rng.uniform(-75, 75, (n_fp, 2)), rng.uniform(-1, 1, (n_fp, 1)),
                             _SIZES[fp_cls], rng.uniform(-np.pi, np.pi, (n_fp, 1))], axis=1)
        pred = np.concatenate([tp, fp]).astype(np.float32)
        pred[:, 6] = (pred[:, 6] + np.pi) % (2 * np.pi) - np.pi
        scores = np.concatenate([rng.uniform(0.3, 1.0, n_tp), rng.uniform(0.0, 0.7, n_fp)])
        labels = np.concatenate([_CLASSES[cls_idx[:n_tp]], _CLASSES[fp_cls]])
        preds[key] = Detections(key.stamp_ns, pred, scores.astype(np.float32), labels)
    return gts, preds


def _official_seconds(gts: dict, preds: dict, python: str) -> float:
    from perception.eval.waymo_objects import write_ground_truth, write_predictions

    with tempfile.TemporaryDirectory() as tmp:
        write_ground_truth(Path(tmp) / "gt.bin", gts)
        write_predictions(Path(tmp) / "pred.bin", preds)
        done = subprocess.run([python, str(OFFICIAL_SCRIPT), str(Path(tmp) / "gt.bin"),
                               str(Path(tmp) / "pred.bin")], capture_output=True, text=True,
                              check=True)
    return float(json.loads(done.stdout)[0]["detection_seconds"])


def run(report: Report) -> None:
    n_frames = int(os.environ.get("BENCH_EVAL_FRAMES", "4000"))
    report.section("eval: Waymo detection metrics (AP/APH, L1/L2, range breakdown)")
    t0 = time.perf_counter()
    gts, preds = make_frames(n_frames)
    build_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    result = evaluate_detection(gts, preds)
    ours_s = time.perf_counter() - t0
    per_frame_ms = 1e3 * ours_s / n_frames
    full_min = per_frame_ms * FULL_FRAMES / 1e3 / 60
    report.line(f"Synthetic set: {n_frames} frames x {GT_PER_FRAME} ground-truth boxes x "
                f"{PRED_PER_FRAME} predictions (built in {build_s:.1f} s).")
    report.table(["measure", "value"], [
        ["ours: wall time (s)", ours_s],
        ["ours: per frame (ms)", per_frame_ms],
        [f"ours: extrapolated to {FULL_FRAMES} frames (min)", full_min],
        ["target for 40k frames (min)", 5.0],
        ["peak RSS (MiB)", peak_rss_mib()],
        ["VEHICLE_LEVEL_1 AP (sanity)", result.get(1, 1).ap],
    ])
    if n_frames < FULL_FRAMES:
        report.line(f"Extrapolated linearly from {n_frames} frames; run with "
                    f"BENCH_EVAL_FRAMES={FULL_FRAMES} to measure the full size.")

    python = os.environ.get("WOD_OFFICIAL_PYTHON")
    if not python:
        report.line("Official evaluator not timed: set WOD_OFFICIAL_PYTHON.")
        return
    n_off = min(n_frames, int(os.environ.get("BENCH_EVAL_OFFICIAL_FRAMES", "100")))
    keys = sorted(gts)[:n_off]
    sub_g, sub_p = {k: gts[k] for k in keys}, {k: preds[k] for k in keys}
    t0 = time.perf_counter()
    evaluate_detection(sub_g, sub_p)
    ours_sub_s = time.perf_counter() - t0
    official_s = _official_seconds(sub_g, sub_p, python)
    report.table(["on the same subset", "frames", "seconds", "ms / frame"], [
        ["ours", n_off, ours_sub_s, 1e3 * ours_sub_s / n_off],
        ["official (TF op, all its threads)", n_off, official_s, 1e3 * official_s / n_off],
    ])
    report.line(f"Ratio official / ours: {official_s / ours_sub_s:.2f}x (official time is the "
                f"detection_metrics op alone, excluding TensorFlow start-up and proto parsing).")
