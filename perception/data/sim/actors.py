"""Actor sampling: kinds, sizes and looks of actors, and where the moving ones start.

Every actor follows a :class:`~.paths.Path2D` at a constant speed. Actors do not react to each
other; instead, generation places them only where their footprints stay clear of the ego and of
each other over a horizon (:mod:`.conflicts`). Vehicles and cyclists start in lane slots
(:func:`~.layout.lane_slots`), pedestrians walk loops on the sidewalks of one arm.

Every function here draws from the scenario generator in a fixed order: the same seed gives the
same actors.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from ...types import ObjectClass
from .conflicts import Footprint, FootprintSet, footprint
from .layout import (
    EGO_LANE,
    LaneKey,
    LaneSlot,
    RoadGeometry,
    arm_frames,
    lane_keys,
    lane_slots,
    slot_arclength,
    turn_target,
    vehicle_route,
)
from .paths import Path2D, fillet_polyline
from .settings import ScenarioConfig

VEHICLE_MARGIN_LW_M = (0.5, 0.1)
"""Footprint growth (along, across) for vehicles: a gap ahead and behind, lanes stay usable."""
PEDESTRIAN_MARGIN_LW_M = (0.1, 0.1)
PEDESTRIAN_TRIES = 20
CYCLIST_EDGE_GAP_M = 0.45
"""Cyclists ride this far inside the outer edge of the driving lanes."""


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


# --------------------------------------------------------------------------------------------
# Looks
# --------------------------------------------------------------------------------------------

def draw_size(kind: ActorKind, rng: np.random.Generator) -> np.ndarray:
    """(3,) length, width, height from the kind's normal distributions (at least half the mean)."""
    return np.array([max(rng.normal(m, s), 0.5 * m) for m, s in SIZE_STATS_M[kind]])


def make_actor(actor_id: int, kind: ActorKind, size: np.ndarray, path: Path2D, s0_m: float,
               speed_mps: float, rng: np.random.Generator) -> Actor:
    """An actor with a colour and a reflectivity drawn for its kind."""
    return Actor(actor_id, kind, size, path, float(s0_m), float(speed_mps),
                 _albedo(kind, rng), _reflectivity(kind, rng))


def _vehicle_kind(rng: np.random.Generator) -> ActorKind:
    kinds = list(VEHICLE_KIND_WEIGHTS)
    weights = np.array([VEHICLE_KIND_WEIGHTS[k] for k in kinds])
    return kinds[int(rng.choice(len(kinds), p=weights / weights.sum()))]


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


# --------------------------------------------------------------------------------------------
# Conflict-free placement
# --------------------------------------------------------------------------------------------

def footprint_of(actor: Actor, times: np.ndarray) -> Footprint:
    margin = PEDESTRIAN_MARGIN_LW_M if actor.kind is ActorKind.PEDESTRIAN else VEHICLE_MARGIN_LW_M
    return footprint(actor.path, actor.s0_m, actor.speed_mps, actor.size_lwh_m[0],
                     actor.size_lwh_m[1], times, margin)


@dataclass(eq=False)
class Placement:
    """What has been placed so far, as footprints over the check times ``times``."""

    road: RoadGeometry
    times: np.ndarray
    rng: np.random.Generator
    placed: FootprintSet

    def add(self, actor: Actor) -> None:
        self.placed.add(footprint_of(actor, self.times))

    def try_add(self, actor: Actor) -> bool:
        """Add ``actor`` if its footprint stays clear of everything placed; True if added."""
        shape = footprint_of(actor, self.times)
        if self.placed.conflicts(shape):
            return False
        self.placed.add(shape)
        return True


@dataclass(frozen=True)
class _TrafficRequest:
    """What a vehicle or cyclist is before it has a lane: drawn once, tried in several slots."""

    kind: ActorKind
    size: np.ndarray
    wants_turn: bool
    turn_left: bool

    @property
    def is_cyclist(self) -> bool:
        return self.kind is ActorKind.CYCLIST


def place_traffic(cfg: ScenarioConfig, placement: Placement,
                  first_id: int) -> tuple[list[Actor], int]:
    """Vehicles and cyclists in random lane slots, in random order; returns the placed actors
    (ids from ``first_id``) and how many found no conflict-free slot."""
    act, rng = cfg.actors, placement.rng
    speeds = _lane_speeds(cfg, placement.road, rng)
    slots = lane_slots(placement.road, cfg.ego.start_distance_m)
    free = list(rng.permutation(len(slots)))
    moving = [ActorKind.CYCLIST] * act.num_cyclists + [None] * act.num_vehicles
    actors: list[Actor] = []
    unplaced = 0
    for index in rng.permutation(len(moving)):
        request = _draw_request(moving[index] is ActorKind.CYCLIST, act.turn_fraction, rng)
        actor = _place_in_free_slot(request, first_id + len(actors), slots, free, speeds,
                                    placement)
        if actor is None:
            unplaced += 1
        else:
            actors.append(actor)
    return actors, unplaced


def _lane_speeds(cfg: ScenarioConfig, road: RoadGeometry,
                 rng: np.random.Generator) -> dict[LaneKey, float]:
    act = cfg.actors
    speeds = {key: float(np.clip(rng.normal(act.vehicle_speed_mps, act.vehicle_speed_std_mps),
                                 0.5 * act.vehicle_speed_mps, 2.0 * act.vehicle_speed_mps))
              for key in lane_keys(road)}
    # Traffic in the ego lane moves with the ego, so it neither catches up nor falls behind.
    speeds[EGO_LANE] = cfg.ego.speed_mps
    return speeds


def _draw_request(is_cyclist: bool, turn_fraction: float,
                  rng: np.random.Generator) -> _TrafficRequest:
    kind = ActorKind.CYCLIST if is_cyclist else _vehicle_kind(rng)
    size = draw_size(kind, rng)
    wants_turn = rng.random() < turn_fraction
    turn_left = rng.random() < 0.5
    return _TrafficRequest(kind, size, wants_turn, turn_left)


def _place_in_free_slot(request: _TrafficRequest, actor_id: int, slots: list[LaneSlot],
                        free: list, speeds: dict[LaneKey, float],
                        placement: Placement) -> Actor | None:
    """The request in the first slot of ``free`` (indices into ``slots``, in trial order) where
    it stays clear of everything placed; that slot leaves ``free``. None if no slot works."""
    for slot_index in free:
        (family, lane), distance_m = slots[slot_index]
        path = _traffic_route(request, placement.road, family, lane, distance_m)
        actor = make_actor(actor_id, request.kind, request.size, path,
                           slot_arclength(path, placement.road, distance_m),
                           speeds[(family, lane)], placement.rng)
        if placement.try_add(actor):
            free.remove(slot_index)
            return actor
    return None


def _traffic_route(request: _TrafficRequest, road: RoadGeometry, family: str, lane: int,
                   distance_m: float) -> Path2D:
    # Slots past the intersection (negative distance) have turned already, if at all.
    if request.is_cyclist or distance_m < 0:
        turn = "straight"
    else:
        turn = _turn(request.wants_turn, request.turn_left, family)
    # Cyclists ride at the right edge of the lane, at the lane's speed.
    offset = road.lanes_half_width_m - CYCLIST_EDGE_GAP_M if request.is_cyclist else None
    return vehicle_route(road, family, lane, turn, offset)


def _turn(wants_turn: bool, turn_left: bool, family: str) -> str:
    if not wants_turn:
        return "straight"
    turn = "left" if turn_left else "right"
    # Nobody turns into the eastbound lanes, where the ego drives.
    return "straight" if turn_target(family, turn) == EGO_LANE[0] else turn


def place_pedestrian(placement: Placement, actor_id: int,
                     crossing_fraction: float) -> Actor | None:
    """A pedestrian on a walking loop clear of everything placed, or None after
    PEDESTRIAN_TRIES candidate loops."""
    rng = placement.rng
    size = draw_size(ActorKind.PEDESTRIAN, rng)
    for _ in range(PEDESTRIAN_TRIES):
        path = _walking_loop(placement.road, crossing_fraction, rng)
        actor = make_actor(actor_id, ActorKind.PEDESTRIAN, size, path,
                           float(rng.uniform(0.0, path.length_m)), float(rng.uniform(1.0, 1.6)),
                           rng)
        if placement.try_add(actor):
            return actor
    return None


def _walking_loop(road: RoadGeometry, crossing_fraction: float,
                  rng: np.random.Generator) -> Path2D:
    """A closed loop on the sidewalks of one arm; some loops cross the road, on the crosswalk
    and once more further down the road."""
    side_m = road.half_width_m + 0.5 * road.sidewalk_width_m
    lane_m = 0.25 * road.sidewalk_width_m
    out, left = arm_frames()[int(rng.integers(4))]
    near = road.corner_m + rng.uniform(0.0, 10.0)
    far = min(near + rng.uniform(20.0, 50.0), road.arm_length_m - 2.0)
    if rng.random() < crossing_fraction:
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
