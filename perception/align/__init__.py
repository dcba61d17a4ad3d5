"""Aligning sensors in time and space before the model: sensor sync (:mod:`.sync`),
ego-motion compensation (:mod:`.ego_motion`) and multi-sweep accumulation (:mod:`.sweeps`)."""

from .ego_motion import (
    PoseBuffer,
    compensate_points,
    compensate_scan,
    compensate_sweep,
)
from .sweeps import SweepHistory, accumulate, accumulate_lidar, accumulate_radar
from .sync import AlignedFrame, SensorStats, SensorSync, SyncConfig

__all__ = [
    "PoseBuffer", "compensate_points", "compensate_scan", "compensate_sweep", "SweepHistory",
    "accumulate", "accumulate_lidar", "accumulate_radar", "AlignedFrame", "SensorStats",
    "SensorSync", "SyncConfig",
]
