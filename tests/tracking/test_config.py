"""Tracker configuration: the YAML presets load, bad values are refused with the key named."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from perception.errors import ConfigError
from perception.tracking import (
    ManagementConfig,
    Tracker,
    TrackerConfig,
    check_tracker_config,
    load_tracker_config,
    tracker_config_from_dict,
)

PRESETS = Path(__file__).resolve().parents[2] / "configs" / "tracking"


@pytest.mark.parametrize("name", ["sim.yaml", "waymo.yaml"])
def test_presets_load_and_build_a_tracker(name):
    config = load_tracker_config(PRESETS / name)
    assert isinstance(config, TrackerConfig)
    assert config.motion.model in ("cv", "ctrv")
    assert Tracker(config).model.name == config.motion.model


def test_presets_differ_where_documented():
    sim = load_tracker_config(PRESETS / "sim.yaml")
    waymo = load_tracker_config(PRESETS / "waymo.yaml")
    assert waymo.association.use_detection_velocity and not sim.association.use_detection_velocity
    assert waymo.association.center_gate_m.vehicle > sim.association.center_gate_m.vehicle


@pytest.mark.parametrize("name", ["sim.yaml", "waymo.yaml"])
def test_presets_spell_out_the_whole_schema(name):
    """Every field appears in each preset, so a renamed field cannot go unnoticed."""
    import yaml

    data = yaml.safe_load((PRESETS / name).read_text())
    for section in ("motion", "measurement", "association", "management"):
        schema = {f.name for f in dataclasses.fields(getattr(TrackerConfig(), section))}
        assert set(data[section]) == schema, section


@pytest.mark.parametrize("mapping, key", [
    ({"motion": {"model": "bicycle"}}, "motion.model"),
    ({"association": {"center_gate_m": {"vehicle": -1.0}}}, "association.center_gate_m.vehicle"),
    ({"management": {"confirm_hits": 0}}, "management.confirm_hits"),
    ({"management": {"on_time_reversal": "ignore"}}, "management.on_time_reversal"),
    ({"management": {"max_coast_frame": 3}}, "management.max_coast_frame"),
])
def test_bad_values_raise_config_error_naming_the_key(mapping, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        tracker_config_from_dict(mapping, source="test.yaml")


def test_configs_built_in_python_are_checked_too():
    bad = TrackerConfig(management=ManagementConfig(score_decay=1.5))
    with pytest.raises(ConfigError, match="management.score_decay"):
        check_tracker_config(bad)
    with pytest.raises(ConfigError):
        Tracker(bad)
    with pytest.raises(ConfigError):
        Tracker({"motion": {"model": "cv"}})


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_tracker_config(tmp_path / "nope.yaml")


def test_defaults_equal_the_sim_preset():
    assert load_tracker_config(PRESETS / "sim.yaml") == TrackerConfig()
