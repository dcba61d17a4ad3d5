"""Topic names and frame ids (the defaults; every topic can be remapped at launch).

Sensor names map to topic and frame names in lower case: camera ``FRONT`` publishes
``/sensors/camera/front/image_raw`` in frame ``front_optical``.
"""

from __future__ import annotations

LIDAR_POINTS = "/sensors/lidar/points"
TF_STATIC = "/tf_static"
EGO_POSE = "/ego/pose"
GROUND_TRUTH = "/sim/ground_truth"
GROUND_TRUTH_MARKERS = "/sim/ground_truth/markers"
PERCEPTION_STATUS = "/perception/status"
DIAGNOSTICS = "/diagnostics"


def camera_image(name: str) -> str:
    return f"/sensors/camera/{name.lower()}/image_raw"


def camera_compressed(name: str) -> str:
    return f"/sensors/camera/{name.lower()}/image_raw/compressed"


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
