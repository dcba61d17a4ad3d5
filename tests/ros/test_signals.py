"""Every node takes Ctrl-C and SIGTERM in its main thread, once: rclpy's handler would shut the
context down from another thread while the node publishes, takes a message or is destroyed,
which raised from rclpy's bindings (a tracker taking detections) or crashed the process (the
player)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ros_nodes.node_base import stop_on_signals_in_main_thread

from .conftest import DEADLINE_S, REPO

SIGNAL_ROUNDS = 3


@pytest.fixture
def saved_handlers():
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def _deliver(sig: int) -> None:
    os.kill(os.getpid(), sig)
    time.sleep(0.01)  # the handler runs at the next bytecode of the main thread


@pytest.mark.parametrize("first", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_interrupts_and_later_ones_are_ignored(saved_handlers, first):
    stop_on_signals_in_main_thread()
    with pytest.raises(KeyboardInterrupt, match=signal.Signals(first).name):
        _deliver(first)
    _deliver(signal.SIGINT)  # during the shutdown: no second interrupt
    _deliver(signal.SIGTERM)


def _assert_clean_exit(process: subprocess.Popen) -> None:
    output, _ = process.communicate(timeout=DEADLINE_S)
    assert process.returncode == 0, output
    assert "Fatal Python error" not in output and "Traceback" not in output, output


def _start(module: str, *ros_args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, "--ros-args", *ros_args],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))


def test_simulator_node_stops_cleanly_on_two_quick_signals(ros_node):
    from sensor_msgs.msg import PointCloud2

    from ros_nodes.node_base import sensor_qos

    clouds = []
    ros_node.create_subscription(PointCloud2, "/sensors/lidar/points", clouds.append,
                                 sensor_qos(10))
    process = _start("ros_nodes.sim_node", "-p", "preset:=tiny", "-p", "duration_s:=60.0")
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not clouds and time.monotonic() < deadline and process.poll() is None:
            ros_node.test_executor.spin_once(timeout_sec=0.05)
        assert clouds, "the simulator published no cloud"
        process.send_signal(signal.SIGINT)  # mid-playback
        process.send_signal(signal.SIGTERM)  # and again during the shutdown
        _assert_clean_exit(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


def test_tracker_node_stops_cleanly_while_it_takes_messages(ros_node):
    """A spinning node signalled in a stream of detections, at different moments."""
    from vision_msgs.msg import Detection3DArray

    from ros_nodes import topics
    from ros_nodes.node_base import reliable_qos

    publisher = ros_node.create_publisher(Detection3DArray, topics.DETECTOR_OBJECTS,
                                          reliable_qos())
    for round_ in range(SIGNAL_ROUNDS):
        process = _start("ros_nodes.tracker_node")
        try:
            deadline = time.monotonic() + DEADLINE_S
            while publisher.get_subscription_count() == 0:
                assert time.monotonic() < deadline and process.poll() is None, \
                    "the tracker did not subscribe"
                ros_node.test_executor.spin_once(timeout_sec=0.05)
            for i in range(20 + 15 * round_):  # a stream at 200 Hz, then the signals in it
                message = Detection3DArray()
                message.header.frame_id = "base_link"
                message.header.stamp.sec, message.header.stamp.nanosec = 1_700_000_000 + i, 0
                publisher.publish(message)
                time.sleep(0.005)
            process.send_signal(signal.SIGINT)
            for _ in range(10):
                publisher.publish(message)
                time.sleep(0.002)
            process.send_signal(signal.SIGTERM)
            _assert_clean_exit(process)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
