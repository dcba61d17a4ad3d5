"""Detection metrics on hand-made cases whose answers follow from the official rules."""

import numpy as np
import pytest
from eval_cases import CYC, PED, VEH, box, det, gt, key, synthetic_set

from perception.errors import ValidationError
from perception.eval.detection import (
    DetectionConfig,
    evaluate_detection,
    evaluate_waymo,
    range_bins,
)
from perception.eval.frames import FrameKey
from perception.types import ObjectClass

K0, K1 = key(0), key(1)


def ap(result, cls=ObjectClass.VEHICLE, level=1, shard=None):
    m = result.get(cls, level, shard)
    return m.ap, m.aph


def test_perfect_predictions_give_one_for_every_class_and_level():
    boxes = [box(10, cls=VEH), box(20, 5, cls=PED), box(-15, 3, cls=CYC)]
    labels = [VEH, PED, CYC]
    r = evaluate_detection({K0: gt(boxes, labels, num_points=[50, 50, 50])},
                           {K0: det(K0, boxes, labels, [0.9, 0.8, 0.7])})
    for cls in (ObjectClass.VEHICLE, ObjectClass.PEDESTRIAN, ObjectClass.CYCLIST):
        for level in (1, 2):
            assert ap(r, cls, level) == (pytest.approx(1.0), pytest.approx(1.0))


def test_heading_error_weights_aph_only():
    # Heading off by pi/2 keeps the IoU of a square box at 1 and weighs the TP by 1/2;
    # off by pi (a flipped box) weighs it by 0 while AP stays 1.
    square = (2.0, 2.0, 1.7)
    g = gt([box(10, size=square), box(30, size=square)], [VEH, VEH], num_points=[50, 50])
    r = evaluate_detection({K0: g}, {K0: det(K0, [box(10, heading=np.pi / 2, size=square),
                                                  box(30, heading=-np.pi, size=square)],
                                             [VEH, VEH], [0.9, 0.9])})
    a, h = ap(r)
    assert a == pytest.approx(1.0)
    assert h == pytest.approx(0.25, abs=1e-5)  # mean heading accuracy (0.5 + 0) / 2 at p=1


def test_false_positive_above_the_true_positive_halves_ap():
    # Cutoffs <= 0.5: TP + FP -> (p 0.5, r 1); above: only the FP -> recall 0.
    g = gt([box(10)], [VEH], num_points=[50])
    r = evaluate_detection({K0: g}, {K0: det(K0, [box(10), box(40)], [VEH, VEH], [0.5, 0.9])})
    assert ap(r)[0] == pytest.approx(0.5, abs=1e-6)


def test_zero_point_ground_truth_is_dropped_and_its_prediction_is_a_false_positive():
    g = gt([box(10), box(40)], [VEH, VEH], num_points=[50, 0])
    d = det(K0, [box(10), box(40)], [VEH, VEH], [0.5, 0.9])
    r = evaluate_detection({K0: g}, {K0: d})
    assert ap(r)[0] == pytest.approx(0.5, abs=1e-6)
    assert r.counts.gt_dropped_zero_points == 1
    # Unknown point counts keep the box: both predictions are true positives.
    r2 = evaluate_detection({K0: gt([box(10), box(40)], [VEH, VEH])}, {K0: d})
    assert ap(r2)[0] == pytest.approx(1.0)


def test_level_2_matches_count_at_level_1_and_only_misses_differ():
    g = gt([box(10), box(30)], [VEH, VEH], num_points=[100, 3])   # the second is LEVEL_2
    on_l2 = evaluate_detection({K0: g}, {K0: det(K0, [box(30)], [VEH], [0.9])})
    # LEVEL_1: TP 1 (matched to the LEVEL_2 box), miss 1 -> recall 0.5.
    assert ap(on_l2, level=1)[0] == pytest.approx(0.5, abs=1e-6)
    assert ap(on_l2, level=2)[0] == pytest.approx(0.5, abs=1e-6)
    assert on_l2.get(ObjectClass.VEHICLE, 1).tps[0] == 1
    on_l1 = evaluate_detection({K0: g}, {K0: det(K0, [box(10)], [VEH], [0.9])})
    assert ap(on_l1, level=1)[0] == pytest.approx(1.0)            # the LEVEL_2 miss is not one
    assert ap(on_l1, level=2)[0] == pytest.approx(0.5, abs=1e-6)


def test_explicit_difficulty_wins_over_the_point_count():
    g = gt([box(10), box(30)], [VEH, VEH], num_points=[3, 100], difficulty=[1, 2])
    r = evaluate_detection({K0: g}, {K0: det(K0, [box(10)], [VEH], [0.9])})
    assert ap(r, level=1)[0] == pytest.approx(1.0)
    assert ap(r, level=2)[0] == pytest.approx(0.5, abs=1e-6)


def test_assignment_maximises_total_iou_not_score_order():
    # Overlapping ground truth at x=0 and x=0.6 (length 4.5). P1 (score 0.9) sits at 0.25:
    # IoU 0.895 with GT1 and 0.857 with GT2; P2 (score 0.5) at -0.3 reaches only GT1
    # (0.875). Score-first greedy matching would give P1->GT1 and a false positive; the
    # maximum-IoU assignment is P1->GT2, P2->GT1 with both true positives.
    g = gt([box(0.0), box(0.6)], [VEH, VEH], num_points=[50, 50])
    r = evaluate_detection({K0: g}, {K0: det(K0, [box(0.25), box(-0.3)], [VEH, VEH],
                                             [0.9, 0.5])})
    m = r.get(ObjectClass.VEHICLE, 1)
    assert m.tps[0] == 2 and m.fps[0] == 0
    assert m.ap == pytest.approx(1.0)


def test_iou_threshold_per_class():
    # A vehicle shifted by 0.9 m along its 4.5 m length: IoU 3.6/5.4 = 0.667 < 0.7.
    r = evaluate_detection({K0: gt([box(10)], [VEH], num_points=[50])},
                           {K0: det(K0, [box(10.9)], [VEH], [0.9])})
    assert ap(r)[0] == 0.0
    # A cyclist shifted by 0.5 m along 1.8 m: IoU 1.3/2.3 = 0.565 >= 0.5.
    r = evaluate_detection({K0: gt([box(10, cls=CYC)], [CYC], num_points=[50])},
                           {K0: det(K0, [box(10.5, cls=CYC)], [CYC], [0.9])})
    assert ap(r, ObjectClass.CYCLIST)[0] == pytest.approx(1.0)


def test_range_breakdown_shards_each_box_by_its_own_distance():
    # GT at 29.9 m and its prediction at 30.1 m (IoU 0.915): a TP for the class, but in the
    # range breakdown the GT is a miss in [0, 30) and the prediction a FP in [30, 50).
    r = evaluate_detection({K0: gt([box(29.9)], [VEH], num_points=[50])},
                           {K0: det(K0, [box(30.1)], [VEH], [0.9])})
    assert ap(r)[0] == pytest.approx(1.0)
    near, mid = r.get(ObjectClass.VEHICLE, 1, 0), r.get(ObjectClass.VEHICLE, 1, 1)
    assert near.ap == 0.0 and near.fns[0] == 1 and near.fps[0] == 0
    assert mid.ap == 0.0 and mid.fps[0] == 1 and mid.fns[0] == 0


def test_range_bins_use_3d_distance():
    boxes = np.array([box(29.0, 0, z=8.0), box(20.0), box(0, 50.0)], np.float32)
    assert range_bins(boxes).tolist() == [1, 0, 2]


def test_no_label_zone_predictions_are_never_false_positives():
    g = gt([box(10)], [VEH], num_points=[50])
    d = det(K0, [box(10), box(40)], [VEH, VEH], [0.5, 0.9])
    r = evaluate_detection({K0: g}, {K0: d}, pred_overlap_nlz={K0: np.array([False, True])})
    assert ap(r)[0] == pytest.approx(1.0)


def test_predictions_in_frames_without_ground_truth_are_false_positives_and_counted():
    g = gt([box(10)], [VEH], num_points=[50])
    r = evaluate_detection({K0: g}, {K0: det(K0, [box(10)], [VEH], [0.5]),
                                     K1: det(K1, [box(10)], [VEH], [0.9])})
    assert r.counts.pred_frames_without_gt == 1
    assert ap(r)[0] == pytest.approx(0.5, abs=1e-6)


def test_signs_and_unknown_are_ignored_and_counted():
    g = gt([box(10), box(20)], [VEH, int(ObjectClass.SIGN)], num_points=[50, 50])
    d = det(K0, [box(10), box(20)], [VEH, int(ObjectClass.SIGN)], [0.9, 0.9])
    r = evaluate_detection({K0: g}, {K0: d})
    assert ap(r)[0] == pytest.approx(1.0)
    assert r.counts.gt_other_class == 1 and r.counts.pred_other_class == 1


def test_empty_inputs_give_zero():
    r = evaluate_detection({}, {})
    assert all(m.ap == 0.0 and m.aph == 0.0 for m in r.by_class + r.by_range)
    assert r.counts.num_frames == 0


def test_duplicate_frame_keys_are_refused():
    g = gt([box(10)], [VEH])
    with pytest.raises(ValidationError, match="duplicate frame key"):
        evaluate_detection([(K0, g), (K0, g)], {})


def test_bad_frame_items_are_refused():
    with pytest.raises(ValidationError, match="FrameKey"):
        evaluate_detection({("seq", 1): gt([box(10)], [VEH])}, {})
    with pytest.raises(ValidationError, match="expected Boxes3D"):
        evaluate_detection({K0: np.zeros((1, 7))}, {})
    with pytest.raises(ValidationError, match="pred_overlap_nlz"):
        evaluate_detection({}, {K0: det(K0, [box(1)], [VEH], [0.5])},
                           pred_overlap_nlz={K0: np.zeros(3, bool)})


def test_bad_boxes_are_refused_by_the_types():
    with pytest.raises(ValidationError, match="non-finite"):
        gt([box(float("nan"))], [VEH])
    with pytest.raises(ValidationError, match="non-positive size"):
        gt([box(1, size=(0.0, 1.0, 1.0))], [VEH])
    with pytest.raises(ValidationError, match="unknown class"):
        gt([box(1)], [7])


def test_metrics_json_layout():
    g = gt([box(10)], [VEH], num_points=[50])
    out = evaluate_waymo({K0: g}, {K0: det(K0, [box(10)], [VEH], [0.9])})
    for name in ("VEHICLE", "PEDESTRIAN", "CYCLIST"):
        for level in (1, 2):
            entry = out[f"{name}_LEVEL_{level}"]
            assert set(entry) == {"AP", "APH"}
    assert out["VEHICLE_LEVEL_1"]["AP"] == pytest.approx(1.0)
    assert "VEHICLE_[0, 30)_LEVEL_1" in out["range"]
    assert out["counts"]["num_gt"] == 1


def test_cutoff_boundary_is_inclusive():
    # A prediction with score exactly 0.5 takes part at cutoff 0.5 (score >= cutoff).
    config = DetectionConfig(score_cutoffs=(0.0, 0.5, 1.0))
    r = evaluate_detection({K0: gt([box(10)], [VEH], num_points=[50])},
                           {K0: det(K0, [box(10)], [VEH], [0.5])}, config=config)
    assert r.get(ObjectClass.VEHICLE, 1).tps.tolist() == [1, 1, 0]


def test_component_solver_agrees_with_brute_force_on_synthetic_sets():
    # Split every frame into its own evaluation and sum counts: the per-frame sums must equal
    # the whole-set counts (frames are independent), exercising the vectorised and looped
    # paths together.
    gts, preds = synthetic_set(6, 24, salt=3.0, fp_per_frame=8, flip_every=5)
    whole = evaluate_detection(gts, preds)
    total_tp = sum(evaluate_detection({k: gts[k]}, {k: preds[k]}).get(
        ObjectClass.PEDESTRIAN, 2).tps for k in gts)
    assert (whole.get(ObjectClass.PEDESTRIAN, 2).tps == total_tp).all()
    assert whole.get(ObjectClass.PEDESTRIAN, 2).tps[0] > 0


def test_frame_key_validation():
    with pytest.raises(ValidationError):
        FrameKey("s", 1.5)


def test_heading_accuracy_wraps_the_difference():
    from perception.eval.iou import heading_accuracy_f32
    ha = heading_accuracy_f32(np.array([3.1, 0.0, 1.0, 4.0]), np.array([-3.1, np.pi, 1.0, 4.0 -
                                                                          2 * np.pi]))
    expected = [1 - (2 * np.pi - 6.2) / np.pi, 0.0, 1.0, 1.0]
    np.testing.assert_allclose(ha, expected, atol=1e-6)
