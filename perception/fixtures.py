"""Locating the real sensor-data fixtures (Waymo, nuScenes, KITTI, Ouster MCAP, radar).

The fixtures are non-commercial data and are never part of the repository. They are looked up
in ``$PERCEPTION_TEST_DATA`` or, failing that, in ``../shared/data`` next to the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "PERCEPTION_TEST_DATA"
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Fixture:
    key: str
    relative_path: str
    description: str


KNOWN_FIXTURES: tuple[Fixture, ...] = (
    Fixture("waymo_camera_frame",
            "waymo-open-dataset/src/waymo_open_dataset/utils/testdata/pvps_data_one_frame.tfrecord",
            "Waymo v1 Frame: 5 camera JPEGs, calibrations, 75 3D labels (empty range images)"),
    Fixture("waymo_frame",
            "mmdetection3d/tests/data/waymo/waymo_format/validation/val.tfrecord",
            "Waymo v1 Frame, stripped: calibrations, pose, 18 3D labels (no images, no lidar)"),
    Fixture("waymo_metrics_gt",
            "waymo-open-dataset/src/waymo_open_dataset/metrics/tools/fake_ground_truths.bin",
            "Waymo metrics Objects proto: ground truth"),
    Fixture("waymo_metrics_pred",
            "waymo-open-dataset/src/waymo_open_dataset/metrics/tools/fake_predictions.bin",
            "Waymo metrics Objects proto: predictions"),
    Fixture("nuscenes_keyframe", "mmdetection3d/demo/data/nuscenes",
            "nuScenes keyframe: 6 cameras, full LIDAR_TOP, 69 boxes (mmdet3d info .pkl)"),
    Fixture("nuscenes_reduced", "mmdetection3d/tests/data/nuscenes",
            "nuScenes keyframe, reduced: 100 lidar points, 37 boxes, no images"),
    Fixture("kitti_object", "kitti_object_vis/data/object/training",
            "KITTI object frames 000000-000002"),
    Fixture("ouster_mcap", "pointcloudset/tests/testdata/test.mcap",
            "Ouster OS1-64 MCAP recording (ROS 1 encoding)"),
    Fixture("nuscenes_radar", "open3d-test-nuscenes-radar/old_unorganized",
            "nuScenes RADAR_BACK_LEFT sweep (.pcd)"),
)


def data_root() -> Path | None:
    """The fixture directory, or None when neither location exists."""
    env = os.environ.get(ENV_VAR)
    candidates = [Path(env)] if env else []
    candidates.append(REPO_ROOT.parent / "shared" / "data")
    for path in candidates:
        if path.is_dir():
            return path
    return None


def fixture_path(key: str) -> Path | None:
    """Path of a known fixture, or None when it is not present."""
    by_key = {f.key: f for f in KNOWN_FIXTURES}
    if key not in by_key:
        raise KeyError(f"unknown fixture {key!r}; known: {sorted(by_key)}")
    root = data_root()
    if root is None:
        return None
    path = root / by_key[key].relative_path
    return path if path.exists() else None


def fixture_status() -> list[tuple[Fixture, Path | None]]:
    """Every known fixture with its path, or None when absent."""
    return [(f, fixture_path(f.key)) for f in KNOWN_FIXTURES]
