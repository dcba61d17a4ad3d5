"""Aligning sensors in time and space before the model: sensor sync (:mod:`.sync`),
ego-motion compensation (:mod:`.ego_motion`), multi-sweep accumulation (:mod:`.sweeps`), and
the hand-over of live frames to the model and the tracker (:mod:`.realtime`)."""

from .ego_motion import (
    PoseBuffer,
    compensate_points,
    compensate_scan,
    compensate_sweep,
)
from .sweeps import SweepHistory, accumulate, accumulate_lidar, accumulate_radar
from .realtime import (
    DeadlineMonitor,
    Health,
    LatestFrame,
    StampOrder,
    StampVerdict,
    near_tracks,
)
from .sync import AlignedFrame, SensorStats, SensorSync, SyncConfig

__all__ = [
    "PoseBuffer", "compensate_points", "compensate_scan", "compensate_sweep", "SweepHistory",
    "accumulate", "accumulate_lidar", "accumulate_radar", "AlignedFrame", "SensorStats",
    "SensorSync", "SyncConfig", "DeadlineMonitor", "Health", "LatestFrame", "StampOrder",
    "StampVerdict", "near_tracks",
]
