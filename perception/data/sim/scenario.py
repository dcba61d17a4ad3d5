"""Scenario: a generated world (layout, static structure, actors, ego route) and its motion.

:func:`make_scenario` builds everything from a seed: the road layout (:mod:`.layout`), the
static structure (:mod:`.structure`), then the actors (:mod:`.actors`), each placed clear of
the ego and of everything placed before it. :class:`Scenario` gives the poses of the actors and
of the ego at any time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .actors import (
    VEHICLE_MARGIN_LW_M,
    Actor,
    Placement,
    place_pedestrian,
    place_traffic,
)
from .conflicts import CHECK_STEP_S, FootprintSet, footprint
from .layout import (
    EGO_LANE,
    RoadGeometry,
    entry_arclength,
    road_geometry,
    vehicle_route,
)
from .paths import Path2D
from .settings import ScenarioConfig
from .structure import Pole, StaticBox, parked_cars, static_structure

EGO_LENGTH_M, EGO_WIDTH_M = 4.8, 2.1
"""Footprint of the ego vehicle (centred on the vehicle origin) for conflict checks."""
LAP_ID_STRIDE = 1_000_000
"""Ground-truth id of an actor on lap k of an open route: ``actor_id + k * LAP_ID_STRIDE``."""


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

def make_scenario(cfg: ScenarioConfig, seed: int) -> Scenario:
    """Generate the scenario for ``seed``. The same (config, seed) gives the same scenario."""
    rng = np.random.default_rng([int(seed), 0x5CE7])
    road = road_geometry(cfg.layout)
    buildings, poles = static_structure(cfg.static, road, rng)
    family, lane = EGO_LANE
    ego_path = vehicle_route(road, family, lane, cfg.ego.route)
    ego_s0 = entry_arclength(ego_path, road) - (cfg.ego.start_distance_m - road.half_width_m)
    times = np.arange(0.0, cfg.actors.conflict_free_horizon_s + 1e-9, CHECK_STEP_S)
    placed = FootprintSet()
    placed.add(footprint(ego_path, ego_s0, cfg.ego.speed_mps, EGO_LENGTH_M, EGO_WIDTH_M, times,
                         VEHICLE_MARGIN_LW_M))
    actors, unplaced = _actors(cfg, Placement(road, times, rng, placed))
    return Scenario(cfg, road, buildings, poles, actors, ego_path, ego_s0, cfg.ego.speed_mps,
                    unplaced)


def _actors(cfg: ScenarioConfig, placement: Placement) -> tuple[list[Actor], int]:
    """Parked cars, then vehicles and cyclists, then pedestrians, each placed only where its
    footprint stays clear of everything placed before it; also how many found no place."""
    act = cfg.actors
    actors = parked_cars(act.num_parked_cars, placement.road, placement.rng, first_id=1)
    for car in actors:
        placement.add(car)
    traffic, unplaced = place_traffic(cfg, placement, first_id=len(actors) + 1)
    actors += traffic
    for _ in range(act.num_pedestrians):
        actor = place_pedestrian(placement, len(actors) + 1, act.pedestrian_crossing_fraction)
        if actor is None:
            unplaced += 1
        else:
            actors.append(actor)
    return actors, unplaced
