"""Our default topic names and frame ids: what the simulator and the nodes publish, what the
bag converters write and what replay looks for first.

The nodes (:mod:`ros_nodes.topics`, where every topic can be remapped at launch) and log
replay (:mod:`perception.replay`) take them from here, so a bag written by one side plays
into the other. Sensor names map to topic and frame names in lower case: camera ``FRONT``
publishes ``/sensors/camera/front/image_raw`` in frame ``front_optical``.
"""

from __future__ import annotations

LIDAR_POINTS = "/sensors/lidar/points"
EGO_POSE = "/ego/pose"
TF = "/tf"
TF_STATIC = "/tf_static"
SIM_GROUND_TRUTH = "/sim/ground_truth"
PERCEPTION_STATUS = "/perception/status"


def camera_image(name: str) -> str:
    """Raw image topic of camera ``name`` (``FRONT`` -> ``/sensors/camera/front/image_raw``)."""
    return f"/sensors/camera/{name.lower()}/image_raw"


def camera_compressed(name: str) -> str:
    return f"{camera_image(name)}/compressed"


def camera_info(name: str) -> str:
    return f"/sensors/camera/{name.lower()}/camera_info"


def radar_points(name: str) -> str:
    return f"/sensors/radar/{name.lower()}/points"


def sensor_frame(name: str) -> str:
    """Frame id of a lidar or radar (``TOP`` -> ``top``)."""
    return name.lower()


def optical_frame(name: str) -> str:
    """Frame id of a camera's optical frame (``FRONT`` -> ``front_optical``)."""
    return f"{name.lower()}_optical"
