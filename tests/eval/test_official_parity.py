"""Parity with the official Waymo evaluator, run as a subprocess.

Runs when ``$WOD_OFFICIAL_PYTHON`` is the interpreter of a venv with the full
``waymo-open-dataset-tf-2-12-0==1.6.7`` and TensorFlow (see tests/eval/official_eval.py);
skips otherwise. AP and APH must agree to 1e-3 on every class, level and range shard; the
tracking ratios to 1e-4.
"""

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from eval_cases import synthetic_set, synthetic_tracks

from perception.eval.detection import evaluate_waymo
from perception.eval.tracking import evaluate_tracking
from perception.eval.waymo_objects import (
    read_ground_truth,
    read_predictions,
    write_ground_truth,
    write_predictions,
)
from perception.types import Detections

OFFICIAL = os.environ.get("WOD_OFFICIAL_PYTHON")
SCRIPT = Path(__file__).resolve().parent / "official_eval.py"
TOL = 1e-3

pytestmark = pytest.mark.skipif(not OFFICIAL, reason="set WOD_OFFICIAL_PYTHON to the python "
                                "of a venv with waymo-open-dataset-tf-2-12-0 and TensorFlow")


def run_official(pairs: list[tuple[Path, Path]], tracking: bool = False) -> list[dict]:
    args = [OFFICIAL, str(SCRIPT)] + [str(p) for pair in pairs for p in pair]
    if tracking:
        args.append("--tracking")
    done = subprocess.run(args, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


def assert_detection_parity(ours: dict, official: dict, case: str) -> None:
    for name, value in ours.items():
        if name in ("range", "counts"):
            continue
        ref = official["detection"]["OBJECT_TYPE_TYPE_" + name]
        assert abs(value["AP"] - ref["AP"]) <= TOL, (case, name, value, ref)
        assert abs(value["APH"] - ref["APH"]) <= TOL, (case, name, value, ref)
    for name, value in ours["range"].items():
        ref = official["detection"]["RANGE_TYPE_" + name]
        assert abs(value["AP"] - ref["AP"]) <= TOL, (case, name, value, ref)
        assert abs(value["APH"] - ref["APH"]) <= TOL, (case, name, value, ref)


def jittered(gt_frames, salt: float) -> dict:
    """Predictions from ground truth: noisy copies plus a few false positives."""
    preds = {}
    for i, (key, boxes) in enumerate(sorted(gt_frames.items())):
        n = len(boxes)
        noise = np.sin(np.arange(n * 7).reshape(n, 7) * 7.31 + salt + i) * 0.08
        b = boxes.boxes + noise.astype(np.float32)
        b[:, 3:6] = np.maximum(b[:, 3:6], 0.05)
        fp = b[: min(n, 2)].copy()
        fp[:, 0] += 7.0
        scores = 0.5 + 0.45 * np.sin(np.arange(n + len(fp)) * 3.1 + salt) ** 2
        preds[key] = Detections(key.stamp_ns, np.concatenate([b, fp]),
                                scores.astype(np.float32),
                                np.concatenate([boxes.labels, boxes.labels[: len(fp)]]))
    return preds


def test_detection_parity(tmp_path, fixture_file, shared_data):
    cases = {}
    cases["fixture"] = (fixture_file("waymo_metrics_gt"), fixture_file("waymo_metrics_pred"))
    mm_gt = shared_data / "mmdetection3d/tests/data/waymo/waymo_format/gt.bin"
    if mm_gt.exists():
        pred = tmp_path / "mm_pred.bin"
        write_predictions(pred, jittered(read_ground_truth(mm_gt).frames, 1.0))
        cases["mmdet3d_gt"] = (mm_gt, pred)
        cases["fixture_gt_jittered"] = (fixture_file("waymo_metrics_gt"), tmp_path / "fj.bin")
        write_predictions(tmp_path / "fj.bin",
                          jittered(read_ground_truth(fixture_file("waymo_metrics_gt")).frames,
                                   2.0))
    synthetic = {
        "noisy": dict(),
        "flipped": dict(flip_every=1),
        "some_flips_fps": dict(flip_every=3, fp_per_frame=12),
        "empty_frames": dict(empty_every=2, fp_per_frame=4),
        "all_level2": dict(all_level2_every=1, fp_per_frame=5),
        "everything": dict(flip_every=4, fp_per_frame=9, empty_every=3, all_level2_every=2),
    }
    for i, (name, options) in enumerate(synthetic.items()):
        g, p = tmp_path / f"{name}_gt.bin", tmp_path / f"{name}_pred.bin"
        gts, preds = synthetic_set(5, 30, salt=10.0 + i, **options)
        write_ground_truth(g, gts)
        write_predictions(p, preds)
        cases[name] = (g, p)
    names = sorted(cases)
    official = run_official([cases[n] for n in names])
    for name, ref in zip(names, official):
        ours = evaluate_waymo(*cases[name])
        assert_detection_parity(ours, ref, name)


def test_tracking_parity(tmp_path, fixture_file):
    pairs = {"fixture": (fixture_file("waymo_metrics_gt"), fixture_file("waymo_metrics_pred"))}
    variants = {"switch": dict(switch_at=4), "drops": dict(drop_every=5),
                "ghosts_late": dict(ghosts=3, appear_late=True, switch_at=6)}
    for i, (name, options) in enumerate(variants.items()):
        gts, preds, ids = synthetic_tracks(12, 9, salt=20.0 + i, **options)
        g, p = tmp_path / f"{name}_gt.bin", tmp_path / f"{name}_pred.bin"
        write_ground_truth(g, gts)
        write_predictions(p, preds, track_ids=ids)
        pairs[name] = (g, p)
    names = sorted(pairs)
    official = run_official([pairs[n] for n in names], tracking=True)
    for name, ref in zip(names, official):
        gt = read_ground_truth(pairs[name][0])
        pred = read_predictions(pairs[name][1])
        # The official TensorFlow op never sets the tracking difficulty: every ground truth
        # counts at LEVEL_1. Mirror that to compare.
        level0 = {k: np.zeros(len(b), np.int8) for k, b in gt.frames.items()}
        ours = evaluate_tracking(gt.frames, pred.frames, pred.track_ids,
                                 pred_overlap_nlz=pred.overlap_nlz, gt_tracking_level=level0)
        for m in ours.metrics:
            r = ref["tracking"]["OBJECT_TYPE_TYPE_" + m.name]
            for ours_value, key in ((m.mota, "MOTA"), (m.motp, "MOTP"), (m.miss, "miss"),
                                    (m.mismatch, "mismatch"), (m.fp, "fp"),
                                    (m.score_cutoff, "score_cutoff")):
                assert abs(ours_value - r[key]) <= 1e-4, (name, m.name, key, ours_value, r)
