"""Typed configuration of the simulator: scenario (layout, actors, ego route) and sensor rig.

These dataclasses are the schema of the YAML files in ``configs/sim/``; the layout section,
:class:`~.layout.LayoutConfig`, lives with the road geometry it describes. Field metadata carries
the range constraints (``ge``, ``gt``, ``le``, ``choices``) that the YAML loader checks; the
cross-field rules (an impossible layout, a minimum range above the maximum) are checked by
:func:`check_sim_config`, which raises :class:`~perception.errors.ConfigError` naming the key.

Units are in the field names. Angles given in degrees in YAML are converted where used.
Mount positions are ``(x, y, z)`` metres in the vehicle frame (x forward, y left, z up, origin
on the ground below the vehicle centre).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ...errors import ConfigError
from .layout import (
    VEHICLE_SLOT_M,
    LayoutConfig,
    RoadGeometry,
    moving_actor_capacity,
    parking_capacity,
    road_geometry,
)

EGO_ROUTES = ("straight", "left", "right")
BEAM_SPACINGS = ("uniform", "waymo")


@dataclass(frozen=True)
class StaticConfig:
    """Static structure along the roads."""

    building_density: float = field(default=0.8, metadata={"ge": 0, "le": 1})
    building_height_min_m: float = field(default=5.0, metadata={"gt": 0})
    building_height_max_m: float = field(default=25.0, metadata={"gt": 0})
    wall_fraction: float = field(default=0.2, metadata={"ge": 0, "le": 1})
    pole_spacing_m: float = field(default=25.0, metadata={"ge": 0})


@dataclass(frozen=True)
class ActorConfig:
    """How many actors of each kind, and their behaviour."""

    num_vehicles: int = field(default=16, metadata={"ge": 0})
    num_parked_cars: int = field(default=8, metadata={"ge": 0})
    num_pedestrians: int = field(default=14, metadata={"ge": 0})
    num_cyclists: int = field(default=4, metadata={"ge": 0})
    vehicle_speed_mps: float = field(default=9.0, metadata={"ge": 0})
    vehicle_speed_std_mps: float = field(default=2.0, metadata={"ge": 0})
    turn_fraction: float = field(default=0.3, metadata={"ge": 0, "le": 1})
    pedestrian_crossing_fraction: float = field(default=0.3, metadata={"ge": 0, "le": 1})
    conflict_free_horizon_s: float = field(default=20.0, metadata={"ge": 0})
    label_range_m: float = field(default=75.0, metadata={"gt": 0})
    min_label_points: int = field(default=1, metadata={"ge": 0})


@dataclass(frozen=True)
class EgoConfig:
    """The ego vehicle's route: it starts on the west arm, eastbound, in the rightmost lane."""

    route: str = field(default="straight", metadata={"choices": list(EGO_ROUTES)})
    speed_mps: float = field(default=8.0, metadata={"ge": 0})
    start_distance_m: float = field(default=60.0, metadata={"ge": 0})


@dataclass(frozen=True)
class ScenarioConfig:
    sequence_id: str = field(default="sim", metadata={"min_len": 1})
    start_stamp_ns: int = field(default=1_600_000_000_000_000_000, metadata={"ge": 0})
    layout: LayoutConfig = field(default_factory=LayoutConfig)
    static: StaticConfig = field(default_factory=StaticConfig)
    actors: ActorConfig = field(default_factory=ActorConfig)
    ego: EgoConfig = field(default_factory=EgoConfig)


@dataclass(frozen=True)
class SimLidarConfig:
    """A spinning lidar. The sweep turns clockwise seen from above, starting behind the
    vehicle; a column's time offset is 0 when it points along the mount's +x."""

    name: str = field(default="TOP", metadata={"min_len": 1})
    num_beams: int = field(default=64, metadata={"ge": 1})
    azimuth_steps: int = field(default=2650, metadata={"ge": 1})
    inclination_min_deg: float = field(default=-17.6, metadata={"ge": -90, "le": 90})
    inclination_max_deg: float = field(default=2.4, metadata={"ge": -90, "le": 90})
    beam_spacing: str = field(default="waymo", metadata={"choices": list(BEAM_SPACINGS)})
    min_range_m: float = field(default=0.5, metadata={"ge": 0})
    max_range_m: float = field(default=75.0, metadata={"gt": 0})
    rate_hz: float = field(default=10.0, metadata={"gt": 0})
    mount_xyz_m: tuple[float, float, float] = (0.0, 0.0, 2.1)
    range_noise_std_m: float = field(default=0.02, metadata={"ge": 0})
    dropout_prob: float = field(default=0.03, metadata={"ge": 0, "le": 1})
    intensity_noise_std: float = field(default=0.02, metadata={"ge": 0})
    motion_chunks: int = field(default=8, metadata={"ge": 1})


@dataclass(frozen=True)
class SimCameraConfig:
    """A pinhole camera, rendered by ray casting (zero distortion)."""

    name: str = field(default="FRONT", metadata={"min_len": 1})
    width: int = field(default=480, metadata={"ge": 1})
    height: int = field(default=320, metadata={"ge": 1})
    hfov_deg: float = field(default=50.0, metadata={"gt": 0, "lt": 180})
    mount_xyz_m: tuple[float, float, float] = (1.5, 0.0, 2.0)
    yaw_deg: float = 0.0
    pitch_deg: float = 0.0
    rate_hz: float = field(default=10.0, metadata={"gt": 0})
    trigger_offset_s: float = 0.0


@dataclass(frozen=True)
class SimRadarConfig:
    """A radar: detections sampled from ray-cast surfaces, plus clutter and false alarms."""

    name: str = field(default="RADAR_FRONT", metadata={"min_len": 1})
    mount_xyz_m: tuple[float, float, float] = (3.8, 0.0, 0.6)
    yaw_deg: float = 0.0
    hfov_deg: float = field(default=100.0, metadata={"gt": 0, "le": 360})
    vfov_deg: float = field(default=10.0, metadata={"gt": 0, "lt": 180})
    max_range_m: float = field(default=150.0, metadata={"gt": 0})
    rate_hz: float = field(default=13.0, metadata={"gt": 0})
    trigger_offset_s: float = 0.0
    ray_step_deg: float = field(default=0.5, metadata={"gt": 0})
    range_noise_std_m: float = field(default=0.15, metadata={"ge": 0})
    azimuth_noise_std_deg: float = field(default=0.3, metadata={"ge": 0})
    elevation_noise_std_deg: float = field(default=0.5, metadata={"ge": 0})
    doppler_noise_std_mps: float = field(default=0.1, metadata={"ge": 0})
    rcs_noise_std_db: float = field(default=2.0, metadata={"ge": 0})
    max_detections: int = field(default=125, metadata={"ge": 1})
    detections_per_object_max: int = field(default=4, metadata={"ge": 1})
    clutter_prob: float = field(default=0.05, metadata={"ge": 0, "le": 1})
    false_alarms_per_scan: float = field(default=3.0, metadata={"ge": 0})


@dataclass(frozen=True)
class RigConfig:
    lidar: SimLidarConfig = field(default_factory=SimLidarConfig)
    cameras: list[SimCameraConfig] = field(default_factory=list)
    radars: list[SimRadarConfig] = field(default_factory=list)
    ego_pose_rate_hz: float = field(default=50.0, metadata={"gt": 0})


@dataclass(frozen=True)
class SimConfig:
    """Everything one :class:`~perception.data.sim.Simulator` needs besides the seed."""

    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    rig: RigConfig = field(default_factory=RigConfig)


def check_sim_config(cfg: SimConfig, source: str = "<config>") -> SimConfig:
    """Cross-field checks the per-field constraints cannot express. Returns ``cfg``.

    Raises:
        ConfigError: naming ``source`` and the key path, e.g. an impossible layout.
    """
    _check_ranges(cfg, source)
    _check_layout(cfg.scenario, source)
    _check_sensors(cfg.rig, source)
    return cfg


def _fail(source: str, key: str, message: str) -> None:
    raise ConfigError(f"{source}: {key}: {message}")


def _check_ranges(cfg: SimConfig, source: str) -> None:
    """Re-check the metadata constraints, so a config built in code is held to the same rules."""
    def walk(obj: object, prefix: str) -> None:
        for f in dataclasses.fields(obj):  # type: ignore[arg-type]
            value = getattr(obj, f.name)
            key = f"{prefix}{f.name}"
            if dataclasses.is_dataclass(value):
                walk(value, key + ".")
                continue
            if isinstance(value, (list, tuple)) and value and dataclasses.is_dataclass(value[0]):
                for i, item in enumerate(value):
                    walk(item, f"{key}[{i}].")
                continue
            meta = f.metadata
            if isinstance(value, str) and len(value) < meta.get("min_len", 0):
                _fail(source, key, "must not be empty")
            if isinstance(value, (list, tuple, str)):
                continue  # no sequence field carries numeric bounds
            if "choices" in meta and value not in meta["choices"]:
                _fail(source, key, f"{value!r} is not one of {meta['choices']}")
            bounds = (("ge", lambda v, b: v >= b, ">="), ("gt", lambda v, b: v > b, ">"),
                      ("le", lambda v, b: v <= b, "<="), ("lt", lambda v, b: v < b, "<"))
            for name, ok, text in bounds:
                if name in meta and not ok(value, meta[name]):
                    _fail(source, key, f"must be {text} {meta[name]}, got {value!r}")

    walk(cfg, "")


def _check_layout(sc: ScenarioConfig, source: str) -> None:
    lay = sc.layout
    road = road_geometry(lay)
    half_road_m, corner_m = road.half_width_m, road.corner_m
    if lay.arm_length_m < 2.0 * corner_m + 20.0:
        _fail(source, "scenario.layout.arm_length_m",
              f"{lay.arm_length_m} m is too short for a road of half-width {half_road_m} m and "
              f"{lay.sidewalk_width_m} m sidewalks: need at least {2.0 * corner_m + 20.0} m")
    if lay.curve_radius_m < corner_m + 5.0:
        _fail(source, "scenario.layout.curve_radius_m",
              f"{lay.curve_radius_m} m is smaller than the road half-width plus sidewalk plus "
              f"5 m ({corner_m + 5.0} m)")
    st = sc.static
    if st.building_height_min_m > st.building_height_max_m:
        _fail(source, "scenario.static.building_height_min_m",
              f"{st.building_height_min_m} exceeds building_height_max_m "
              f"{st.building_height_max_m}")
    if sc.ego.start_distance_m > lay.arm_length_m - corner_m:
        _fail(source, "scenario.ego.start_distance_m",
              f"{sc.ego.start_distance_m} m puts the ego off the road (the west arm is "
              f"{lay.arm_length_m - corner_m} m long)")
    _check_actor_capacity(sc, road, source)


def _check_actor_capacity(sc: ScenarioConfig, road: RoadGeometry, source: str) -> None:
    moving = sc.actors.num_vehicles + sc.actors.num_cyclists
    capacity = moving_actor_capacity(road, sc.ego.start_distance_m)
    if moving > capacity:
        _fail(source, "scenario.actors.num_vehicles",
              f"{sc.actors.num_vehicles} vehicles and {sc.actors.num_cyclists} cyclists do not "
              f"fit: the lanes hold at most {capacity} with {VEHICLE_SLOT_M} m spacing")
    parking = parking_capacity(road)
    if sc.actors.num_parked_cars > parking:
        _fail(source, "scenario.actors.num_parked_cars",
              f"{sc.actors.num_parked_cars} parked cars do not fit: {parking} parking slots "
              f"(parking_lane_width_m must be >= 2 m to park at all)")


def _check_sensors(rig: RigConfig, source: str) -> None:
    lid = rig.lidar
    if lid.inclination_min_deg > lid.inclination_max_deg:
        _fail(source, "rig.lidar.inclination_min_deg",
              f"{lid.inclination_min_deg} exceeds inclination_max_deg {lid.inclination_max_deg}")
    if lid.min_range_m >= lid.max_range_m:
        _fail(source, "rig.lidar.min_range_m",
              f"{lid.min_range_m} must be below max_range_m {lid.max_range_m}")
    names = [lid.name] + [c.name for c in rig.cameras] + [r.name for r in rig.radars]
    for name in names:
        if not name:
            _fail(source, "rig", "sensor names must be non-empty")
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        _fail(source, "rig", f"duplicate sensor names {duplicates}")
    timed = [(f"rig.cameras[{i}]", c) for i, c in enumerate(rig.cameras)]
    timed += [(f"rig.radars[{i}]", r) for i, r in enumerate(rig.radars)]
    for key, sensor in timed:
        if abs(sensor.trigger_offset_s) >= 1.0 / sensor.rate_hz:
            _fail(source, f"{key}.trigger_offset_s",
                  f"{sensor.trigger_offset_s} s must be shorter than the sensor's period "
                  f"{1.0 / sensor.rate_hz} s")
    mounts = [("rig.lidar.mount_xyz_m", lid.mount_xyz_m)]
    mounts += [(f"rig.cameras[{i}].mount_xyz_m", c.mount_xyz_m) for i, c in enumerate(rig.cameras)]
    mounts += [(f"rig.radars[{i}].mount_xyz_m", r.mount_xyz_m) for i, r in enumerate(rig.radars)]
    for key, xyz in mounts:
        if len(xyz) != 3:
            _fail(source, key, f"expected [x, y, z] metres, got {xyz!r}")
        if xyz[2] <= 0:
            _fail(source, key, f"the sensor must sit above the ground (z > 0), got {xyz!r}")
