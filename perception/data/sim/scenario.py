"""Scenario generation: road layout, static structure, actors and the ego route, from a seed.

World frame: flat ground at z = 0, the intersection centre at the origin, x east, y north.
Traffic drives on the right. Lane families are named by their travel direction: EB (east),
WB (west), NB (north), SB (south). Every actor follows a :class:`~.paths.Path2D` at a constant
speed. Actors do not react to each other; instead, generation places them only where their
footprints stay clear of the ego and of each other over a horizon (:mod:`.conflicts`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ...types import ObjectClass
from .conflicts import CHECK_STEP_S, Footprint, FootprintSet, footprint
from .paths import Path2D, fillet_polyline
from .settings import ScenarioConfig, StaticConfig

VEHICLE_SLOT_M = 16.0
"""Spacing of the initial vehicle slots along a lane (longer than a bus plus a gap)."""
PARKING_SLOT_M = 7.0
"""Spacing of parking slots."""
EGO_LENGTH_M, EGO_WIDTH_M = 4.8, 2.1
"""Footprint of the ego vehicle (centred on the vehicle origin) for conflict checks."""
VEHICLE_MARGIN_LW_M = (0.5, 0.1)
"""Footprint growth (along, across) for vehicles: a gap ahead and behind, lanes stay usable."""
PEDESTRIAN_MARGIN_LW_M = (0.1, 0.1)
PEDESTRIAN_TRIES = 20
ROUTE_TAIL_M = 30.0
"""Straight run after the curve at the east end, so curve traffic leaves it before restarting."""

FAMILIES = {"EB": (1.0, 0.0), "WB": (-1.0, 0.0), "NB": (0.0, 1.0), "SB": (0.0, -1.0)}
LEFT_OF = {"EB": "NB", "NB": "WB", "WB": "SB", "SB": "EB"}
RIGHT_OF = {"EB": "SB", "SB": "WB", "WB": "NB", "NB": "EB"}


class ActorKind(str, enum.Enum):
    CAR = "car"
    VAN = "van"
    TRUCK = "truck"
    BUS = "bus"
    PEDESTRIAN = "pedestrian"
    CYCLIST = "cyclist"


ACTOR_CLASS = {
    ActorKind.CAR: ObjectClass.VEHICLE, ActorKind.VAN: ObjectClass.VEHICLE,
    ActorKind.TRUCK: ObjectClass.VEHICLE, ActorKind.BUS: ObjectClass.VEHICLE,
    ActorKind.PEDESTRIAN: ObjectClass.PEDESTRIAN, ActorKind.CYCLIST: ObjectClass.CYCLIST,
}

# (mean, std) of length, width, height in metres, roughly matching Waymo label statistics.
SIZE_STATS_M = {
    ActorKind.CAR: ((4.6, 0.3), (1.88, 0.08), (1.55, 0.1)),
    ActorKind.VAN: ((5.3, 0.3), (2.02, 0.08), (2.15, 0.15)),
    ActorKind.TRUCK: ((8.5, 1.2), (2.5, 0.08), (3.3, 0.3)),
    ActorKind.BUS: ((12.0, 0.4), (2.55, 0.04), (3.2, 0.1)),
    ActorKind.PEDESTRIAN: ((0.85, 0.15), (0.85, 0.1), (1.74, 0.1)),
    ActorKind.CYCLIST: ((1.8, 0.1), (0.8, 0.08), (1.75, 0.08)),
}
VEHICLE_KIND_WEIGHTS = {ActorKind.CAR: 0.72, ActorKind.VAN: 0.14, ActorKind.TRUCK: 0.09,
                        ActorKind.BUS: 0.05}


@dataclass(frozen=True)
class RoadGeometry:
    """Derived dimensions of the layout, metres."""

    arm_length_m: float
    lane_width_m: float
    lanes_per_direction: int
    lanes_half_width_m: float      # centre line to the outer edge of the driving lanes
    half_width_m: float            # centre line to the curb (driving plus parking lanes)
    sidewalk_width_m: float
    curve_radius_m: float
    parking_lane_width_m: float

    @property
    def corner_m(self) -> float:
        """Half size of the intersection square including the sidewalks."""
        return self.half_width_m + self.sidewalk_width_m

    def lane_offset_m(self, lane: int) -> float:
        """Offset of lane ``lane`` (0 = rightmost) to the right of the centre line."""
        return self.lanes_half_width_m - (lane + 0.5) * self.lane_width_m


@dataclass(frozen=True, eq=False)
class StaticBox:
    """An axis-aligned static box (building or wall) standing on the ground, world frame."""

    center_xy: tuple[float, float]
    size_xyz_m: tuple[float, float, float]
    material: str                  # "building" or "wall"
    albedo_rgb: tuple[float, float, float]


@dataclass(frozen=True, eq=False)
class Pole:
    center_xy: tuple[float, float]
    radius_m: float
    height_m: float


@dataclass(frozen=True, eq=False)
class Actor:
    """A moving (or parked) object with a stable id.

    Attributes:
        actor_id: stable int id, unique in the scenario (the ego vehicle is not an actor).
        kind: fine-grained kind; ``object_class`` is the Waymo class.
        size_lwh_m: (3,) float64 box length, width, height.
        path: the path it follows; ``s0_m`` its arclength at t = 0, ``speed_mps`` constant.
        albedo_rgb: (3,) float64 base colour in [0, 1] (camera shading).
        reflectivity: lidar reflectivity in [0, 1].
    """

    actor_id: int
    kind: ActorKind
    size_lwh_m: np.ndarray
    path: Path2D
    s0_m: float
    speed_mps: float
    albedo_rgb: np.ndarray
    reflectivity: float

    @property
    def object_class(self) -> ObjectClass:
        return ACTOR_CLASS[self.kind]


@dataclass(frozen=True, eq=False)
class ActorStates:
    """Poses of all actors at one time, world frame.

    Attributes:
        center: (N, 3) float64 box centres (z = height / 2).
        heading: (N,) float64 yaw, radians (not wrapped).
        velocity: (N, 2) float64 over-ground velocity, m/s.
        yaw_rate: (N,) float64 rad/s.
        lap: (N,) int64 how many times the actor has restarted an open route. An actor that
            reaches the end of an open route re-enters at its start: to every observer that is
            a new object, so ground truth gives each lap its own id (:data:`LAP_ID_STRIDE`).
    """

    center: np.ndarray
    heading: np.ndarray
    velocity: np.ndarray
    yaw_rate: np.ndarray
    lap: np.ndarray


@dataclass(frozen=True, eq=False)
class EgoMotion:
    """Ego poses at several times, world frame.

    Attributes:
        xy: (N, 2) float64 position of the vehicle origin; heading: (N,) float64 yaw;
        speed_mps: (N,) float64 (0 once the ego has reached the end of its route);
        yaw_rate: (N,) float64 rad/s.
    """

    xy: np.ndarray
    heading: np.ndarray
    speed_mps: np.ndarray
    yaw_rate: np.ndarray

    def transforms(self) -> np.ndarray:
        """(N, 4, 4) float64 ``T_world_vehicle`` (the ground is flat: no roll, pitch or z)."""
        n = len(self.heading)
        T = np.zeros((n, 4, 4))
        c, s = np.cos(self.heading), np.sin(self.heading)
        T[:, 0, 0], T[:, 0, 1], T[:, 1, 0], T[:, 1, 1] = c, -s, s, c
        T[:, 2, 2] = T[:, 3, 3] = 1.0
        T[:, 0, 3], T[:, 1, 3] = self.xy[:, 0], self.xy[:, 1]
        return T


@dataclass(frozen=True, eq=False)
class Scenario:
    """A generated world: everything but the sensors."""

    config: ScenarioConfig
    road: RoadGeometry
    buildings: list[StaticBox]
    poles: list[Pole]
    actors: list[Actor]
    ego_path: Path2D
    ego_s0_m: float
    ego_speed_mps: float
    unplaced: int = 0
    """Actors asked for by the config that found no conflict-free place (see conflicts.py)."""

    def actor_states(self, t_s: float) -> ActorStates:
        """Poses of every actor at ``t_s`` seconds after the scenario start."""
        n = len(self.actors)
        center, heading = np.zeros((n, 3)), np.zeros(n)
        velocity, yaw_rate = np.zeros((n, 2)), np.zeros(n)
        lap = np.zeros(n, np.int64)
        for i, actor in enumerate(self.actors):
            s_m = actor.s0_m + actor.speed_mps * t_s
            xy, yaw, curvature = actor.path.at(s_m)
            center[i, :2], center[i, 2] = xy[0], 0.5 * actor.size_lwh_m[2]
            heading[i] = yaw[0]
            velocity[i] = actor.speed_mps * np.array([np.cos(yaw[0]), np.sin(yaw[0])])
            yaw_rate[i] = actor.speed_mps * curvature[0]
            if not actor.path.is_closed:
                lap[i] = int(np.floor(s_m / actor.path.length_m))
        return ActorStates(center, heading, velocity, yaw_rate, lap)

    def ego_motion(self, t_s: np.ndarray | float) -> EgoMotion:
        """Ego poses at the times ``t_s`` (seconds after the scenario start)."""
        t = np.atleast_1d(np.asarray(t_s, np.float64))
        # The ego stops at the end of its route rather than jumping back to its start.
        end_m = self.ego_path.length_m - 1e-6
        s_m = self.ego_s0_m + self.ego_speed_mps * t
        speed = np.where(s_m < end_m, self.ego_speed_mps, 0.0)
        xy, heading, curvature = self.ego_path.at(np.minimum(s_m, end_m))
        return EgoMotion(xy, heading, speed, speed * curvature)

    @property
    def ego_route_duration_s(self) -> float:
        """Seconds until the ego reaches the end of its route and stops."""
        remaining_m = self.ego_path.length_m - self.ego_s0_m
        return max(remaining_m, 0.0) / self.ego_speed_mps if self.ego_speed_mps > 0 else 0.0


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------

LAP_ID_STRIDE = 1_000_000
"""Ground-truth id of an actor on lap k of an open route: ``actor_id + k * LAP_ID_STRIDE``."""


def make_scenario(cfg: ScenarioConfig, seed: int) -> Scenario:
    """Generate the scenario for ``seed``. The same (config, seed) gives the same scenario."""
    rng = np.random.default_rng([int(seed), 0x5CE7])
    road = _road_geometry(cfg)
    buildings, poles = _static_structure(cfg, road, rng)
    ego_path = _vehicle_route(road, "EB", 0, cfg.ego.route)
    ego_s0 = _entry_arclength(ego_path, road) - (cfg.ego.start_distance_m - road.half_width_m)
    times = np.arange(0.0, cfg.actors.conflict_free_horizon_s + 1e-9, CHECK_STEP_S)
    placed = FootprintSet()
    placed.add(footprint(ego_path, ego_s0, cfg.ego.speed_mps, EGO_LENGTH_M, EGO_WIDTH_M, times,
                         VEHICLE_MARGIN_LW_M))
    actors, unplaced = _actors(cfg, road, rng, placed, times)
    return Scenario(cfg, road, buildings, poles, actors, ego_path, ego_s0, cfg.ego.speed_mps,
                    unplaced)


def _road_geometry(cfg: ScenarioConfig) -> RoadGeometry:
    lay = cfg.layout
    lanes_half = lay.lanes_per_direction * lay.lane_width_m
    return RoadGeometry(
        arm_length_m=lay.arm_length_m, lane_width_m=lay.lane_width_m,
        lanes_per_direction=lay.lanes_per_direction, lanes_half_width_m=lanes_half,
        half_width_m=lanes_half + lay.parking_lane_width_m,
        sidewalk_width_m=lay.sidewalk_width_m, curve_radius_m=lay.curve_radius_m,
        parking_lane_width_m=lay.parking_lane_width_m)


def _right(h: np.ndarray) -> np.ndarray:
    return np.array([h[1], -h[0]])


def _approach(road: RoadGeometry, family: str, o: float) -> tuple[list, list]:
    """Corners (and radii of interior corners) before the intersection for a lane at offset o."""
    A, R = road.arm_length_m, road.curve_radius_m
    if family == "WB":  # westbound traffic comes down the curve at the east end
        return [(A + R - o, R + ROUTE_TAIL_M), (A + R - o, o)], [R - o]
    h = np.array(FAMILIES[family])
    return [tuple(o * _right(h) - A * h)], []


def _exit(road: RoadGeometry, family: str, o: float) -> tuple[list, list]:
    A, R = road.arm_length_m, road.curve_radius_m
    if family == "EB":  # eastbound traffic leaves through the curve
        return [(A + R + o, -o), (A + R + o, R + ROUTE_TAIL_M)], [R + o]
    h = np.array(FAMILIES[family])
    return [tuple(o * _right(h) + A * h)], []


def _vehicle_route(road: RoadGeometry, family: str, lane: int, turn: str,
                   offset_m: float | None = None) -> Path2D:
    """Path of a lane: through the intersection straight, or turning left/right."""
    o = road.lane_offset_m(lane) if offset_m is None else offset_m
    corners, radii = _approach(road, family, o)
    if turn == "straight":
        out_corners, out_radii = _exit(road, family, o)
        return fillet_polyline(np.array(corners + out_corners), np.array(radii + out_radii))
    target = LEFT_OF[family] if turn == "left" else RIGHT_OF[family]
    h, h2 = np.array(FAMILIES[family]), np.array(FAMILIES[target])
    corner = o * _right(h) + o * _right(h2)
    # The turn arc starts where the lane enters the intersection square.
    radius = road.half_width_m + float(corner @ h)
    out_corners, out_radii = _exit(road, target, o)
    return fillet_polyline(np.array(corners + [tuple(corner)] + out_corners),
                           np.array(radii + [radius] + out_radii))


def _entry_arclength(path: Path2D, road: RoadGeometry) -> float:
    """Arclength at which the path first enters the intersection square."""
    inside = (np.abs(path.xy) <= road.half_width_m + 1e-6).all(axis=1)
    return float(path.s_m[int(np.argmax(inside))])


def _actors(cfg: ScenarioConfig, road: RoadGeometry, rng: np.random.Generator,
            placed: FootprintSet, times: np.ndarray) -> tuple[list[Actor], int]:
    """Parked cars, then vehicles and cyclists, then pedestrians, each placed only where its
    footprint stays clear of everything placed before it over the horizon ``times``."""
    act = cfg.actors
    actors: list[Actor] = []
    unplaced = 0
    for actor in _parked_cars(act.num_parked_cars, road, rng, first_id=1):
        placed.add(_footprint_of(actor, times))
        actors.append(actor)
    lane_keys = [(f, lane) for f in FAMILIES for lane in range(road.lanes_per_direction)]
    lane_speed = {key: float(np.clip(rng.normal(act.vehicle_speed_mps, act.vehicle_speed_std_mps),
                                     0.5 * act.vehicle_speed_mps, 2.0 * act.vehicle_speed_mps))
                  for key in lane_keys}
    # Traffic in the ego lane moves with the ego, so it neither catches up nor falls behind.
    lane_speed[("EB", 0)] = cfg.ego.speed_mps
    slots = _lane_slots(cfg, road, lane_keys)
    free = list(rng.permutation(len(slots)))
    moving = [ActorKind.CYCLIST] * act.num_cyclists + [None] * act.num_vehicles
    for index in rng.permutation(len(moving)):
        is_cyclist = moving[index] is ActorKind.CYCLIST
        kind = ActorKind.CYCLIST if is_cyclist else _vehicle_kind(rng)
        size = _draw_size(kind, rng)
        wants_turn, turn_left = rng.random() < act.turn_fraction, rng.random() < 0.5
        for slot_index in free:
            (family, lane), distance_m = slots[slot_index]
            # Slots past the intersection (negative distance) have turned already, if at all.
            turn = "straight" if is_cyclist or distance_m < 0 \
                else _turn(wants_turn, turn_left, family)
            # Cyclists ride at the right edge of the lane, at the lane's speed.
            offset = road.lanes_half_width_m - 0.45 if is_cyclist else None
            path = _vehicle_route(road, family, lane, turn, offset)
            actor = _make_actor(len(actors) + 1, kind, size, path,
                                _slot_arclength(path, road, distance_m),
                                lane_speed[(family, lane)], rng)
            shape = _footprint_of(actor, times)
            if not placed.conflicts(shape):
                placed.add(shape)
                actors.append(actor)
                free.remove(slot_index)
                break
        else:
            unplaced += 1
    for _ in range(act.num_pedestrians):
        actor = _place_pedestrian(cfg, road, rng, len(actors) + 1, placed, times)
        if actor is None:
            unplaced += 1
        else:
            actors.append(actor)
    return actors, unplaced


def _footprint_of(actor: Actor, times: np.ndarray) -> Footprint:
    margin = PEDESTRIAN_MARGIN_LW_M if actor.kind is ActorKind.PEDESTRIAN else VEHICLE_MARGIN_LW_M
    return footprint(actor.path, actor.s0_m, actor.speed_mps, actor.size_lwh_m[0],
                     actor.size_lwh_m[1], times, margin)


def moving_actor_capacity(cfg: ScenarioConfig) -> int:
    """How many vehicles plus cyclists fit in the initial lane slots of this layout."""
    road = _road_geometry(cfg)
    lane_keys = [(f, lane) for f in FAMILIES for lane in range(road.lanes_per_direction)]
    return len(_lane_slots(cfg, road, lane_keys))


def parking_capacity(cfg: ScenarioConfig) -> int:
    """How many parked cars fit (0 when the parking lane is narrower than 2 m)."""
    road = _road_geometry(cfg)
    if road.parking_lane_width_m < 2.0:
        return 0
    return 8 * int((road.arm_length_m - road.corner_m - 5.0) // PARKING_SLOT_M)


def _lane_slots(cfg: ScenarioConfig, road: RoadGeometry, lane_keys: list) -> list:
    """Initial positions ``(lane, distance)`` at VEHICLE_SLOT_M spacing on both sides of the
    intersection: a positive distance lies before the intersection, a negative one after it."""
    free_m = road.arm_length_m - road.corner_m
    n = int(free_m // VEHICLE_SLOT_M)
    ego_distance = cfg.ego.start_distance_m
    slots = []
    for key in lane_keys:
        for i in range(n):
            distance = 8.0 + i * VEHICLE_SLOT_M
            if not (key == ("EB", 0) and abs(distance - ego_distance) < 0.5 * VEHICLE_SLOT_M + 4.0):
                slots.append((key, distance))   # (the ego's own slot stays free)
            slots.append((key, -distance))
    return slots


def _slot_arclength(path: Path2D, road: RoadGeometry, distance_m: float) -> float:
    """Arclength ``distance_m`` before the path enters the intersection square, or
    ``-distance_m`` after it leaves it."""
    if distance_m >= 0:
        return _entry_arclength(path, road) - distance_m
    inside = (np.abs(path.xy) <= road.half_width_m + 1e-6).all(axis=1)
    exit_index = len(inside) - 1 - int(np.argmax(inside[::-1]))
    return float(path.s_m[exit_index]) - distance_m


def _vehicle_kind(rng: np.random.Generator) -> ActorKind:
    kinds = list(VEHICLE_KIND_WEIGHTS)
    weights = np.array([VEHICLE_KIND_WEIGHTS[k] for k in kinds])
    return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]


def _turn(wants_turn: bool, turn_left: bool, family: str) -> str:
    if not wants_turn:
        return "straight"
    turn = "left" if turn_left else "right"
    # Nobody turns into the eastbound lanes, where the ego drives (see _actors).
    target = LEFT_OF[family] if turn == "left" else RIGHT_OF[family]
    return "straight" if target == "EB" else turn


def _draw_size(kind: ActorKind, rng: np.random.Generator) -> np.ndarray:
    """(3,) length, width, height from the kind's normal distributions (at least half the mean)."""
    return np.array([max(rng.normal(m, s), 0.5 * m) for m, s in SIZE_STATS_M[kind]])


def _make_actor(actor_id: int, kind: ActorKind, size: np.ndarray, path: Path2D, s0_m: float,
                speed_mps: float, rng: np.random.Generator) -> Actor:
    return Actor(actor_id, kind, size, path, float(s0_m), float(speed_mps),
                 _albedo(kind, rng), _reflectivity(kind, rng))


def _albedo(kind: ActorKind, rng: np.random.Generator) -> np.ndarray:
    """Class-dependent palettes with per-instance jitter, so classes and instances differ."""
    if ACTOR_CLASS[kind] is ObjectClass.VEHICLE:
        palette = np.array([[0.75, 0.1, 0.1], [0.1, 0.2, 0.7], [0.9, 0.9, 0.9], [0.08, 0.08, 0.1],
                            [0.6, 0.62, 0.65], [0.85, 0.7, 0.1], [0.1, 0.45, 0.2]])
    elif kind is ActorKind.PEDESTRIAN:
        palette = np.array([[0.55, 0.1, 0.55], [0.9, 0.45, 0.1], [0.2, 0.6, 0.8], [0.95, 0.3, 0.5]])
    else:
        palette = np.array([[0.1, 0.85, 0.3], [0.95, 0.85, 0.0], [0.0, 0.8, 0.8]])
    base = palette[int(rng.integers(len(palette)))]
    return np.clip(base + rng.normal(0.0, 0.04, 3), 0.02, 1.0)


def _reflectivity(kind: ActorKind, rng: np.random.Generator) -> float:
    base = {ObjectClass.VEHICLE: 0.45, ObjectClass.PEDESTRIAN: 0.3, ObjectClass.CYCLIST: 0.35}
    return float(np.clip(base[ACTOR_CLASS[kind]] + rng.normal(0.0, 0.08), 0.05, 0.95))


def _arm_frames() -> list[tuple[np.ndarray, np.ndarray]]:
    """(outward direction, left normal) of the four arms, E, N, W, S."""
    dirs = [np.array(d) for d in ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))]
    return [(d, np.array([-d[1], d[0]])) for d in dirs]


def _parked_cars(n: int, road: RoadGeometry, rng: np.random.Generator,
                 first_id: int) -> list[Actor]:
    if n == 0:
        return []
    offset = road.lanes_half_width_m + 0.5 * road.parking_lane_width_m
    start = road.corner_m + 5.0
    per_strip = int((road.arm_length_m - start) // PARKING_SLOT_M)
    slots = [(arm, side, i) for arm in range(4) for side in (-1.0, 1.0) for i in range(per_strip)]
    chosen = rng.choice(len(slots), size=n, replace=False)
    actors = []
    for k, index in enumerate(sorted(chosen)):
        arm, side, i = slots[index]
        out, left = _arm_frames()[arm]
        centre = out * (start + (i + 0.5) * PARKING_SLOT_M) + side * offset * left
        # Parked along the traffic on that side: right-hand traffic on side -1 drives outward.
        heading_vec = out if side < 0 else -out
        corners = np.array([centre - 0.5 * heading_vec, centre + 0.5 * heading_vec])
        path = fillet_polyline(corners, 0.0)
        actors.append(_make_actor(first_id + k, ActorKind.CAR, _draw_size(ActorKind.CAR, rng),
                                  path, 0.5, 0.0, rng))
    return actors


def _place_pedestrian(cfg: ScenarioConfig, road: RoadGeometry, rng: np.random.Generator,
                      actor_id: int, placed: FootprintSet, times: np.ndarray) -> Actor | None:
    """A pedestrian on a walking loop clear of everything placed, or None after
    PEDESTRIAN_TRIES candidate loops."""
    size = _draw_size(ActorKind.PEDESTRIAN, rng)
    for _ in range(PEDESTRIAN_TRIES):
        path = _walking_loop(cfg, road, rng)
        actor = _make_actor(actor_id, ActorKind.PEDESTRIAN, size, path,
                            float(rng.uniform(0.0, path.length_m)), float(rng.uniform(1.0, 1.6)),
                            rng)
        shape = _footprint_of(actor, times)
        if not placed.conflicts(shape):
            placed.add(shape)
            return actor
    return None


def _walking_loop(cfg: ScenarioConfig, road: RoadGeometry, rng: np.random.Generator) -> Path2D:
    """A closed loop on the sidewalks of one arm; some loops cross the road, on the crosswalk
    and once more further down the road."""
    side_m = road.half_width_m + 0.5 * road.sidewalk_width_m
    lane_m = 0.25 * road.sidewalk_width_m
    out, left = _arm_frames()[int(rng.integers(4))]
    near = road.corner_m + rng.uniform(0.0, 10.0)
    far = min(near + rng.uniform(20.0, 50.0), road.arm_length_m - 2.0)
    if rng.random() < cfg.actors.pedestrian_crossing_fraction:
        near = road.half_width_m + 2.0   # on the crosswalk
        loop = [(near, -side_m), (near, side_m), (far, side_m), (far, -side_m)]
    else:
        side = side_m if rng.random() < 0.5 else -side_m
        loop = [(near, side - lane_m), (far, side - lane_m), (far, side + lane_m),
                (near, side + lane_m)]
    if rng.random() < 0.5:
        loop = loop[::-1]
    # A closed loop: the last corner repeats the first.
    pts = np.array([a * out + b * left for a, b in loop + [loop[0]]])
    return fillet_polyline(pts, 0.3)


def _static_structure(cfg: ScenarioConfig, road: RoadGeometry,
                      rng: np.random.Generator) -> tuple[list[StaticBox], list[Pole]]:
    st = cfg.static
    buildings: list[StaticBox] = []
    poles: list[Pole] = []
    for out, left in _arm_frames():
        for side in (-1.0, 1.0):
            buildings += _building_row(st, road, out, side * left, rng)
            poles += _pole_row(st, road, out, side * left, rng)
    return buildings, poles


def _building_row(st: StaticConfig, road: RoadGeometry, out: np.ndarray, normal: np.ndarray,
                  rng: np.random.Generator) -> list[StaticBox]:
    boxes = []
    along = road.corner_m + rng.uniform(1.0, 6.0)
    while True:
        width = rng.uniform(8.0, 25.0)
        if along + width > road.arm_length_m:
            break
        setback = road.corner_m + rng.uniform(1.0, 4.0)
        if rng.random() < st.building_density:
            centre_along = along + 0.5 * width
            if rng.random() < st.wall_fraction:
                depth, height, material = 0.3, rng.uniform(1.2, 2.5), "wall"
                albedo = (0.55, 0.5, 0.45)
            else:
                depth = rng.uniform(8.0, 20.0)
                height = rng.uniform(st.building_height_min_m, st.building_height_max_m)
                material = "building"
                albedo = tuple(float(v) for v in np.clip(
                    np.array([0.62, 0.55, 0.48]) + rng.normal(0.0, 0.12, 3), 0.1, 0.95))
            centre = out * centre_along + normal * (setback + 0.5 * depth)
            size_along_out = (width, depth)
            sx, sy = (size_along_out if abs(out[0]) > 0.5 else size_along_out[::-1])
            boxes.append(StaticBox((float(centre[0]), float(centre[1])),
                                   (float(sx), float(sy), float(height)), material, albedo))
        along += width + rng.uniform(2.0, 8.0)
    return boxes


def _pole_row(st: StaticConfig, road: RoadGeometry, out: np.ndarray, normal: np.ndarray,
              rng: np.random.Generator) -> list[Pole]:
    if st.pole_spacing_m <= 0:
        return []
    poles = []
    along = road.corner_m + rng.uniform(0.0, st.pole_spacing_m)
    while along < road.arm_length_m:
        centre = out * along + normal * (road.half_width_m + 0.4)
        poles.append(Pole((float(centre[0]), float(centre[1])), 0.15, float(rng.uniform(6, 8))))
        along += st.pole_spacing_m * rng.uniform(0.8, 1.2)
    return poles
