"""Run the official Waymo evaluator on Objects files and print its metrics as JSON.

Run with the interpreter of a venv holding the full ``waymo-open-dataset-tf-2-12-0==1.6.7``
and TensorFlow (``$WOD_OFFICIAL_PYTHON``), never inside the package:

    $WOD_OFFICIAL_PYTHON tests/eval/official_eval.py GT.bin PRED.bin [GT2 PRED2 ...] [--tracking]

The ground truth is first prepared exactly as the official command-line tool does
(``metrics/tools/compute_detection_metrics_main.cc``, ``Compute()``): objects with
``num_lidar_points_in_box <= 0`` are dropped, and a missing/UNKNOWN detection difficulty
becomes LEVEL_2 when the box has <= 5 points and LEVEL_1 otherwise. The metrics then come from
the official TensorFlow ops (``py_metrics_ops.detection_metrics`` / ``tracking_metrics``) with
the default config of ``WODDetectionEvaluator._get_default_config`` (the same as the tool's
``GetConfig()``). Frames are keyed by ``(context_name, frame_timestamp_micros)``.

Output: one JSON list with, per (GT, PRED) pair,
``{"detection": {breakdown_name: {"AP": x, "APH": y}}, "tracking": {...}}``.
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from waymo_open_dataset import label_pb2  # noqa: E402
from waymo_open_dataset.metrics.ops import py_metrics_ops  # noqa: E402
from waymo_open_dataset.metrics.python import config_util_py  # noqa: E402
from waymo_open_dataset.metrics.python.wod_detection_evaluator import (  # noqa: E402
    WODDetectionEvaluator,
)
from waymo_open_dataset.protos import metrics_pb2  # noqa: E402


def load(path):
    objects = metrics_pb2.Objects()
    with open(path, "rb") as f:
        objects.ParseFromString(f.read())
    return list(objects.objects)


def prepare_gt(objs):
    """compute_detection_metrics_main.cc: drop zero-point boxes, derive the difficulty."""
    kept = []
    for o in objs:
        if o.object.num_lidar_points_in_box <= 0:
            continue
        level = o.object.detection_difficulty_level
        if level == label_pb2.Label.UNKNOWN:
            level = (label_pb2.Label.LEVEL_2 if o.object.num_lidar_points_in_box <= 5
                     else label_pb2.Label.LEVEL_1)
        kept.append((o, level))
    return kept


def arrays(objs, frame_ids, object_ids):
    box = np.array([[o.object.box.center_x, o.object.box.center_y, o.object.box.center_z,
                     o.object.box.length, o.object.box.width, o.object.box.height,
                     o.object.box.heading] for o in objs], np.float32).reshape(-1, 7)
    return dict(
        bbox=tf.constant(box),
        type=tf.constant(np.array([o.object.type for o in objs], np.uint8)),
        frame_id=tf.constant(np.array([frame_ids[(o.context_name, o.frame_timestamp_micros)]
                                       for o in objs], np.int64)),
        sequence_id=tf.constant(np.array([o.context_name for o in objs], object)
                                .astype(bytes) if objs else np.zeros(0, bytes)),
        object_id=tf.constant(np.array([object_ids.setdefault(o.object.id, len(object_ids))
                                        for o in objs], np.int64)),
        score=tf.constant(np.array([o.score for o in objs], np.float32)),
        nlz=tf.constant(np.array([o.overlap_with_nlz for o in objs], bool)),
    )


def main(argv):
    with_tracking = "--tracking" in argv
    paths = [a for a in argv[1:] if a != "--tracking"]
    results = [evaluate(gt, pred, with_tracking) for gt, pred in zip(paths[::2], paths[1::2])]
    json.dump(results, sys.stdout)


def evaluate(gt_path, pred_path, with_tracking):
    gt_kept = prepare_gt(load(gt_path))
    gt_objs = [o for o, _ in gt_kept]
    levels = np.array([lv for _, lv in gt_kept], np.uint8)
    pred_objs = load(pred_path)
    keys = sorted({(o.context_name, o.frame_timestamp_micros) for o in gt_objs + pred_objs})
    frame_ids = {k: i for i, k in enumerate(keys)}
    gt_ids, pred_ids = {}, {}
    gt = arrays(gt_objs, frame_ids, gt_ids)
    pd = arrays(pred_objs, frame_ids, pred_ids)
    config = WODDetectionEvaluator()._get_default_config()
    names = config_util_py.get_breakdown_names_from_config(config)

    start = time.perf_counter()
    out = py_metrics_ops.detection_metrics(
        prediction_bbox=pd["bbox"], prediction_type=pd["type"],
        prediction_score=pd["score"], prediction_frame_id=pd["frame_id"],
        prediction_overlap_nlz=pd["nlz"], ground_truth_bbox=gt["bbox"],
        ground_truth_type=gt["type"], ground_truth_frame_id=gt["frame_id"],
        ground_truth_difficulty=tf.constant(levels),
        config=config.SerializeToString())
    ap, aph = out[0].numpy(), out[1].numpy()
    result = {"detection": {n: {"AP": float(a), "APH": float(h)}
                            for n, a, h in zip(names, ap, aph)},
              "detection_seconds": time.perf_counter() - start}

    if with_tracking:
        mota, motp, miss, mismatch, fp, cutoff, _ = py_metrics_ops.tracking_metrics(
            prediction_bbox=pd["bbox"], prediction_type=pd["type"],
            prediction_score=pd["score"], prediction_frame_id=pd["frame_id"],
            prediction_sequence_id=pd["sequence_id"], prediction_object_id=pd["object_id"],
            prediction_overlap_nlz=pd["nlz"], ground_truth_bbox=gt["bbox"],
            ground_truth_type=gt["type"], ground_truth_frame_id=gt["frame_id"],
            ground_truth_sequence_id=gt["sequence_id"], ground_truth_object_id=gt["object_id"],
            ground_truth_difficulty=tf.constant(levels), config=config.SerializeToString())
        result["tracking"] = {
            n: {"MOTA": float(a), "MOTP": float(b), "miss": float(c), "mismatch": float(d),
                "fp": float(e), "score_cutoff": float(f)}
            for n, a, b, c, d, e, f in zip(names, mota.numpy(), motp.numpy(), miss.numpy(),
                                           mismatch.numpy(), fp.numpy(), cutoff.numpy())}
    return result


if __name__ == "__main__":
    main(sys.argv)
