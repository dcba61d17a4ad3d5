"""Bad simulator configs are refused with clear ConfigErrors."""

from __future__ import annotations

from pathlib import Path

import pytest

from perception.data.sim import (
    RigConfig,
    SimConfig,
    SimLidarConfig,
    Simulator,
    load_sim_config,
    preset_path,
)
from perception.errors import ConfigError

from .conftest import tiny_config


@pytest.mark.parametrize("override,key", [
    ({"rig": {"lidar": {"rate_hz": -10.0}}}, "rig.lidar.rate_hz"),
    ({"rig": {"radars": [{"name": "R", "rate_hz": 0.0}]}}, "rig.radars[0].rate_hz"),
    ({"rig": {"cameras": [{"name": "C", "rate_hz": -1.0}]}}, "rig.cameras[0].rate_hz"),
    ({"rig": {"lidar": {"num_beams": 0}}}, "rig.lidar.num_beams"),
    ({"rig": {"lidar": {"azimuth_steps": 0}}}, "rig.lidar.azimuth_steps"),
    ({"rig": {"lidar": {"beam_spacing": "random"}}}, "rig.lidar.beam_spacing"),
    ({"rig": {"lidar": {"min_range_m": 80.0}}}, "rig.lidar.min_range_m"),
    ({"rig": {"lidar": {"mount_xyz_m": [0.0, 0.0, -1.0]}}}, "rig.lidar.mount_xyz_m"),
    ({"rig": {"cameras": [{"name": "TOP"}]}}, "duplicate sensor names"),
    ({"scenario": {"layout": {"arm_length_m": 20.0}}}, "scenario.layout.arm_length_m"),
    ({"scenario": {"layout": {"curve_radius_m": 6.0}}}, "scenario.layout.curve_radius_m"),
    ({"scenario": {"actors": {"num_vehicles": 500}}}, "scenario.actors.num_vehicles"),
    ({"scenario": {"actors": {"num_parked_cars": 3}, "layout": {"parking_lane_width_m": 0.0}}},
     "scenario.actors.num_parked_cars"),
    ({"scenario": {"ego": {"start_distance_m": 500.0}}}, "scenario.ego.start_distance_m"),
    ({"scenario": {"ego": {"route": "u_turn"}}}, "scenario.ego.route"),
    ({"scenario": {"static": {"building_height_min_m": 30.0}}},
     "scenario.static.building_height_min_m"),
    ({"scenario": {"actors": {"num_wizards": 3}}}, "num_wizards"),
])
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ConfigError, match=key.replace("[", r"\[").replace("]", r"\]")):
        tiny_config(override)


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ConfigError, match="unknown simulator preset 'waymo'.*waymo_like"):
        Simulator("waymo", seed=0)


def test_config_objects_built_in_code_are_checked_too():
    bad = SimConfig(rig=RigConfig(lidar=SimLidarConfig(num_beams=0)))
    with pytest.raises(ConfigError, match="rig.lidar.num_beams"):
        Simulator(bad, seed=0)


def test_yaml_file_with_base_and_a_bad_value_names_the_file(tmp_path: Path):
    path = tmp_path / "mine.yaml"
    path.write_text(f"base: {preset_path('tiny')}\nrig:\n  lidar:\n    rate_hz: -5\n")
    with pytest.raises(ConfigError, match="mine.yaml.*rig.lidar.rate_hz"):
        load_sim_config(path)
    path.write_text(f"base: {preset_path('tiny')}\nrig:\n  lidar:\n    num_beams: 8\n")
    assert Simulator(path, seed=0).lidar.inclination_rad.shape == (8,)


@pytest.mark.parametrize("override,key", [
    ({"scenario": {"sequence_id": ""}}, "scenario.sequence_id"),
    ({"rig": {"cameras": [{"name": "C", "trigger_offset_s": 0.5}]}},
     r"rig.cameras\[0\].trigger_offset_s"),
    ({"rig": {"lidar": {"dropout_prob": 1.5}}}, "rig.lidar.dropout_prob"),
])
def test_more_bad_values(override, key):
    with pytest.raises(ConfigError, match=key):
        tiny_config(override)
