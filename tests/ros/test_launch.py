"""The launch-file runner: the supported subset parses, everything else is refused clearly."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from perception.errors import ConfigError
from perception.launch import (
    package_share,
    parse_launch_file,
    parse_overrides,
    resolve_launch_file,
)

SHARE = package_share("fusion_perception")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "test.launch.yaml"
    path.write_text(text)
    return path


def test_project_launch_files_parse_with_defaults_and_overrides():
    sim = parse_launch_file(resolve_launch_file("sim.launch.yaml"), {"seed": "7"})
    (node,) = sim.nodes
    assert (node.pkg, node.exec, node.name) == ("fusion_perception", "sim_node", "sim")
    command = node.command()
    assert command[:3] == [sys.executable, "-m", "ros_nodes.sim_node"]
    assert command[command.index("--params-file") + 1] == str(SHARE / "config"
                                                             / "sim.param.yaml")
    assert "seed:=7" in command and "preset:=tiny" in command
    assert command[command.index("--ros-args") + 1:][:2] == ["-r", "__node:=sim"]

    perception = parse_launch_file(resolve_launch_file("perception.launch.yaml"),
                                   {"lidar_topic": "/velodyne_points"})
    (sync,) = perception.nodes
    assert sync.remaps == (("/sensors/lidar/points", "/velodyne_points"),)
    assert "/sensors/lidar/points:=/velodyne_points" in sync.command()


def test_substitutions(tmp_path, monkeypatch):
    monkeypatch.setenv("FP_TEST_SEED", "11")
    path = _write(tmp_path, """
launch:
- arg: {name: seed, default: "$(env FP_TEST_SEED)"}
- arg: {name: rate, default: "$(env FP_TEST_UNSET 2.5)"}
- node:
    pkg: fusion_perception
    exec: sim_node
    name: sim_a
    args: "--flag 'two words'"
    param:
    - {name: seed, value: "$(var seed)"}
    - {name: rate_factor, value: "$(var rate)"}
""")
    (node,) = parse_launch_file(path, {}).nodes
    assert node.params == (("value", "seed:=11"), ("value", "rate_factor:=2.5"))
    assert node.args == ("--flag", "two words")
    assert node.command().index("--flag") < node.command().index("--ros-args")


@pytest.mark.parametrize("text, message", [
    ("launch:\n- include: {file: x.yaml}\n", "unsupported entry 'include'"),
    ("launch:\n- node: {pkg: fusion_perception, exec: sim_node, namespace: a}\n",
     r"unsupported key\(s\) \['namespace'\]"),
    ("launch:\n- node: {pkg: demo_nodes_cpp, exec: talker}\n",
     "only nodes of 'fusion_perception'"),
    ("launch:\n- node: {pkg: fusion_perception, exec: no_such_node}\n",
     "no node executable 'no_such_node'"),
    ("launch:\n- node: {pkg: fusion_perception, exec: sim_node, output: both}\n",
     "output: expected one of"),
    ("launch:\n- arg: {name: a, default: '$(command ls)'}\n",
     r"unsupported substitution \$\(command ls\)"),
    ("launch:\n- arg: {name: a}\n", "'a' has no default; give a:=VALUE"),
    ("launch:\n- node: {pkg: fusion_perception, exec: sim_node, param: [{from: /nope.yaml}]}\n",
     "parameter file '/nope.yaml' not found"),
    ("launch:\n- node: {pkg: fusion_perception, exec: sim_node, remap: [{from: a}]}\n",
     "expected {from: TOPIC, to: TOPIC}"),
    ("launch:\n- node: {pkg: fusion_perception, exec: sim_node, name: '$(var x)'}\n",
     r"\$\(var x\): no launch argument 'x'"),
    ("nodes: []\n", "the top level must be 'launch:'"),
    ("launch: [\n", "invalid YAML"),
])
def test_unsupported_launch_content_is_refused(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        parse_launch_file(_write(tmp_path, text), {})


def test_bad_overrides_and_files():
    with pytest.raises(ConfigError, match=r"unknown launch argument\(s\) \['sed'\]"):
        parse_launch_file(resolve_launch_file("sim.launch.yaml"), {"sed": "1"})
    with pytest.raises(ConfigError, match="expected NAME:=VALUE"):
        parse_overrides(["seed=1"])
    assert parse_overrides(["a:=b:=c", "empty:="]) == {"a": "b:=c", "empty": ""}
    with pytest.raises(ConfigError, match="not found"):
        resolve_launch_file("missing.launch.yaml")
    with pytest.raises(ConfigError, match="only 'fusion_perception'"):
        package_share("rviz2")


def test_cli_reports_a_bad_launch_file_in_one_line(tmp_path, capsys):
    from perception.cli import main

    path = _write(tmp_path, "launch:\n- group: {}\n")
    assert main(["launch", str(path)]) == 1
    err = capsys.readouterr().err
    assert "perception launch: error:" in err and "unsupported entry 'group'" in err
