"""Scenario: actors on plausible surfaces with plausible sizes, ego routes, static structure."""

from __future__ import annotations

import numpy as np
import pytest

from perception.data.sim import Simulator
from perception.data.sim.actors import ActorKind
from perception.data.sim.scenario import make_scenario
from perception.data.sim.world import Material, surface_material
from perception.types import ObjectClass

from .conftest import tiny_config


def _positions(scenario, kinds, times=(0.0, 2.0, 5.0, 9.0)):
    rows = [i for i, a in enumerate(scenario.actors) if a.kind in kinds]
    xy = [scenario.actor_states(t).center[rows, :2] for t in times]
    return np.concatenate(xy) if rows else np.zeros((0, 2))


def test_actors_stay_on_their_surfaces():
    sim = Simulator("waymo_like", seed=3)
    scenario, road = sim.scenario, sim.scenario.road
    vehicles = _positions(scenario, {ActorKind.CAR, ActorKind.VAN, ActorKind.TRUCK,
                                     ActorKind.BUS, ActorKind.CYCLIST})
    on = surface_material(vehicles, road)
    assert len(vehicles) > 0 and np.isin(on, [Material.ROAD, Material.MARKING]).all()
    walkers = _positions(scenario, {ActorKind.PEDESTRIAN})
    on = surface_material(walkers, road)
    assert len(walkers) > 0 and (on != Material.GRASS).all()
    assert (on == Material.SIDEWALK).mean() > 0.5


def test_sizes_follow_class_distributions():
    scenario = make_scenario(tiny_config().scenario, seed=0)
    big = make_scenario(Simulator("waymo_like", seed=1).config.scenario, seed=1)
    for actor in scenario.actors + big.actors:
        l, w, h = actor.size_lwh_m
        if actor.object_class is ObjectClass.VEHICLE:
            assert 3.0 < l < 15.0 and 1.5 < w < 2.8 and 1.2 < h < 4.5
        elif actor.object_class is ObjectClass.PEDESTRIAN:
            assert 0.3 < l < 1.4 and 1.3 < h < 2.1
        else:
            assert 1.4 < l < 2.2 and 1.4 < h < 2.1
    kinds = {a.kind for a in big.actors}
    assert {ActorKind.CAR, ActorKind.PEDESTRIAN, ActorKind.CYCLIST} <= kinds


@pytest.mark.parametrize("route,heading,x_sign", [("left", np.pi / 2, 1.0),
                                                  ("right", -np.pi / 2, -1.0)])
def test_ego_turns_onto_the_chosen_road(route, heading, x_sign):
    cfg = tiny_config({"scenario": {"ego": {"route": route, "speed_mps": 10.0}}})
    scenario = make_scenario(cfg.scenario, seed=0)
    before = scenario.ego_motion(0.0)
    np.testing.assert_allclose(before.heading[0], 0.0, atol=1e-6)
    motion = scenario.ego_motion((cfg.scenario.ego.start_distance_m + 30.0) / 10.0)
    assert np.cos(motion.heading[0] - heading) > 0.999
    lane_offset = scenario.road.lane_offset_m(0)
    assert motion.xy[0, 0] == pytest.approx(x_sign * lane_offset, abs=0.05)


def test_static_structure_lines_the_roads():
    scenario = Simulator("waymo_like", seed=0).scenario
    road = scenario.road
    assert len(scenario.buildings) > 10 and len(scenario.poles) > 10
    materials = {b.material for b in scenario.buildings}
    assert materials == {"building", "wall"}
    centres = np.array([b.center_xy for b in scenario.buildings])
    # Buildings stand beside the roads, never on them or on the sidewalks.
    assert (surface_material(centres, road) == Material.GRASS).all()
    poles = np.array([p.center_xy for p in scenario.poles])
    assert (surface_material(poles, road) == Material.SIDEWALK).all()


def test_nobody_drives_or_walks_through_anybody_within_the_horizon():
    from perception.geometry import boxes_iou_bev

    sim = Simulator("waymo_like", seed=0)
    assert sim.scenario.unplaced == 0
    ego = np.array([[0.0, 0.0, 0.8, 4.8, 2.1, 1.6, 0.0]], np.float32)
    horizon = sim.config.scenario.actors.conflict_free_horizon_s
    for t_s in np.arange(0.0, horizon, 0.5):
        boxes = sim.ground_truth(sim.start_stamp_ns + int(t_s * 1e9), None).boxes
        everything = np.concatenate([ego, boxes])
        iou = boxes_iou_bev(everything, everything)
        np.fill_diagonal(iou, 0.0)
        assert iou.max() == 0.0, f"overlap at t = {t_s} s"


def test_ego_stops_at_the_end_of_its_route_instead_of_jumping():
    scenario = make_scenario(tiny_config().scenario, seed=0)
    end_s = scenario.ego_route_duration_s
    assert end_s > 5.0
    times = np.arange(0.0, end_s + 20.0, 0.1)
    motion = scenario.ego_motion(times)
    step_m = np.linalg.norm(np.diff(motion.xy, axis=0), axis=1)
    # Never more than one step of travel between ticks: no teleport back to the route start.
    assert step_m.max() <= scenario.ego_speed_mps * 0.1 + 1e-6
    after = times > end_s + 1e-6
    assert (motion.speed_mps[after] == 0).all() and (step_m[after[:-1]] < 1e-9).all()
    assert (motion.speed_mps[times < end_s - 0.1] == scenario.ego_speed_mps).all()


def test_actor_restarting_an_open_route_gets_a_new_ground_truth_id():
    from perception.data.sim.scenario import LAP_ID_STRIDE

    from .conftest import with_static_actor

    cfg = tiny_config({"scenario": {"ego": {"speed_mps": 0.0},
                                    "actors": {"label_range_m": 200.0}}})
    sim = Simulator(cfg, seed=0)
    # A car on a 100 m route at 10 m/s, starting mid-route: it restarts after 5 s.
    actor = with_static_actor(sim, ActorKind.CAR, (15.0, 0.0), (4.5, 1.9, 1.6), actor_id=7,
                              speed_mps=10.0)
    assert not actor.path.is_closed
    before = sim.scenario.actor_states(4.0)
    after = sim.scenario.actor_states(6.0)
    assert before.lap[0] == 0 and after.lap[0] == 1
    ids = {int(i) for k in (0, 60) for i in sim.ground_truth(sim.lidar_stamp_ns(k), None).ids}
    assert ids <= {7, 7 + LAP_ID_STRIDE} and 7 + LAP_ID_STRIDE in ids
