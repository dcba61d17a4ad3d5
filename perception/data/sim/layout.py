"""Road layout: a 4-way intersection plus a curve, its lanes, the routes through it, capacities.

World frame: flat ground at z = 0, the intersection centre at the origin, x east, y north.
Traffic drives on the right. Lane families are named by their travel direction: EB (east),
WB (west), NB (north), SB (south); lane 0 is the rightmost lane of a family.

This module holds the layout section of the config schema as well, so that the config checks
(:mod:`.settings`) and scenario generation can both use the layout without depending on each
other.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .paths import Path2D, fillet_polyline

VEHICLE_SLOT_M = 16.0
"""Spacing of the initial vehicle slots along a lane (longer than a bus plus a gap)."""
FIRST_SLOT_M = 8.0
"""Distance of the first vehicle slot from the intersection square."""
PARKING_SLOT_M = 7.0
"""Spacing of parking slots."""
PARKING_START_M = 5.0
"""Gap between the sidewalk corner and the first parking slot."""
MIN_PARKING_LANE_WIDTH_M = 2.0
"""Narrower parking lanes hold no parked cars."""
ROUTE_TAIL_M = 30.0
"""Straight run after the curve at the east end, so curve traffic leaves it before restarting."""

FAMILIES = {"EB": (1.0, 0.0), "WB": (-1.0, 0.0), "NB": (0.0, 1.0), "SB": (0.0, -1.0)}
LEFT_OF = {"EB": "NB", "NB": "WB", "WB": "SB", "SB": "EB"}
RIGHT_OF = {"EB": "SB", "SB": "WB", "WB": "NB", "NB": "EB"}
EGO_LANE = ("EB", 0)
"""The ego drives eastbound in the rightmost lane, starting on the west arm."""

LaneKey = tuple[str, int]
"""(family, lane index)."""
LaneSlot = tuple[LaneKey, float]
"""(lane, distance): positive before the intersection square, negative after it."""
ParkingSlot = tuple[int, float, int]
"""(arm index into :func:`arm_frames`, side -1 right / +1 left of the outward direction, index)."""


@dataclass(frozen=True)
class LayoutConfig:
    """Road network: a 4-way intersection at the world origin plus a curve at the east end.

    The east-west road runs from ``x = -arm_length_m`` to ``x = +arm_length_m`` and continues
    into a 90-degree left curve of centre-line radius ``curve_radius_m``; the north-south road
    runs from ``y = -arm_length_m`` to ``y = +arm_length_m``.
    """

    arm_length_m: float = field(default=120.0, metadata={"gt": 0})
    lanes_per_direction: int = field(default=1, metadata={"ge": 1, "le": 3})
    lane_width_m: float = field(default=3.5, metadata={"gt": 0})
    parking_lane_width_m: float = field(default=2.5, metadata={"ge": 0})
    sidewalk_width_m: float = field(default=3.0, metadata={"gt": 0})
    curve_radius_m: float = field(default=40.0, metadata={"gt": 0})


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


def road_geometry(lay: LayoutConfig) -> RoadGeometry:
    lanes_half = lay.lanes_per_direction * lay.lane_width_m
    return RoadGeometry(
        arm_length_m=lay.arm_length_m, lane_width_m=lay.lane_width_m,
        lanes_per_direction=lay.lanes_per_direction, lanes_half_width_m=lanes_half,
        half_width_m=lanes_half + lay.parking_lane_width_m,
        sidewalk_width_m=lay.sidewalk_width_m, curve_radius_m=lay.curve_radius_m,
        parking_lane_width_m=lay.parking_lane_width_m)


def arm_frames() -> list[tuple[np.ndarray, np.ndarray]]:
    """(outward direction, left normal) of the four arms, E, N, W, S."""
    dirs = [np.array(d) for d in ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))]
    return [(d, np.array([-d[1], d[0]])) for d in dirs]


# --------------------------------------------------------------------------------------------
# Routes
# --------------------------------------------------------------------------------------------

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


def turn_target(family: str, turn: str) -> str:
    """The family a lane of ``family`` leads to after a ``"left"`` or ``"right"`` turn."""
    return LEFT_OF[family] if turn == "left" else RIGHT_OF[family]


def vehicle_route(road: RoadGeometry, family: str, lane: int, turn: str,
                  offset_m: float | None = None) -> Path2D:
    """Path of a lane: through the intersection straight, or turning left/right."""
    o = road.lane_offset_m(lane) if offset_m is None else offset_m
    corners, radii = _approach(road, family, o)
    if turn == "straight":
        out_corners, out_radii = _exit(road, family, o)
        return fillet_polyline(np.array(corners + out_corners), np.array(radii + out_radii))
    target = turn_target(family, turn)
    h, h2 = np.array(FAMILIES[family]), np.array(FAMILIES[target])
    corner = o * _right(h) + o * _right(h2)
    # The turn arc starts where the lane enters the intersection square.
    radius = road.half_width_m + float(corner @ h)
    out_corners, out_radii = _exit(road, target, o)
    return fillet_polyline(np.array(corners + [tuple(corner)] + out_corners),
                           np.array(radii + [radius] + out_radii))


def _inside_square(path: Path2D, road: RoadGeometry) -> np.ndarray:
    return (np.abs(path.xy) <= road.half_width_m + 1e-6).all(axis=1)


def entry_arclength(path: Path2D, road: RoadGeometry) -> float:
    """Arclength at which the path first enters the intersection square."""
    return float(path.s_m[int(np.argmax(_inside_square(path, road)))])


def exit_arclength(path: Path2D, road: RoadGeometry) -> float:
    """Arclength at which the path last leaves the intersection square."""
    inside = _inside_square(path, road)
    return float(path.s_m[len(inside) - 1 - int(np.argmax(inside[::-1]))])


# --------------------------------------------------------------------------------------------
# Slots and capacities
# --------------------------------------------------------------------------------------------

def lane_keys(road: RoadGeometry) -> list[LaneKey]:
    return [(f, lane) for f in FAMILIES for lane in range(road.lanes_per_direction)]


def lane_slots(road: RoadGeometry, ego_start_distance_m: float) -> list[LaneSlot]:
    """Initial positions ``(lane, distance)`` at VEHICLE_SLOT_M spacing on both sides of the
    intersection: a positive distance lies before the intersection, a negative one after it."""
    n = int((road.arm_length_m - road.corner_m) // VEHICLE_SLOT_M)
    slots = []
    for key in lane_keys(road):
        for i in range(n):
            distance = FIRST_SLOT_M + i * VEHICLE_SLOT_M
            near_ego = abs(distance - ego_start_distance_m) < 0.5 * VEHICLE_SLOT_M + 4.0
            if not (key == EGO_LANE and near_ego):
                slots.append((key, distance))   # (the ego's own slot stays free)
            slots.append((key, -distance))
    return slots


def slot_arclength(path: Path2D, road: RoadGeometry, distance_m: float) -> float:
    """Arclength ``distance_m`` before the path enters the intersection square, or
    ``-distance_m`` after it leaves it."""
    if distance_m >= 0:
        return entry_arclength(path, road) - distance_m
    return exit_arclength(path, road) - distance_m


def parking_slots(road: RoadGeometry) -> list[ParkingSlot]:
    """Parking slots along both sides of every arm (whatever the parking lane's width)."""
    per_strip = int((road.arm_length_m - parking_start_m(road)) // PARKING_SLOT_M)
    return [(arm, side, i) for arm in range(4) for side in (-1.0, 1.0) for i in range(per_strip)]


def parking_start_m(road: RoadGeometry) -> float:
    """Distance from the origin along an arm at which the parking strips begin."""
    return road.corner_m + PARKING_START_M


def moving_actor_capacity(road: RoadGeometry, ego_start_distance_m: float) -> int:
    """How many vehicles plus cyclists fit in the initial lane slots of this layout."""
    return len(lane_slots(road, ego_start_distance_m))


def parking_capacity(road: RoadGeometry) -> int:
    """How many parked cars fit (0 when the parking lane is too narrow to park)."""
    if road.parking_lane_width_m < MIN_PARKING_LANE_WIDTH_M:
        return 0
    return len(parking_slots(road))
