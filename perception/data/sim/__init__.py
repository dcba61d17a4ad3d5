"""Built-in multi-sensor driving simulator (ray-cast lidar, cameras, radar, moving actors).

``Simulator(preset_or_config, seed)``: ``.frames(n)`` yields synchronised
:class:`~perception.types.SensorFrame` objects with ground-truth boxes; ``.stream(duration_s)``
yields time-ordered :class:`StreamMessage` objects, one per sensor output. See
docs/simulator.md.
"""

from .messages import EGO_POSE_SENSOR_NAME, MessageKind, StreamMessage
from .presets import PRESET_FILES, load_sim_config, preset_path, sim_config_from_dict
from .settings import (
    RigConfig,
    ScenarioConfig,
    SimCameraConfig,
    SimConfig,
    SimLidarConfig,
    SimRadarConfig,
)
from .simulator import Simulator

__all__ = [
    "Simulator", "StreamMessage", "MessageKind", "EGO_POSE_SENSOR_NAME", "SimConfig",
    "ScenarioConfig", "RigConfig", "SimLidarConfig", "SimCameraConfig", "SimRadarConfig",
    "PRESET_FILES", "preset_path", "load_sim_config", "sim_config_from_dict",
]
