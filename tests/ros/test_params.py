"""Parameters: loaded from params files and ``-p`` overrides by real rclpy nodes, validated
against the schema; invalid values stop the node with a message naming the parameter."""

from __future__ import annotations

from pathlib import Path

import pytest
import rclpy

from perception.errors import ConfigError
from ros_nodes.node_base import load_parameters
from ros_nodes.params import SimNodeParams, SyncNodeParams, parse_launch_overrides

CONFIG = Path(__file__).resolve().parents[2] / "ros_nodes" / "config"


def _load(schema, ros_args: list[str]):
    context = rclpy.Context()
    rclpy.init(args=["node", "--ros-args", *ros_args], context=context)
    node = rclpy.create_node("params_test", context=context)
    try:
        params = load_parameters(node, schema)
        declared = {name: p.value for name, p in node.get_parameters_by_prefix("").items()}
        return params, declared
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)


def test_params_file_and_overrides():
    params, declared = _load(SyncNodeParams, [
        "--params-file", str(CONFIG / "sync.param.yaml"), "-p", "timeout_s:=0.5",
        "-p", "radar_names:=[RADAR_FRONT, RADAR_REAR]"])
    assert params.timeout_s == 0.5 and params.radar_names == ["RADAR_FRONT", "RADAR_REAR"]
    assert params.sync_config().radars == ("RADAR_FRONT", "RADAR_REAR")
    assert declared["timeout_s"] == 0.5 and declared["lidar_name"] == "TOP"


def test_defaults_without_any_file_and_empty_lists(tmp_path):
    params, declared = _load(SimNodeParams, [])
    assert params == SimNodeParams()
    assert declared["preset"] == "tiny"  # declared, so `ros2 param list` shows it
    path = tmp_path / "no_cameras.yaml"
    path.write_text("/**:\n  ros__parameters:\n    camera_names: []\n")
    params, _ = _load(SyncNodeParams, ["--params-file", str(path)])
    assert params.camera_names == [] and params.sync_config().cameras == ()


@pytest.mark.parametrize("override, message", [
    ("seed:=-3", "seed: value -3 out of range: expected >= 0"),
    ("rate_factor:=fast", "rate_factor: expected float, got str 'fast'"),
    ("image_transport:=h264", r"image_transport: expected one of \['raw', 'jpeg', 'png'\]"),
    ("sede:=1", "sede: unknown key; did you mean 'seed'"),
])
def test_invalid_parameters_are_refused_by_name(override, message):
    with pytest.raises(ConfigError, match=message) as exc:
        _load(SimNodeParams, ["-p", override])
    assert "node /params_test parameters" in str(exc.value)


def test_cross_field_check():
    with pytest.raises(ConfigError, match="sensor names must be unique"):
        _load(SyncNodeParams, ["-p", "camera_names:=[TOP]"])


# -------------------------------------------------------------------------------------------
# Launch arguments: the launch_overrides string parameter
# -------------------------------------------------------------------------------------------

def test_launch_overrides_apply_only_given_values_over_the_params_file(tmp_path):
    path = tmp_path / "sync.yaml"
    path.write_text("/**:\n  ros__parameters:\n    timeout_s: 0.35\n    image_transport: "
                    "compressed\n")
    params, declared = _load(SyncNodeParams, [
        "--params-file", str(path),
        "-p", "launch_overrides:=timeout_s:= image_transport:=raw radar_names:=[A, B]"])
    assert params.timeout_s == 0.35  # left empty: the file's value
    assert params.image_transport == "raw" and params.radar_names == ["A", "B"]
    # the declared parameters (what `ros2 param get` answers) are the values in use
    assert declared["image_transport"] == "raw" and declared["timeout_s"] == 0.35
    assert "launch_overrides" not in declared


@pytest.mark.parametrize("overrides, message", [
    ("seed:=-1", "seed: value -1 out of range: expected >= 0"),
    ("duration_s:=long", "duration_s: expected float, got str 'long'"),
    ("sede:=1", "sede: unknown key; did you mean 'seed'"),
    ("seed 1", r"launch_overrides: expected name:=value items separated by spaces"),
])
def test_bad_launch_overrides_are_refused_by_name(overrides, message):
    with pytest.raises(ConfigError, match=message) as exc:
        _load(SimNodeParams, ["-p", f"launch_overrides:={overrides}"])
    assert "node /params_test parameters" in str(exc.value)


@pytest.mark.parametrize("text, expected", [
    ("", {}),
    ("a:= b:=", {}),
    ("seed:=3 rate_factor:=0.5 flag:=false name:=tiny", {"seed": 3, "rate_factor": 0.5,
                                                         "flag": False, "name": "tiny"}),
    ("rate:=1e3 path:=/a b/c.yaml  nested.key:=[1, 2]", {"rate": 1000.0, "path": "/a b/c.yaml",
                                                          "nested.key": [1, 2]}),
    ("bad:=[1, x:=1", {"bad": "[1,", "x": 1}),
])
def test_parse_launch_overrides(text, expected):
    assert parse_launch_overrides(text) == expected
