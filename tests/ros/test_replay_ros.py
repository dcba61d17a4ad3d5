"""``perception replay --ros``: the player publishes a simulator bag with ``/clock`` to a probe
(this test process) with the original stamps; it starts paused and resumes through its
``paused`` parameter; it loops; ``replay.launch.yaml`` drives the detector and tracker on log
time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import PointCloud2
from vision_msgs.msg import Detection3DArray

from ros_nodes.conversions.stamps import stamp_to_ns
from ros_nodes.node_base import reliable_qos, sensor_qos

from .conftest import DEADLINE_S, REPO, call_until_answered

FRAMES = 3


@pytest.fixture(scope="module")
def sim_bag(tmp_path_factory) -> tuple[Path, list[int]]:
    """A 3-frame simulator bag and its lidar stamps."""
    from perception.replay import bag_frames, sim_to_bag

    path = tmp_path_factory.mktemp("ros_replay") / "sim.mcap"
    sim_to_bag("tiny", path, seed=7, frames=FRAMES, progress=False)
    return path, [f.stamp_ns for f in bag_frames(path)]


class Player:
    """``perception replay BAG --ros ...`` as a subprocess."""

    def __init__(self, bag: Path, *options: str):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "perception.cli", "replay", str(bag), "--ros", *options],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))

    def finish(self, sig: int | None = None) -> tuple[int, str]:
        if sig is not None and self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            output, _ = self.process.communicate(timeout=DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            output, _ = self.process.communicate()
        return self.process.returncode, output


def _spin_until(node, condition, what: str, player: Player | None = None) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            output = player.finish(signal.SIGTERM)[1] if player else ""
            pytest.fail(f"gave up waiting for {what}\n{output}")
        node.test_executor.spin_once(timeout_sec=0.05)


def _stamps(store: list) -> list[int]:
    return [stamp_to_ns(m.header.stamp) for m in store]


def test_player_publishes_with_original_stamps_and_clock(ros_node, sim_bag):
    bag, stamps = sim_bag
    lidar, truth, clock = [], [], []
    ros_node.create_subscription(PointCloud2, "/sensors/lidar/points", lidar.append,
                                 sensor_qos(10))
    ros_node.create_subscription(Detection3DArray, "/sim/ground_truth", truth.append,
                                 reliable_qos(10))
    ros_node.create_subscription(Clock, "/clock", lambda m: clock.append(
        stamp_to_ns(m.clock)), reliable_qos(100))
    player = Player(bag, "--rate", "1", "--delay", "3")
    _spin_until(ros_node, lambda: len(truth) == FRAMES or player.process.poll() is not None,
                "the ground truth of every frame", player)
    _spin_until(ros_node, lambda: len(lidar) == FRAMES, "every lidar sweep", player)
    code, output = player.finish()
    assert code == 0, output
    assert _stamps(truth) == stamps and _stamps(lidar) == stamps
    assert lidar[0].width > 0 and lidar[0].header.frame_id == "base_link"
    assert clock and clock == sorted(clock) and stamps[0] - 200_000_000 <= clock[0] <= stamps[-1]


def test_start_paused_resume_by_parameter_and_loop(ros_node, sim_bag):
    from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
    from rcl_interfaces.srv import SetParameters

    bag, stamps = sim_bag
    truth = []
    ros_node.create_subscription(Detection3DArray, "/sim/ground_truth", truth.append,
                                 reliable_qos(10))
    client = ros_node.create_client(SetParameters, "/replay/set_parameters")
    player = Player(bag, "--start-paused", "--loop", "--rate", "2", "--delay", "0.5")
    _spin_until(ros_node, client.service_is_ready, "the player's parameter service", player)
    waited = time.monotonic() + 2.0
    _spin_until(ros_node, lambda: time.monotonic() > waited, "a paused moment", player)
    assert truth == []  # paused: nothing is published
    request = SetParameters.Request(parameters=[Parameter(name="paused", value=ParameterValue(
        type=ParameterType.PARAMETER_BOOL, bool_value=False))])
    result = call_until_answered(
        ros_node, lambda: client.call_async(request),
        lambda condition, what: _spin_until(ros_node, condition, what, player), "the resume call")
    assert result.results[0].successful
    _spin_until(ros_node, lambda: len(truth) >= FRAMES + 2, "a second round", player)
    received = _stamps(truth)
    assert received[:FRAMES] == stamps and received[FRAMES] == stamps[0]  # looped
    code, output = player.finish(signal.SIGINT)
    assert code == 0, output


def test_replay_launch_file_drives_detector_and_tracker_on_log_time(launch, ros_node,
                                                                      sim_bag):
    if not (REPO / "ros_nodes" / "detector_node.py").is_file() or \
            not (REPO / "ros_nodes" / "tracker_node.py").is_file():
        pytest.skip("replay.launch.yaml needs detector_node and tracker_node, not present")
    from fusion_perception_msgs.msg import TrackedObjectArray

    bag, stamps = sim_bag
    tracks = []
    ros_node.create_subscription(TrackedObjectArray, "/tracker/output/tracks", tracks.append,
                                 reliable_qos(10))
    # looped, so that a detector still loading its model when playback starts gets the
    # next round
    launched = launch(["replay.launch.yaml", f"log:={bag}", "loop:=true", "delay_s:=5",
                       "image_transport:=compressed"])
    deadline = time.monotonic() + 3 * DEADLINE_S
    while not tracks:
        if time.monotonic() > deadline or launched.process.poll() is not None:
            pytest.fail(f"no tracks\n{launched.output}")
        ros_node.test_executor.spin_once(timeout_sec=0.05)
    assert set(_stamps(tracks)) <= set(stamps)  # stamped on log time
    assert tracks[0].header.frame_id == "base_link"
    code = launched.interrupt()
    assert code == 0, launched.output
