"""Every node takes Ctrl-C and SIGTERM as a flag its loop checks between short waits, in its
main thread. rclpy's handler shut the context down from another thread while the player
published (a crash), and an exception raised by a handler inside rclpy's bindings, while a
tracker took a message, came out as a RuntimeError. Whatever hangs after the signal, the
process exits by a deadline, printing the stack of every thread."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from ros_nodes.node_base import stop_on_signals_in_main_thread, stop_requested

from .conftest import DEADLINE_S, REPO

SIGNAL_ROUNDS = 3
SIGNAL_PROBE_TRIALS = 60
SIGNAL_PROBE_DETECTIONS = 200


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
def test_signals_only_ask_the_loop_to_stop(saved_handlers, first):
    stop_on_signals_in_main_thread()
    assert not stop_requested()
    _deliver(first)  # raises nothing: the handler may run inside rclpy's bindings
    assert stop_requested()
    _deliver(signal.SIGINT)  # during the shutdown: still nothing raised
    _deliver(signal.SIGTERM)
    assert stop_requested()
    stop_on_signals_in_main_thread()  # a new node starts with the flag down
    assert not stop_requested()


def test_a_signal_while_rclpy_takes_messages_raises_nothing(saved_handlers):
    """The handler runs at the next bytecode, often inside the Python code that rclpy's
    bindings call to build a taken message. A raising handler (rclpy's own raises
    ``KeyboardInterrupt``) came out of ``spin_once`` there as "RuntimeError: Unable to
    convert call argument"; the flag raises nothing anywhere."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from vision_msgs.msg import Detection3D, Detection3DArray, ObjectHypothesisWithPose

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("signal_probe", context=context)
    executor = SingleThreadedExecutor(context=context)
    try:
        taken = []
        node.create_subscription(Detection3DArray, "/test/signal_probe", taken.append, 100)
        publisher = node.create_publisher(Detection3DArray, "/test/signal_probe", 100)
        message = Detection3DArray()  # conversion runs Python setters for every field
        message.detections = [Detection3D(results=[ObjectHypothesisWithPose()])
                              for _ in range(SIGNAL_PROBE_DETECTIONS)]
        executor.add_node(node)
        for trial in range(SIGNAL_PROBE_TRIALS):
            stop_on_signals_in_main_thread()
            for _ in range(3):
                publisher.publish(message)
            timer = threading.Timer(0.001 + (trial % 10) * 0.0005, os.kill,
                                    (os.getpid(), signal.SIGINT))
            timer.start()
            for _ in range(10):
                executor.spin_once(timeout_sec=0.01)  # must raise nothing
            timer.join()
            time.sleep(0.005)
            assert stop_requested(), f"trial {trial}: the signal was lost"
        assert taken, "no message was taken"
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


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


STUCK_NODE = """
import sys, time
import rclpy.node
from ros_nodes.node_base import run_node

def stuck_after_the_signal(node):
    print("spinning", flush=True)
    while True:  # never looks at the stop flag: a call that never returns
        time.sleep(0.05)

sys.exit(run_node(lambda: rclpy.node.Node("stuck_probe"), spin=stuck_after_the_signal,
                  argv=[sys.argv[0]], stop_deadline_s=2.0))
"""


def test_a_node_that_hangs_after_the_signal_exits_by_the_deadline_with_its_stacks():
    process = subprocess.Popen(
        [sys.executable, "-c", STUCK_NODE], cwd=REPO, stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert process.stdout is not None
        for line in process.stdout:  # the node's log lines, then the loop
            if line.strip() == "spinning":
                break
        else:
            raise AssertionError("the node exited before its loop")
        signalled = time.monotonic()
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=DEADLINE_S)
        waited_s = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 1, output
    assert waited_s >= 2.0  # not before the deadline
    assert "Timeout (0:00:02)!" in output, output
    assert "stuck_after_the_signal" in output, output  # the stack of the main thread


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
