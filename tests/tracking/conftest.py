"""Helpers for the tracker tests: detections of world-frame boxes seen from a moving ego."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from perception.geometry import invert_transform, make_transform, rotation_z, transform_boxes
from perception.types import Detections, EgoPose, ObjectClass

DT_NS = 100_000_000  # 10 Hz
T0_NS = 1_000_000_000
CAR = (4.5, 1.9, 1.6)
PED = (0.8, 0.8, 1.7)


def stamp(k: int) -> int:
    return T0_NS + k * DT_NS


def ego_pose(k: int, speed_mps: float = 0.0, yaw_rate_radps: float = 0.0) -> EgoPose:
    """Ego driving along +x of the world while turning slowly."""
    t = k * DT_NS * 1e-9
    T = make_transform(rotation_z(yaw_rate_radps * t), [speed_mps * t, 0.3 * speed_mps * t, 0.0])
    return EgoPose(stamp(k), T)


def world_box(x: float, y: float, heading: float, size=CAR) -> list[float]:
    return [x, y, size[2] / 2, size[0], size[1], size[2], heading]


def detections(k: int, world_boxes, pose: EgoPose, labels=None, scores=None,
               velocities_world=None) -> Detections:
    """Detections (vehicle frame of ``pose``) of boxes given in the world frame."""
    world = np.asarray(world_boxes, np.float64).reshape(-1, 7)
    n = world.shape[0]
    boxes = transform_boxes(invert_transform(pose.T_world_vehicle), world)
    labels = np.full(n, int(ObjectClass.VEHICLE), np.int32) if labels is None else labels
    scores = np.full(n, 0.9, np.float32) if scores is None else scores
    vel = None
    if velocities_world is not None:
        R = pose.T_world_vehicle[:2, :2]
        vel = (np.asarray(velocities_world, np.float64).reshape(-1, 2) @ R).astype(np.float32)
    return Detections(stamp(k), boxes, np.asarray(scores, np.float32),
                      np.asarray(labels, np.int32), velocities=vel)


@pytest.fixture
def scene() -> SimpleNamespace:
    return SimpleNamespace(stamp=stamp, ego_pose=ego_pose, world_box=world_box,
                           detections=detections, DT_NS=DT_NS, CAR=CAR, PED=PED)
