"""The node chain of the node fault and soak tests, over real DDS.

``detector_node`` and ``tracker_node`` run in their own processes (``perception launch
perception.launch.yaml`` with parameter files in a temporary directory), fed by a sensor rig
in a third process (:mod:`._node_rig`, which injects faults on command), and watched by a
probe node in the test process. Everything stays on this machine: the loopback Fast DDS
profile and a private domain id are set at import, for this process and every process it
starts.

The detector runs the shipped model (a real model, no mock) on the ``tiny`` simulator rig
(lidar ``TOP``, camera ``FRONT``, radar ``RADAR_FRONT``) with one torch thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "ros_nodes" / "fastdds_loopback.xml"
CONFIG = REPO / "ros_nodes" / "config"
RIG = Path(__file__).with_name("_node_rig.py")
os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
os.environ["ROS_DOMAIN_ID"] = str(101 + os.getpid() % 100)  # private per test run

LIDAR, CAMERA, RADAR = "TOP", "FRONT", "RADAR_FRONT"
ALL = ("camera", "lidar", "radar")
DIAGNOSTICS_PERIOD_S = 0.5
STOP_S = 30.0


def detector_params(directory: Path, **changes) -> Path:
    data = yaml.safe_load((CONFIG / "detector.param.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    values.update(lidar_name=LIDAR, camera_names=[CAMERA], radar_names=[RADAR], torch_threads=1,
                  diagnostics_period_s=DIAGNOSTICS_PERIOD_S, max_sensor_delay_s=1.2,
                  publish_markers=False, max_processing_time_ms=2000.0)
    values.update(changes)
    path = directory / "detector.param.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def tracker_params(directory: Path, **changes) -> Path:
    data = yaml.safe_load((CONFIG / "tracker.param.yaml").read_text())
    values = data["/**"]["ros__parameters"]
    values.update(diagnostics_period_s=DIAGNOSTICS_PERIOD_S, publish_markers=False)
    values.update(changes)
    path = directory / "tracker.param.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


class Output:
    """A subprocess whose stdout lines are collected by a thread (``on_line`` sees each)."""

    def __init__(self, cmd: list[str], on_line: Callable[[str], None] | None = None,
                 stdin: bool = False):
        self.process = subprocess.Popen(
            cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, start_new_session=True,
            env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.lines: list[str] = []
        self.on_line = on_line
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if self.on_line is not None:
                self.on_line(line)

    @property
    def output(self) -> str:
        return "\n".join(self.lines[-200:])

    def alive(self) -> bool:
        return self.process.poll() is None


class SensorRig(Output):
    """The rig process (:mod:`._node_rig`): ``send({...})`` changes its faults."""

    def __init__(self, rate_hz: float):
        self.frames: list[tuple[float, int]] = []  # (monotonic time printed, lidar stamp)
        super().__init__([sys.executable, str(RIG), f"--rate-hz={rate_hz}"], self._on_line,
                         stdin=True)

    def _on_line(self, line: str) -> None:
        if line.startswith("frame "):
            _, _, stamp = line.split()
            self.frames.append((time.monotonic(), int(stamp)))

    def send(self, **changes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(changes) + "\n")
        self.process.stdin.flush()

    def kill(self) -> None:
        """SIGKILL: no goodbye on DDS, as a crashed driver."""
        if self.alive():
            self.process.kill()
        self.process.wait(timeout=STOP_S)

    def stop(self) -> None:
        if self.alive():
            try:
                self.send(stop=True)
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                self.kill()


@dataclass
class Probe:
    """What the nodes publish, with the (monotonic) receive time of each message."""

    statuses: list = field(default_factory=list)  # (t, PerceptionStatus)
    objects: list = field(default_factory=list)  # (t, Detection3DArray)
    tracks: list = field(default_factory=list)  # (t, TrackedObjectArray)
    diagnostics: list = field(default_factory=list)  # (t, DiagnosticStatus) one per status
    latency: dict = field(default_factory=lambda: {"detector": [], "tracker": []})
    dropped_busy: list = field(default_factory=list)  # (t, offered, dropped) from diagnostics

    def attach(self, node) -> None:
        from diagnostic_msgs.msg import DiagnosticArray
        from std_msgs.msg import Float64
        from vision_msgs.msg import Detection3DArray

        from fusion_perception_msgs.msg import PerceptionStatus, TrackedObjectArray
        from ros_nodes import topics
        from ros_nodes.node_base import reliable_qos

        def keep(store):
            return lambda msg: store.append((time.monotonic(), msg))

        qos = reliable_qos(50)
        node.create_subscription(PerceptionStatus, "/detector/output/status",
                                 keep(self.statuses), qos)
        node.create_subscription(Detection3DArray, topics.DETECTOR_OBJECTS, keep(self.objects),
                                 qos)
        node.create_subscription(TrackedObjectArray, topics.TRACKER_TRACKS, keep(self.tracks),
                                 qos)
        node.create_subscription(DiagnosticArray, topics.DIAGNOSTICS, self._on_diagnostics, qos)
        for name, store in self.latency.items():
            node.create_subscription(Float64, f"/{name}/debug/pipeline_latency_ms",
                                     lambda msg, store=store: store.append(
                                         (time.monotonic(), msg.data)), qos)

    def _on_diagnostics(self, msg) -> None:
        now = time.monotonic()
        for status in msg.status:
            self.diagnostics.append((now, status))

    # --- queries ------------------------------------------------------------------------------

    def modalities(self, since: float) -> list[tuple[str, ...]]:
        return [tuple(s.modalities) for t, s in self.statuses if t >= since]

    def statuses_since(self, since: float) -> list:
        return [s for t, s in self.statuses if t >= since]

    def tracks_since(self, since: float) -> list:
        return [m for t, m in self.tracks if t >= since]

    def status(self, name: str, since: float = 0.0):
        """The newest diagnostic status called ``name`` received after ``since``."""
        for t, status in reversed(self.diagnostics):
            if t < since:
                break
            if status.name == name:
                return status
        return None

    def statuses_named(self, name: str, since: float = 0.0) -> list:
        return [(t, s) for t, s in self.diagnostics if t >= since and s.name == name]

    def seen(self, name: str, since: float, level: int | None = None,
             text: str = "") -> tuple[float, object] | None:
        """The first status ``name`` after ``since`` at ``level`` whose message has ``text``."""
        for t, status in self.statuses_named(name, since):
            if (level is None or status.level[0] == level) and text in status.message:
                return t, status
        return None

    @staticmethod
    def values(status) -> dict[str, str]:
        return {kv.key: kv.value for kv in status.values} if status is not None else {}

    def summary(self) -> str:
        lines = [f"modalities of the last frames: "
                 f"{[tuple(s.modalities) for _, s in self.statuses[-8:]]}",
                 f"tracks of the last outputs: {[len(m.objects) for _, m in self.tracks[-8:]]}"]
        newest: dict[str, object] = {}
        for _, status in self.diagnostics[-60:]:
            newest[status.name] = status
        lines += [f"  {s.level[0]} {name}: {s.message} {self.values(s)}"
                  for name, s in sorted(newest.items())]
        return "\n".join(lines)


class Chain:
    """The launched nodes, the rig and the probe node; see the module doc."""

    def __init__(self, directory: Path, rate_hz: float, detector: dict | None = None,
                 tracker: dict | None = None):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self.rate_hz = rate_hz
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(f"probe_{os.getpid()}", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.probe = Probe()
        self.probe.attach(self.node)
        self.launched = Output([sys.executable, "-m", "perception.cli", "launch",
                                "perception.launch.yaml",
                                f"detector_params_file:={detector_params(directory, **(detector or {}))}",
                                f"tracker_params_file:={tracker_params(directory, **(tracker or {}))}"])
        self.rig: SensorRig | None = None
        self.rigs_started = 0
        self.started_pids: dict[str, int] | None = None

    # --- processes ----------------------------------------------------------------------------

    def node_pids(self) -> dict[str, int]:
        """``{"detector": pid, "tracker": pid}`` of the node processes."""
        pids = {}
        try:
            children = psutil.Process(self.launched.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return pids
        for child in children:
            try:
                cmdline = " ".join(child.cmdline())
            except psutil.NoSuchProcess:
                continue
            for name in ("detector", "tracker"):
                if f"ros_nodes.{name}_node" in cmdline:
                    pids[name] = child.pid
        return pids

    def nodes_alive(self) -> bool:
        """The launch and both node processes it started are running."""
        return (self.launched.alive() and self.started_pids is not None
                and self.node_pids() == self.started_pids)

    def rss_bytes(self) -> dict[str, int]:
        return {name: psutil.Process(pid).memory_info().rss
                for name, pid in self.node_pids().items()}

    def start_rig(self) -> SensorRig:
        self.rig = SensorRig(self.rate_hz)
        self.rigs_started += 1
        return self.rig

    def check_alive(self, what: str) -> None:
        if not self.launched.alive():
            self.launched.reader.join(timeout=5)
            pytest.fail(f"the nodes' launch exited with {self.launched.process.returncode} "
                        f"while waiting for {what}\n{self.probe.summary()}\n--- launch "
                        f"output ---\n{self.launched.output}")
        pids = self.node_pids()
        if self.started_pids is None and len(pids) == 2:
            self.started_pids = pids
        if self.started_pids is not None and pids != self.started_pids:
            pytest.fail(f"a node process is gone while waiting for {what}: started "
                        f"{self.started_pids}, now {pids}\n--- launch output ---\n"
                        f"{self.launched.output}")
        if self.rig is not None and not self.rig.alive():
            pytest.fail(f"the sensor rig exited with {self.rig.process.returncode} while "
                        f"waiting for {what}\n--- rig output ---\n{self.rig.output}")

    # --- waiting ------------------------------------------------------------------------------

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.05, max(end - time.monotonic(), 0.0)))

    def wait(self, condition: Callable[[], bool], what: str, timeout_s: float) -> float:
        """Spin until ``condition()``; returns the time it became true (monotonic)."""
        deadline = time.monotonic() + timeout_s
        checked = 0.0
        while not condition():
            now = time.monotonic()
            if now > deadline:
                pytest.fail(f"gave up after {timeout_s:.0f} s waiting for {what}\n"
                            f"{self.probe.summary()}\n--- launch output ---\n"
                            f"{self.launched.output}")
            if now - checked > 1.0:
                self.check_alive(what)
                checked = now
            self.executor.spin_once(timeout_sec=0.05)
        return time.monotonic()

    def full_frames_since(self, since: float, n: int) -> bool:
        return self.probe.modalities(since).count(ALL) >= n

    # --- the end ------------------------------------------------------------------------------

    def close(self) -> None:
        import rclpy

        if self.rig is not None:
            self.rig.stop()
        if self.launched.alive():
            self.launched.process.send_signal(signal.SIGINT)
            try:
                self.launched.process.wait(timeout=STOP_S)
            except subprocess.TimeoutExpired:
                for child in psutil.Process(self.launched.process.pid).children(recursive=True):
                    child.kill()
                self.launched.process.kill()
                self.launched.process.wait()
        self.launched.reader.join(timeout=5)
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.shutdown(context=self.context)


def percentile(values, q: float) -> float:
    return float(np.percentile(np.asarray(values, float), q)) if len(values) else float("nan")
