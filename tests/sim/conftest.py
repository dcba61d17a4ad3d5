"""Helpers for the simulator tests: small configs derived from the ``tiny`` preset."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perception.config import load_yaml_with_base, merge
from perception.data.sim import SimConfig, Simulator, preset_path, sim_config_from_dict
from perception.data.sim.actors import Actor, ActorKind
from perception.data.sim.paths import fillet_polyline

EMPTY_WORLD = {
    "scenario": {
        "actors": {"num_vehicles": 0, "num_parked_cars": 0, "num_pedestrians": 0,
                   "num_cyclists": 0},
        "static": {"building_density": 0.0, "pole_spacing_m": 0.0},
    },
}
NOISELESS_LIDAR = {"rig": {"lidar": {"range_noise_std_m": 0.0, "dropout_prob": 0.0,
                                     "intensity_noise_std": 0.0}}}


def tiny_config(*overrides: dict) -> SimConfig:
    """The ``tiny`` preset with the given mappings merged over it (later ones win)."""
    data = load_yaml_with_base(preset_path("tiny"))
    for override in overrides:
        data = merge(data, override)
    return sim_config_from_dict(data, source="test")


def with_static_actor(sim: Simulator, kind: ActorKind, offset_xy: tuple[float, float],
                      size_lwh: tuple[float, float, float], actor_id: int = 99,
                      speed_mps: float = 0.0, heading: float = 0.0) -> Actor:
    """Place one actor at ``offset_xy`` from the ego's start position (world axes) and rebuild
    the simulator's world with it as the only actor. Returns the actor."""
    ego_xy = sim.scenario.ego_motion(0.0).xy[0]
    centre = ego_xy + np.asarray(offset_xy)
    direction = np.array([np.cos(heading), np.sin(heading)])
    path = fillet_polyline(np.array([centre - 50.0 * direction, centre + 50.0 * direction]), 0.0)
    actor = Actor(actor_id, kind, np.asarray(size_lwh, np.float64), path, 50.0, speed_mps,
                  np.array([0.8, 0.1, 0.1]), 0.5)
    sim.scenario = dataclasses.replace(sim.scenario, actors=[actor])
    from perception.data.sim.world import World

    sim.world = World(sim.scenario)
    return actor


@pytest.fixture(scope="module")
def tiny_sim() -> Simulator:
    return Simulator("tiny", seed=0)
