"""Static structure along the roads: buildings and walls, poles, and parked cars.

Buildings and walls stand in rows behind the sidewalks of both sides of every arm, poles on
the curb. Parked cars are actors that never move; they fill randomly chosen parking slots
(:func:`~.layout.parking_slots`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .actors import Actor, ActorKind, draw_size, make_actor
from .layout import (
    PARKING_SLOT_M,
    ParkingSlot,
    RoadGeometry,
    arm_frames,
    parking_slots,
    parking_start_m,
)
from .paths import fillet_polyline
from .settings import StaticConfig

POLE_RADIUS_M = 0.15
POLE_CURB_GAP_M = 0.4
"""Poles stand this far behind the curb, on the sidewalk."""


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


def static_structure(st: StaticConfig, road: RoadGeometry,
                     rng: np.random.Generator) -> tuple[list[StaticBox], list[Pole]]:
    """Buildings, walls and poles along both sides of every arm."""
    buildings: list[StaticBox] = []
    poles: list[Pole] = []
    for out, left in arm_frames():
        for side in (-1.0, 1.0):
            buildings += _building_row(st, road, out, side * left, rng)
            poles += _pole_row(st, road, out, side * left, rng)
    return buildings, poles


def _building_row(st: StaticConfig, road: RoadGeometry, out: np.ndarray, normal: np.ndarray,
                  rng: np.random.Generator) -> list[StaticBox]:
    """Lots of random width along the arm ``out`` on the side ``normal``; a lot holds a building
    or a wall with probability ``building_density``."""
    boxes = []
    along = road.corner_m + rng.uniform(1.0, 6.0)
    while True:
        width = rng.uniform(8.0, 25.0)
        if along + width > road.arm_length_m:
            break
        setback = road.corner_m + rng.uniform(1.0, 4.0)
        if rng.random() < st.building_density:
            boxes.append(_lot_box(st, out, normal, along + 0.5 * width, width, setback, rng))
        along += width + rng.uniform(2.0, 8.0)
    return boxes


def _lot_box(st: StaticConfig, out: np.ndarray, normal: np.ndarray, centre_along: float,
             width: float, setback: float, rng: np.random.Generator) -> StaticBox:
    """A wall or a building filling a lot of ``width`` along the arm, ``setback`` from it."""
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
    return StaticBox((float(centre[0]), float(centre[1])),
                     (float(sx), float(sy), float(height)), material, albedo)


def _pole_row(st: StaticConfig, road: RoadGeometry, out: np.ndarray, normal: np.ndarray,
              rng: np.random.Generator) -> list[Pole]:
    if st.pole_spacing_m <= 0:
        return []
    poles = []
    along = road.corner_m + rng.uniform(0.0, st.pole_spacing_m)
    while along < road.arm_length_m:
        centre = out * along + normal * (road.half_width_m + POLE_CURB_GAP_M)
        poles.append(Pole((float(centre[0]), float(centre[1])), POLE_RADIUS_M,
                          float(rng.uniform(6, 8))))
        along += st.pole_spacing_m * rng.uniform(0.8, 1.2)
    return poles


def parked_cars(n: int, road: RoadGeometry, rng: np.random.Generator,
                first_id: int) -> list[Actor]:
    """``n`` cars in distinct random parking slots, ids from ``first_id``."""
    if n == 0:
        return []
    slots = parking_slots(road)
    chosen = rng.choice(len(slots), size=n, replace=False)
    return [_parked_car(first_id + k, road, slots[index], rng)
            for k, index in enumerate(sorted(chosen))]


def _parked_car(actor_id: int, road: RoadGeometry, slot: ParkingSlot,
                rng: np.random.Generator) -> Actor:
    arm, side, i = slot
    out, left = arm_frames()[arm]
    offset = road.lanes_half_width_m + 0.5 * road.parking_lane_width_m
    centre = out * (parking_start_m(road) + (i + 0.5) * PARKING_SLOT_M) + side * offset * left
    # Parked along the traffic on that side: right-hand traffic on side -1 drives outward.
    heading_vec = out if side < 0 else -out
    # A 1 m stand-still path: its direction gives the car's heading.
    corners = np.array([centre - 0.5 * heading_vec, centre + 0.5 * heading_vec])
    return make_actor(actor_id, ActorKind.CAR, draw_size(ActorKind.CAR, rng),
                      fillet_polyline(corners, 0.0), 0.5, 0.0, rng)
