"""Ground truth of a replayed log and the scores of the replay against it (``metrics.json``).

Ground truth comes with data set frames (Waymo labels, nuScenes boxes) or, in a bag, as
``Detection3DArray`` messages (our simulator's ``/sim/ground_truth``, a converted Waymo
segment's ``/ground_truth``) stamped like the lidar sweep they label. A message carries no
point counts, so each box's lidar point count is counted in the sweep of the same stamp as it
was recorded (before motion compensation, which is how the simulator and Waymo count them);
the Waymo difficulty level follows from it (:meth:`Boxes3D.levels`). Boxes without a sweep
keep an unknown count (LEVEL_1, never dropped).

Scores are the Waymo detection metrics (AP/APH per class and level) and the tracking metrics
(MOTA, MOTP, IDF1) of :mod:`perception.eval`, over the replayed frames that have ground truth,
with the ground truth restricted to the model's BEV range (what it can see), as
``perception demo`` scores.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..eval.detection import evaluate_detection
from ..eval.frames import FrameKey
from ..eval.report import metrics_json
from ..eval.tracking import evaluate_tracking
from ..geometry import count_points_in_boxes
from ..models.config import GridConfig, ground_truth_in_grid
from ..pipeline import PipelineOutput
from ..types import Boxes3D, Detections, LidarSweep, Tracks

SWEEPS_KEPT = 16
"""Recent sweeps kept for counting points in ground truth that arrives after its sweep."""


class GroundTruthCollector:
    """Ground-truth boxes per stamp, with lidar point counts (see the module doc)."""

    def __init__(self, sweeps_kept: int = SWEEPS_KEPT):
        self._sweeps: OrderedDict[int, np.ndarray] = OrderedDict()
        self._sweeps_kept = sweeps_kept
        self._uncounted: dict[int, Boxes3D] = {}
        self.by_stamp: dict[int, Boxes3D] = {}

    def add_sweep(self, sweep: LidarSweep) -> None:
        """A sweep as recorded (vehicle frame, not motion compensated)."""
        stamp = int(sweep.stamp_ns)
        if stamp in self._uncounted:
            self.by_stamp[stamp] = _counted(self._uncounted.pop(stamp), sweep.xyz)
            return
        self._sweeps[stamp] = sweep.xyz
        while len(self._sweeps) > self._sweeps_kept:
            self._sweeps.popitem(last=False)

    def add_message_boxes(self, stamp_ns: int, boxes: Boxes3D) -> None:
        """Boxes from a ground-truth message (no point counts yet)."""
        xyz = self._sweeps.get(int(stamp_ns))
        if xyz is None:
            self._uncounted[int(stamp_ns)] = boxes
            self.by_stamp[int(stamp_ns)] = boxes
        else:
            self.by_stamp[int(stamp_ns)] = _counted(boxes, xyz)

    def add_frame_boxes(self, stamp_ns: int, boxes: Boxes3D | None) -> None:
        """Boxes of a data set frame, as the data set labels them."""
        if boxes is not None:
            self.by_stamp[int(stamp_ns)] = boxes

    def __bool__(self) -> bool:
        return bool(self.by_stamp)


def _counted(boxes: Boxes3D, xyz: np.ndarray) -> Boxes3D:
    return dataclasses.replace(boxes, num_points=count_points_in_boxes(xyz, boxes.boxes)
                               .astype(np.int32), difficulty=None)


@dataclass(frozen=True, eq=False)
class FrameResult:
    """What is scored of one replayed frame: its detections and tracks (None: no tracker)."""

    stamp_ns: int
    detections: Detections
    tracks: Tracks | None

    @classmethod
    def of(cls, output: PipelineOutput) -> FrameResult:
        return cls(int(output.stamp_ns), output.detections, output.tracks)


def tracks_as_detections(tracks: Tracks) -> Detections:
    return Detections(tracks.stamp_ns, tracks.boxes, tracks.scores, tracks.labels,
                      velocities=tracks.velocities)


def score(results: Sequence[FrameResult], gt: dict[int, Boxes3D], sequence_id: str,
          point_range_m: Sequence[float] | None) -> dict | None:
    """``metrics.json`` content for ``results`` against ``gt`` (by stamp), or None when no
    replayed frame has ground truth. ``point_range_m`` (the model's BEV range) restricts the
    ground truth; None keeps all of it."""
    grid = GridConfig(point_range_m=tuple(point_range_m)) if point_range_m else None
    truth, detections, tracks, ids = {}, {}, {}, {}
    for result in results:
        boxes = gt.get(result.stamp_ns)
        if boxes is None:
            continue
        key = FrameKey(sequence_id, result.stamp_ns)
        truth[key] = ground_truth_in_grid(boxes, grid) if grid is not None else boxes
        detections[key] = result.detections
        if result.tracks is not None:
            tracks[key], ids[key] = tracks_as_detections(result.tracks), result.tracks.ids
    if not truth:
        return None
    detection = evaluate_detection(truth, detections)
    tracking = evaluate_tracking(truth, tracks, ids) if len(tracks) == len(truth) else None
    return metrics_json(detection, tracking)
