"""fusion_perception: camera, lidar and radar fusion for 3D detection and tracking."""

__version__ = "0.1.0"
