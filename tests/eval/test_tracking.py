"""Tracking metrics: hand-made sequences with known answers, and motmetrics on the same
matches."""

import math

import numpy as np
import pytest
from eval_cases import PED, VEH, box, det, gt, key, synthetic_tracks

from perception.errors import ValidationError
from perception.eval.detection import DetectionConfig
from perception.eval.iou import iou_3d_f32
from perception.eval.tracking import evaluate_tracking, tracks_to_detections
from perception.types import ObjectClass, Tracks

ONE_CUTOFF = DetectionConfig(score_cutoffs=(0.0,))


def sequence(frames):
    """frames: list of (gt list of (id, x), pred list of (track id, x)) for vehicles."""
    gts, preds, ids = {}, {}, {}
    for f, (g, p) in enumerate(frames):
        k = key(f)
        gts[k] = gt([box(x) for _, x in g], [VEH] * len(g), ids=[i for i, _ in g],
                    num_points=[50] * len(g))
        preds[k] = det(k, [box(x) for _, x in p], [VEH] * len(p), [0.9] * len(p))
        ids[k] = np.array([t for t, _ in p], np.int64)
    return gts, preds, ids


def vehicle(result, level=2):
    return result.get(ObjectClass.VEHICLE, level)


def test_perfect_tracker_gives_mota_one():
    frames = [([("a", 10 + f), ("b", 40 - f)], [(1, 10 + f), (2, 40 - f)]) for f in range(6)]
    m = vehicle(evaluate_tracking(*sequence(frames)))
    assert m.mota == pytest.approx(1.0) and m.motp == pytest.approx(0.0, abs=1e-6)
    assert m.idf1 == pytest.approx(1.0)
    assert m.counts.num_matches == 12 and m.counts.num_objects_gt == 12


def test_identity_switch_in_the_middle_is_one_mismatch():
    frames = [([("a", 10.0)], [(1 if f < 5 else 2, 10.0)]) for f in range(10)]
    m = vehicle(evaluate_tracking(*sequence(frames)))
    assert m.counts.num_mismatches == 1
    assert m.mismatch == pytest.approx(0.1) and m.mota == pytest.approx(0.9)
    assert m.idtp == 5 and m.idf1 == pytest.approx(0.5)


def test_dropped_detection_is_one_miss_and_no_mismatch():
    frames = [([("a", 10.0)], [] if f == 3 else [(1, 10.0)]) for f in range(8)]
    m = vehicle(evaluate_tracking(*sequence(frames)))
    assert m.counts.num_misses == 1 and m.counts.num_mismatches == 0
    assert m.miss == pytest.approx(1 / 8) and m.mota == pytest.approx(7 / 8)


def test_ghost_track_counts_its_false_positives():
    frames = [([("a", 10.0)], [(1, 10.0)] + ([(7, 60.0)] if 2 <= f < 6 else []))
              for f in range(8)]
    m = vehicle(evaluate_tracking(*sequence(frames)))
    assert m.counts.num_fps == 4
    assert m.fp == pytest.approx(0.5) and m.mota == pytest.approx(0.5)


def test_track_moving_to_an_object_whose_previous_object_left_counts_an_eviction():
    # t0: a->1, b->2; t1: b is gone and track 2 now covers a (track 1 is gone): a switches
    # (1 -> 2) and track 2's previous object b is evicted. The official tool counts both.
    frames = [([("a", 10.0), ("b", 40.0)], [(1, 10.0), (2, 40.0)]),
              ([("a", 10.0)], [(2, 10.0)])]
    m = vehicle(evaluate_tracking(*sequence(frames)))
    assert m.counts.num_mismatches == 2


def test_level_2_misses_are_left_out_of_level_1():
    k = key(0)
    g = gt([box(10), box(30)], [VEH, VEH], ids=["a", "b"], num_points=[50, 3])
    r = evaluate_tracking({k: g}, {k: det(k, [box(10)], [VEH], [0.9])},
                          {k: np.array([1])})
    assert vehicle(r, 1).counts.num_objects_gt == 1 and vehicle(r, 1).mota == pytest.approx(1)
    assert vehicle(r, 2).counts.num_misses == 1 and vehicle(r, 2).mota == pytest.approx(0.5)


def test_best_mota_cutoff_is_reported():
    # A low-score ghost makes MOTA 0.5 at cutoff 0; from cutoff 0.31 on it is gone (MOTA 1).
    k = key(0)
    g = gt([box(10)], [VEH], ids=["a"], num_points=[50])
    d = det(k, [box(10), box(60)], [VEH, VEH], [0.9, 0.3])
    m = vehicle(evaluate_tracking({k: g}, {k: d}, {k: np.array([1, 2])}))
    assert m.mota == pytest.approx(1.0) and m.score_cutoff == pytest.approx(0.31)


def test_negative_mota_is_reported_as_zero_like_the_official_tool():
    k = key(0)
    g = gt([box(10)], [VEH], ids=["a"], num_points=[50])
    d = det(k, [box(60), box(90)], [VEH, VEH], [0.9, 0.9])
    m = vehicle(evaluate_tracking({k: g}, {k: d}, {k: np.array([1, 2])}, config=ONE_CUTOFF))
    assert m.mota == 0.0 and m.counts.num_fps == 2


def test_duplicate_track_ids_keep_the_first_box():
    k = key(0)
    g = gt([box(10)], [VEH], ids=["a"], num_points=[50])
    d = det(k, [box(10), box(50)], [VEH, VEH], [0.9, 0.9])
    r = evaluate_tracking({k: g}, {k: d}, {k: np.array([1, 1])})
    assert r.pred_duplicate_ids_ignored == 1
    assert vehicle(r).counts.num_fps == 0 and vehicle(r).mota == pytest.approx(1.0)


def test_tracks_input():
    k = key(0)
    t = Tracks(k.stamp_ns, np.array([box(10)], np.float32), np.array([VEH]), np.array([5]),
               np.zeros((1, 2)), np.array([0.8]), np.array([3]), np.array([3]),
               np.array([1], np.int8))
    dets, ids = tracks_to_detections({k: t})
    r = evaluate_tracking({k: gt([box(10)], [VEH], ids=["a"])}, dets, ids)
    assert vehicle(r).mota == pytest.approx(1.0) and ids[k].tolist() == [5]


def test_bad_input_is_refused():
    k = key(0)
    d = det(k, [box(10)], [VEH], [0.9])
    with pytest.raises(ValidationError, match="object ids"):
        evaluate_tracking({k: gt([box(10)], [VEH])}, {k: d}, {k: np.array([1])})
    with pytest.raises(ValidationError, match="duplicate object ids"):
        evaluate_tracking({k: gt([box(10), box(20)], [VEH, VEH], ids=["a", "a"])}, {k: d},
                          {k: np.array([1])})
    with pytest.raises(ValidationError, match="pred_ids"):
        evaluate_tracking({k: gt([box(10)], [VEH], ids=["a"])}, {k: d}, {k: np.array([1, 2])})


@pytest.mark.parametrize("options", [dict(switch_at=5), dict(drop_every=4),
                                     dict(ghosts=2, appear_late=True, switch_at=7),
                                     dict(switch_at=3, drop_every=6)])
def test_counts_agree_with_motmetrics_on_the_same_matches(options):
    mm = pytest.importorskip("motmetrics")
    gts, preds, ids = synthetic_tracks(14, 12, salt=5.0, **options)
    ours = evaluate_tracking(gts, preds, ids, config=ONE_CUTOFF)
    config = ONE_CUTOFF
    for cls in (ObjectClass.VEHICLE, ObjectClass.PEDESTRIAN, ObjectClass.CYCLIST):
        acc = mm.MOTAccumulator(auto_id=True)
        threshold = config.iou_threshold(cls)
        for k in sorted(gts):
            g, p = gts[k], preds[k]
            gm, pm = g.labels == cls, p.labels == cls
            iou = iou_3d_f32(p.boxes[pm], g.boxes[gm])
            dist = np.where(iou >= np.float32(threshold), 1.0 - iou.astype(np.float64), np.nan)
            # motmetrics wants numeric ids: "obj7" -> 7.
            acc.update([int(s[3:]) for s in g.ids[gm]], list(ids[k][pm]), dist.T)
        summary = mm.metrics.create().compute(
            acc, metrics=["num_matches", "num_misses", "num_false_positives", "num_switches",
                          "mota", "motp", "idf1"], return_dataframe=False)
        m = ours.get(cls, 2)
        # motmetrics files a match that switched identity under "switches", not "matches".
        assert m.counts.num_matches == summary["num_matches"] + summary["num_switches"]
        assert m.counts.num_misses == summary["num_misses"]
        assert m.counts.num_fps == summary["num_false_positives"]
        assert m.counts.num_mismatches == summary["num_switches"]
        assert m.mota == pytest.approx(max(summary["mota"], 0.0), abs=1e-6)
        assert m.motp == pytest.approx(summary["motp"], abs=1e-5)
        assert m.idf1 == pytest.approx(summary["idf1"], abs=1e-9)
    assert any(ours.get(c, 2).counts.num_mismatches + ours.get(c, 2).counts.num_misses
               + ours.get(c, 2).counts.num_fps > 0 for c in (1, 2, 4))


def test_pedestrian_threshold_is_half():
    # A pedestrian shifted 0.25 m on a 0.8 m box: IoU 0.55/1.05 = 0.52 >= 0.5: a match.
    k = key(0)
    r = evaluate_tracking({k: gt([box(10, cls=PED)], [PED], ids=["p"])},
                          {k: det(k, [box(10.25, cls=PED)], [PED], [0.9])}, {k: np.array([3])})
    m = r.get(ObjectClass.PEDESTRIAN, 2)
    assert m.counts.num_matches == 1
    assert m.motp == pytest.approx(1 - 0.55 / 1.05, abs=1e-4)
    assert not math.isnan(m.idf1)
