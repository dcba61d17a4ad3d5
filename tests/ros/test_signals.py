"""Nodes with their own loop (player, simulator) take Ctrl-C and SIGTERM in their main thread,
once: rclpy's handler would shut the context down from another thread while the loop
publishes, which can crash the process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from ros_nodes.node_base import stop_on_signals_in_main_thread

from .conftest import DEADLINE_S, REPO


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


def test_simulator_node_stops_cleanly_on_two_quick_signals(ros_node):
    from sensor_msgs.msg import PointCloud2

    from ros_nodes.node_base import sensor_qos

    clouds = []
    ros_node.create_subscription(PointCloud2, "/sensors/lidar/points", clouds.append,
                                 sensor_qos(10))
    process = subprocess.Popen(
        [sys.executable, "-m", "ros_nodes.sim_node", "--ros-args", "-p", "preset:=tiny",
         "-p", "duration_s:=60.0"],
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not clouds and time.monotonic() < deadline and process.poll() is None:
            ros_node.test_executor.spin_once(timeout_sec=0.05)
        assert clouds, "the simulator published no cloud"
        process.send_signal(signal.SIGINT)  # mid-playback
        process.send_signal(signal.SIGTERM)  # and again during the shutdown
        output, _ = process.communicate(timeout=DEADLINE_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, output
    assert "Fatal Python error" not in output and "Traceback" not in output, output
