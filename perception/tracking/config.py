"""Typed configuration of the multi-object tracker.

The YAML presets live in ``configs/tracking/`` (``waymo.yaml``, ``sim.yaml``); load them with
:func:`load_tracker_config`. Every field has a default, so ``TrackerConfig()`` is a working
tracker tuned for 10 Hz lidar detections (the defaults equal ``sim.yaml``). Constraints sit in
each field's metadata (``ge``, ``gt``, ``le``, ``choices``) and are enforced by
:mod:`perception.config` when a file is loaded, and by :func:`check_tracker_config` when a
config is built in Python.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigError

MotionModelName = Literal["cv", "ctrv"]
CostName = Literal["center", "iou", "mahalanobis"]
SolverName = Literal["hungarian", "greedy"]
TimeReversalPolicy = Literal["error", "reset"]


@dataclass(frozen=True)
class ClassValues:
    """One value per tracked class (Waymo vehicle, pedestrian, cyclist)."""

    vehicle: float = field(default=1.0, metadata={"ge": 0.0})
    pedestrian: float = field(default=1.0, metadata={"ge": 0.0})
    cyclist: float = field(default=1.0, metadata={"ge": 0.0})


@dataclass(frozen=True)
class MotionConfig:
    """Motion model and its noise.

    ``cv``: constant velocity, state ``(x, y, z, l, w, h, heading, vx, vy)``.
    ``ctrv``: constant turn rate and velocity, state ``(x, y, z, l, w, h, heading, v, yaw_rate)``.
    Both run in the tracker's world frame (see ``docs/tracking.md``).
    """

    model: MotionModelName = field(default="ctrv", metadata={"choices": ["cv", "ctrv"]})
    accel_std_mps2: ClassValues = field(
        default_factory=lambda: ClassValues(vehicle=3.0, pedestrian=1.5, cyclist=2.5))
    """Standard deviation of the (white) acceleration driving the velocity."""
    yaw_accel_std_radps2: float = field(default=1.0, metadata={"gt": 0.0})
    """CTRV only: white yaw acceleration driving the turn rate."""
    heading_rate_std_radps: float = field(default=0.5, metadata={"gt": 0.0})
    """CV only: random walk of the heading (the CV model has no turn rate)."""
    z_rate_std_mps: float = field(default=0.3, metadata={"gt": 0.0})
    size_rate_std_mps: float = field(default=0.05, metadata={"gt": 0.0})
    init_velocity_std_mps: ClassValues = field(
        default_factory=lambda: ClassValues(vehicle=10.0, pedestrian=2.0, cyclist=6.0))
    """Velocity uncertainty of a new track born without a detector velocity."""
    init_yaw_rate_std_radps: float = field(default=0.5, metadata={"gt": 0.0})


@dataclass(frozen=True)
class MeasurementConfig:
    """Noise of one detection, used as the Kalman measurement noise R."""

    position_std_m: float = field(default=0.3, metadata={"gt": 0.0})
    z_std_m: float = field(default=0.2, metadata={"gt": 0.0})
    heading_std_rad: float = field(default=0.2, metadata={"gt": 0.0})
    size_std_m: float = field(default=0.2, metadata={"gt": 0.0})
    velocity_std_mps: float = field(default=1.0, metadata={"gt": 0.0})
    """Uncertainty of a detector velocity (new tracks, and the update with ``fuse_velocity``)."""
    fuse_velocity: bool = False
    """Also update matched tracks with the detector's velocity, when detections carry one."""


@dataclass(frozen=True)
class AssociationConfig:
    """Per-class gated association.

    ``center``: BEV centre distance after prediction, gated at ``center_gate_m``. With
    ``use_detection_velocity`` and detections that carry velocities, the detection is moved back
    by its own velocity and compared with the track's previous position (as CenterPoint does).
    ``iou``: ``1 - BEV IoU`` between the predicted track box and the detection, gated at
    ``iou_min``. ``mahalanobis``: squared Mahalanobis distance of the 7-D box innovation, gated
    at ``mahalanobis_gate`` (chi-square, 7 degrees of freedom: 18.5 is the 99 % quantile).
    """

    cost: CostName = field(default="center", metadata={"choices": ["center", "iou",
                                                                     "mahalanobis"]})
    solver: SolverName = field(default="hungarian", metadata={"choices": ["hungarian",
                                                                           "greedy"]})
    center_gate_m: ClassValues = field(
        default_factory=lambda: ClassValues(vehicle=4.0, pedestrian=1.5, cyclist=2.5))
    iou_min: float = field(default=0.1, metadata={"gt": 0.0, "le": 1.0})
    mahalanobis_gate: float = field(default=18.5, metadata={"gt": 0.0})
    use_detection_velocity: bool = False


@dataclass(frozen=True)
class ManagementConfig:
    """Track birth, confirmation, coasting and deletion."""

    min_score: float = field(default=0.1, metadata={"ge": 0.0, "le": 1.0})
    """Detections below this score are ignored entirely."""
    birth_score_min: float = field(default=0.4, metadata={"ge": 0.0, "le": 1.0})
    """Only unmatched detections at or above this score start a track."""
    confirm_hits: int = field(default=2, metadata={"ge": 1})
    """A tentative track with this many hits becomes confirmed."""
    tentative_max_misses: int = field(default=0, metadata={"ge": 0})
    """A tentative track is deleted after more consecutive misses than this."""
    max_coast_frames: int = field(default=10, metadata={"ge": 0})
    """A confirmed track is deleted after more consecutive misses than this."""
    max_coast_s: float = field(default=1.2, metadata={"gt": 0.0})
    """A track whose last hit is older than this is deleted, whatever the frame count."""
    score_decay: float = field(default=0.5, metadata={"ge": 0.0, "le": 1.0})
    """A track's score is multiplied by this at each miss."""
    heading_flip_fix: bool = True
    """Turn the box heading by pi when it points against a reliable velocity."""
    heading_flip_min_speed_mps: float = field(default=1.0, metadata={"ge": 0.0})
    output_tentative: bool = False
    output_coasting: bool = True
    on_time_reversal: TimeReversalPolicy = field(default="error",
                                                 metadata={"choices": ["error", "reset"]})
    """What a stamp that repeats or goes backwards does: raise ``TimestampError`` (the state
    is left untouched) or reset the tracker and start again from that frame."""
    max_pose_offset_s: float = field(default=0.05, metadata={"ge": 0.0})
    """The ego pose's stamp may differ from the frame's stamp by at most this."""


@dataclass(frozen=True)
class TrackerConfig:
    """Everything the tracker needs; see ``docs/tracking.md``."""

    motion: MotionConfig = field(default_factory=MotionConfig)
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    association: AssociationConfig = field(default_factory=AssociationConfig)
    management: ManagementConfig = field(default_factory=ManagementConfig)


def check_tracker_config(config: TrackerConfig) -> TrackerConfig:
    """Check every field's metadata constraints; raise :class:`ConfigError` naming the key."""
    if not isinstance(config, TrackerConfig):
        raise ConfigError(f"tracker config: expected TrackerConfig, got "
                          f"{type(config).__name__}")
    _check_node(config, "tracker")
    return config


def _check_node(node: Any, path: str) -> None:
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        key = f"{path}.{f.name}"
        if dataclasses.is_dataclass(value):
            _check_node(value, key)
            continue
        meta = f.metadata
        if "choices" in meta and value not in meta["choices"]:
            raise ConfigError(f"{key}: {value!r} is not one of {meta['choices']}")
        if not any(k in meta for k in ("ge", "gt", "le")):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        if "ge" in meta and not value >= meta["ge"]:
            raise ConfigError(f"{key}: {value!r} must be >= {meta['ge']}")
        if "gt" in meta and not value > meta["gt"]:
            raise ConfigError(f"{key}: {value!r} must be > {meta['gt']}")
        if "le" in meta and not value <= meta["le"]:
            raise ConfigError(f"{key}: {value!r} must be <= {meta['le']}")


def load_tracker_config(path: str | Path) -> TrackerConfig:
    """Read a tracker YAML file (e.g. ``configs/tracking/waymo.yaml``) into a checked config."""
    from ..config import load_config

    return check_tracker_config(load_config(path, TrackerConfig))


def tracker_config_from_dict(mapping: dict[str, Any], source: str = "<dict>") -> TrackerConfig:
    """Build a checked config from a nested mapping (same layout as the YAML files)."""
    from ..config import from_dict

    return check_tracker_config(from_dict(TrackerConfig, mapping, source=source))
