"""The launch-file runner (``ros_nodes.launcher``): the supported subset parses, everything
else is refused clearly; ``perception launch`` runs it without importing ROS code; launch
arguments override the parameter file only when given, checked on running nodes over DDS."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from perception.errors import ConfigError
from ros_nodes.launcher import (
    package_share,
    parse_launch_file,
    parse_overrides,
    resolve_launch_file,
)

from .conftest import call_until_answered

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 60.0
"""Guard against hangs only."""

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
    # launch arguments left empty are passed empty: the params file's values hold
    overrides = command[command.index("-p") + 1]
    assert overrides.startswith("launch_overrides:=") and "seed:=7 " in overrides
    assert "preset:= " in overrides and "duration_s:= " in overrides
    assert command[command.index("--ros-args") + 1:][:2] == ["-r", "__node:=sim"]

    perception = parse_launch_file(resolve_launch_file("sync.launch.yaml"),
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


def test_cli_reports_a_bad_launch_file_in_one_line(tmp_path, capfd):
    from perception.cli import main

    path = _write(tmp_path, "launch:\n- group: {}\n")
    assert main(["launch", str(path)]) == 1  # the runner's exit code
    captured = capfd.readouterr()  # the runner writes to the inherited stderr
    assert captured.err.startswith("perception launch: error: ")
    assert "unsupported entry 'group'" in captured.err
    assert captured.err.count("\n") == 1 and captured.out == ""


def test_cli_without_the_runner_installed_says_so_in_one_line(monkeypatch, capsys):
    from perception.cli import main
    from perception.commands import launch as launch_command

    monkeypatch.setattr(launch_command, "NODES_PACKAGE", "no_such_nodes_package")
    assert main(["launch", "sim.launch.yaml"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("perception launch: error: the ROS 2 nodes are not installed")


def test_perception_launch_imports_no_ros_code():
    """The command runs the runner as a subprocess; the runner is also a module of its own."""
    code = ("import sys\n"
            "from perception.cli import main\n"
            "assert main(['launch', 'missing.launch.yaml']) == 1\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ros_nodes', 'rclpy'}))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=DEADLINE_S, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
    assert "perception launch: error: launch file 'missing.launch.yaml' not found" in out.stderr
    direct = subprocess.run([sys.executable, "-m", "ros_nodes.launcher", "sim.launch.yaml",
                             "seed"], cwd=REPO, capture_output=True, text=True,
                            timeout=DEADLINE_S, check=False)
    assert direct.returncode == 1
    assert direct.stderr == ("python -m ros_nodes.launcher: error: launch argument 'seed': "
                             "expected NAME:=VALUE\n")


def _started_pid(launched, name: str) -> int:
    deadline = time.monotonic() + DEADLINE_S
    prefix = f"[launch] started {name} (pid "
    while time.monotonic() < deadline:
        for line in list(launched.lines):
            if line.startswith(prefix):
                return int(line[len(prefix):].split(")")[0])
        time.sleep(0.05)
    pytest.fail(f"{name} was not started\n{launched.output}")


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_killing_perception_launch_stops_the_nodes(launch):
    """``perception launch`` SIGKILLed (no chance to pass anything on): the runner gets
    SIGTERM from the kernel and stops its nodes, so nothing is left running."""
    launched = launch(["sim.launch.yaml", "duration_s:=60"])
    pid = _started_pid(launched, "sim")
    launched.process.send_signal(signal.SIGKILL)
    launched.process.wait(timeout=DEADLINE_S)
    deadline = time.monotonic() + DEADLINE_S
    while _alive(pid):
        assert time.monotonic() < deadline, "the sim node outlived perception launch"
        time.sleep(0.1)


# -------------------------------------------------------------------------------------------
# Launch arguments against the parameter file, on running nodes
# -------------------------------------------------------------------------------------------

def _params_file(tmp_path: Path, name: str, changes: dict) -> Path:
    data = yaml.safe_load((package_share("fusion_perception") / "config" / name).read_text())
    data["/**"]["ros__parameters"].update(changes)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def _remote_parameters(node, spin, remote: str, names: list[str], launched) -> dict:
    from rclpy.parameter import parameter_value_to_python
    from rclpy.parameter_client import AsyncParameterClient

    client = AsyncParameterClient(node, remote)
    spin(node, client.services_are_ready, f"the parameter services of {remote}", launched)
    result = call_until_answered(
        node, lambda: client.get_parameters(names),
        lambda condition, what: spin(node, condition, what, launched),
        f"the parameters of {remote}")
    return {name: parameter_value_to_python(value)
            for name, value in zip(names, result.values)}


def test_launch_arguments_override_the_params_file_only_when_given(tmp_path, launch, ros_node,
                                                                   spin):
    """Each node gets a params file that differs from the defaults; an argument not given
    leaves the file's value, a given one wins."""
    sync_file = _params_file(tmp_path, "sync.param.yaml",
                             {"timeout_s": 0.35, "image_transport": "compressed"})
    sim_file = _params_file(tmp_path, "sim.param.yaml",
                            {"duration_s": 42.0, "seed": 5, "rate_factor": 0.5})
    sync = launch(["sync.launch.yaml", f"sync_params_file:={sync_file}",
                   "image_transport:=raw"])
    sim = launch(["sim.launch.yaml", f"params_file:={sim_file}", "seed:=7"])
    assert _remote_parameters(ros_node, spin, "/sync", ["timeout_s", "image_transport"],
                              sync) == {"timeout_s": 0.35, "image_transport": "raw"}
    assert _remote_parameters(ros_node, spin, "/sim", ["duration_s", "seed", "rate_factor"],
                              sim) == {"duration_s": 42.0, "seed": 7, "rate_factor": 0.5}
    assert sim.interrupt() == 0 and sync.interrupt() == 0


def test_a_bad_launch_argument_still_stops_the_node_naming_the_parameter(launch):
    launched = launch(["sync.launch.yaml", "timeout_s:=-1"])
    assert launched.wait() == 1
    assert "[launch] sync died with exit code 2" in launched.output
    refused = [line for line in launched.lines if "invalid parameters" in line]
    expected = ("[sync] invalid parameters, not starting: node /sync parameters: "
                "timeout_s: value -1.0 out of range: expected > 0.0")
    assert refused == [expected], launched.output
