"""Official Waymo numbers frozen for small hand-made and synthetic cases.

How they were produced: each case below was written to Objects files with
``perception.eval.waymo_objects.write_ground_truth / write_predictions`` and evaluated by
``tests/eval/official_eval.py`` running under ``waymo-open-dataset-tf-2-12-0==1.6.7`` with
TensorFlow 2.13 (the official ``py_metrics_ops.detection_metrics`` op, default config, ground
truth prepared as ``compute_detection_metrics_main.cc`` does). The values are the official AP
and APH rounded to 6 decimals. Our numbers agreed to better than 1e-6 on every class, level and
range shard when they were frozen.
"""

import numpy as np
import pytest
from eval_cases import CYC, PED, VEH, box, det, gt, key, synthetic_set

from perception.eval.detection import evaluate_waymo


def hand_case():
    """Optimal assignment, a range-boundary pair, a zero-point GT under a prediction, a class
    confusion, an unmatched high-score FP, LEVEL_2 by points and by label, a heading flip."""
    k0, k1 = key(0, "hand"), key(1, "hand")
    g0 = gt([box(0.0), box(0.6), box(29.9), box(12, 3, cls=PED), box(45, -20, cls=CYC),
             box(60, 5)],
            [VEH, VEH, VEH, PED, CYC, VEH], num_points=[50, 4, 80, 0, 12, 2])
    d0 = det(k0, [box(0.25), box(-0.3), box(30.1), box(12.2, 3, cls=PED, heading=2.0),
                  box(45.4, -20, cls=CYC), box(70, 0)],
             [VEH, VEH, VEH, PED, PED, VEH], [0.9, 0.5, 0.7, 0.33, 0.61, 0.95])
    g1 = gt([box(5, 5, heading=1.0), box(8, -2, cls=PED)], [VEH, PED], num_points=[9, 30],
            difficulty=[2, 0])
    d1 = det(k1, [box(5.3, 5, heading=1.0 + np.pi), box(8, -2.1, cls=PED, heading=-0.5)],
             [VEH, PED], [0.45, 0.88])
    return {k0: g0, k1: g1}, {k0: d0, k1: d1}


CASES = {
    "hand": hand_case,
    "mixed": lambda: synthetic_set(4, 18, salt=1.0, fp_per_frame=6, flip_every=4,
                                   empty_every=3, all_level2_every=4),
    "dense": lambda: synthetic_set(3, 30, salt=2.0, fp_per_frame=10),
}

OFFICIAL = {
    "hand": {"VEHICLE_LEVEL_1": [0.8, 0.75], "VEHICLE_LEVEL_2": [0.64, 0.57375],
             "PEDESTRIAN_LEVEL_1": [1.0, 0.840845], "PEDESTRIAN_LEVEL_2": [1.0, 0.840845],
             "CYCLIST_LEVEL_1": [0.0, 0.0], "CYCLIST_LEVEL_2": [0.0, 0.0]},
    "mixed": {"VEHICLE_LEVEL_1": [0.295011, 0.15117], "VEHICLE_LEVEL_2": [0.272024, 0.141182],
              "PEDESTRIAN_LEVEL_1": [0.750433, 0.589298],
              "PEDESTRIAN_LEVEL_2": [0.63885, 0.493736],
              "CYCLIST_LEVEL_1": [0.633644, 0.514984], "CYCLIST_LEVEL_2": [0.593144, 0.4803]},
    "dense": {"VEHICLE_LEVEL_1": [0.206943, 0.205708], "VEHICLE_LEVEL_2": [0.187566, 0.186397],
              "PEDESTRIAN_LEVEL_1": [0.736492, 0.724692],
              "PEDESTRIAN_LEVEL_2": [0.726262, 0.714671],
              "CYCLIST_LEVEL_1": [0.654434, 0.645104], "CYCLIST_LEVEL_2": [0.65046, 0.641231]},
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_frozen_official_numbers(name):
    gts, preds = CASES[name]()
    ours = evaluate_waymo(gts, preds)
    for breakdown, (ap, aph) in OFFICIAL[name].items():
        assert ours[breakdown]["AP"] == pytest.approx(ap, abs=2e-6), breakdown
        assert ours[breakdown]["APH"] == pytest.approx(aph, abs=2e-6), breakdown
