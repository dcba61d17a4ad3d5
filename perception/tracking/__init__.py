"""Multi-object tracking: motion models, association and track management.

``Tracker(config).update(detections, stamp_ns, ego_pose) -> Tracks``. Tracks are estimated in a
world frame (from the ego pose) and returned in the vehicle frame of the current stamp.

State vector (``Tracks.covariances`` is (N, 9, 9) in this order, vehicle frame of the stamp):

* ``motion.model: cv``:   ``(x, y, z, length, width, height, heading, vx, vy)``
* ``motion.model: ctrv``: ``(x, y, z, length, width, height, heading, v, yaw_rate)``

See ``docs/tracking.md`` for the time policy, the configuration and the evaluation.
"""

from .baseline import GreedyCenterTracker
from .config import (
    AssociationConfig,
    ClassValues,
    ManagementConfig,
    MeasurementConfig,
    MotionConfig,
    TrackerConfig,
    check_tracker_config,
    load_tracker_config,
    tracker_config_from_dict,
)
from .tracker import Tracker, TrackerStats, detections_from_arrays

__all__ = [
    "Tracker", "TrackerStats", "detections_from_arrays", "GreedyCenterTracker",
    "TrackerConfig", "MotionConfig", "MeasurementConfig", "AssociationConfig",
    "ManagementConfig", "ClassValues", "check_tracker_config", "load_tracker_config",
    "tracker_config_from_dict",
]
