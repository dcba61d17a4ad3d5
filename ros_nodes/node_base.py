"""What every node shares: parameter loading and validation against the node's schema,
per-sensor diagnostics, QoS profiles, and the ``main()`` wrapper (clean shutdown on Ctrl-C
and SIGTERM, exit code 2 on invalid parameters).
"""

from __future__ import annotations

import array
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy._rclpy_pybind11 import RCLError
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from perception.config import from_dict
from perception.errors import ConfigError

from . import topics
from .conversions.stamps import ns_to_stamp
from .params import LAUNCH_OVERRIDES, parse_launch_overrides

T = TypeVar("T")

ROS_BUILTIN_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})
"""Parameters rclpy declares on every node; they are not part of a node's schema."""
EXIT_INVALID_PARAMETERS = 2
WINDOW = 50
"""Receive times and latencies kept per sensor for the rate and latency statistics."""


# ------------------------------------------------------------------------------------------
# QoS
# ------------------------------------------------------------------------------------------

def sensor_qos(depth: int) -> QoSProfile:
    """Sensor data: best effort, keep last ``depth`` (a late sample is worth less than the
    next one)."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.BEST_EFFORT,
                      durability=DurabilityPolicy.VOLATILE)


def latched_qos() -> QoSProfile:
    """``/tf_static``: reliable and transient local, so late joiners get the transforms."""
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=1,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.TRANSIENT_LOCAL)


def reliable_qos(depth: int = 10) -> QoSProfile:
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth,
                      reliability=ReliabilityPolicy.RELIABLE,
                      durability=DurabilityPolicy.VOLATILE)


# ------------------------------------------------------------------------------------------
# Parameters
# ------------------------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """rclpy parameter values -> plain Python (arrays come back as array.array / tuples)."""
    if isinstance(value, (array.array, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    return value


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (ROS separates nested parameter names by dots)."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        *parents, leaf = name.split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
        target[leaf] = value
    return nested


def load_parameters(node: Node, schema: type[T]) -> T:
    """Validate the node's parameters into ``schema``, then declare them.

    Every parameter given to the node (params file, launch file, ``-p``) is read, unknown
    names included, which are refused. An empty YAML list (``camera_names: []``) arrives
    without a type and means an empty list. Then the launch arguments the user gave, passed
    in the ``launch_overrides`` string parameter (:func:`ros_nodes.params.parse_launch_overrides`),
    replace those values; the ones left empty leave them. After validation each parameter is
    declared with its value (dynamically typed), so ``ros2 param`` sees the node's
    configuration.

    Raises:
        ConfigError: unknown parameter, wrong type or out-of-range value (from any source,
            launch arguments included), or a malformed ``launch_overrides``; the message
            names the node and the parameter.
    """
    # rclpy keeps the command-line / file overrides here until parameters are declared;
    # reading them directly lets an empty list through (it cannot be declared typed)
    overrides = getattr(node, "_parameter_overrides", {})
    given = {name: [] if parameter.value is None else _plain(parameter.value)
             for name, parameter in overrides.items() if name not in ROS_BUILTIN_PARAMETERS}
    source = f"node {node.get_fully_qualified_name()} parameters"
    if LAUNCH_OVERRIDES in given:
        given.update(parse_launch_overrides(given.pop(LAUNCH_OVERRIDES),
                                            f"{source}: {LAUNCH_OVERRIDES}"))
    params = from_dict(schema, _nest(given), source=source)
    dynamic = ParameterDescriptor(dynamic_typing=True)
    for f in fields(params):  # type: ignore[arg-type]
        value = getattr(params, f.name)
        if not (isinstance(value, list) and not value):
            # the validated value, not rclpy's own override: a launch argument replaced it
            node.declare_parameter(f.name, value, dynamic, ignore_override=True)
    return params


# ------------------------------------------------------------------------------------------
# Diagnostics
# ------------------------------------------------------------------------------------------

@dataclass
class SensorHealth:
    """Counters and recent timing of one sensor (or output topic)."""

    received: int = 0
    dropped: int = 0
    malformed: int = 0
    last_error: str = ""
    receive_ns: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    latency_ms: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    reported_problems: int = 0

    def rate_hz(self) -> float:
        if len(self.receive_ns) < 2:
            return 0.0
        span_ns = self.receive_ns[-1] - self.receive_ns[0]
        return (len(self.receive_ns) - 1) * 1e9 / span_ns if span_ns > 0 else 0.0


class Diagnostics:
    """Per-sensor rate, latency, dropped and malformed counts, published as
    ``diagnostic_msgs/DiagnosticArray`` on ``/diagnostics`` every ``period_s``.

    One ``DiagnosticStatus`` per sensor, named ``"<node>: <sensor>"``, with the values
    ``rate_hz``, ``latency_ms_p50``, ``latency_ms_max``, ``received``, ``dropped``,
    ``malformed`` and ``last_error``. The level is WARN when messages were dropped or
    malformed since the previous report, ERROR when nothing arrived in the last period of a
    sensor that did deliver before, OK otherwise.
    """

    def __init__(self, node: Node, sensors: list[str], period_s: float):
        self.node = node
        self.health = {name: SensorHealth() for name in sensors}
        self.publisher = node.create_publisher(DiagnosticArray, topics.DIAGNOSTICS,
                                               reliable_qos())
        self.period_ns = int(period_s * 1e9)
        self.timer = node.create_timer(period_s, self.publish)

    def _get(self, sensor: str) -> SensorHealth:
        return self.health.setdefault(sensor, SensorHealth())

    def received(self, sensor: str, stamp_ns: int | None = None,
                 latency_ms: float | None = None) -> None:
        """Count one message. Its latency is ``latency_ms`` when given, else the wall-clock
        receive time minus ``stamp_ns`` (when given)."""
        now_ns = time.time_ns()
        health = self._get(sensor)
        health.received += 1
        health.receive_ns.append(now_ns)
        if latency_ms is None and stamp_ns is not None:
            latency_ms = (now_ns - stamp_ns) / 1e6
        if latency_ms is not None:
            health.latency_ms.append(latency_ms)

    def malformed(self, sensor: str, error: str) -> None:
        health = self._get(sensor)
        health.malformed += 1
        health.last_error = error

    def dropped(self, sensor: str, count: int = 1, reason: str = "") -> None:
        health = self._get(sensor)
        health.dropped += count
        if reason:
            health.last_error = reason

    def status(self, sensor: str) -> DiagnosticStatus:
        health = self.health[sensor]
        latencies = np.asarray(health.latency_ms) if health.latency_ms else np.zeros(1)
        problems = health.dropped + health.malformed
        stale = bool(health.receive_ns) and time.time_ns() - health.receive_ns[-1] > \
            2 * self.period_ns
        if stale:
            level, message = DiagnosticStatus.ERROR, "no messages in the last two periods"
        elif problems > health.reported_problems:
            level, message = DiagnosticStatus.WARN, "messages dropped or malformed"
        else:
            level, message = DiagnosticStatus.OK, "ok"
        health.reported_problems = problems
        values = {
            "rate_hz": f"{health.rate_hz():.2f}",
            "latency_ms_p50": f"{np.percentile(latencies, 50):.2f}",
            "latency_ms_max": f"{latencies.max():.2f}",
            "received": str(health.received),
            "dropped": str(health.dropped),
            "malformed": str(health.malformed),
            "last_error": health.last_error,
        }
        return DiagnosticStatus(
            level=level, name=f"{self.node.get_name()}: {sensor}", message=message,
            hardware_id=sensor, values=[KeyValue(key=k, value=v) for k, v in values.items()])

    def publish(self) -> None:
        msg = DiagnosticArray(status=[self.status(name) for name in self.health])
        msg.header.stamp = ns_to_stamp(time.time_ns())
        self.publisher.publish(msg)


# ------------------------------------------------------------------------------------------
# main()
# ------------------------------------------------------------------------------------------

def run_node(make_node: Callable[[], Node], spin: Callable[[Node], None] | None = None,
             argv: list[str] | None = None) -> int:
    """Initialise rclpy, build the node, spin until Ctrl-C / SIGTERM / the end, shut down.

    ``spin(node)`` replaces ``rclpy.spin(node)`` for nodes with their own loop. Returns the
    process exit code: 0 on a clean stop, 2 when the parameters are invalid (the reason is
    printed on stderr, naming the parameter).
    """
    rclpy.init(args=sys.argv if argv is None else argv)
    node = None
    try:
        node = make_node()
        if spin is None:
            rclpy.spin(node)
        else:
            spin(node)
        return 0
    except ConfigError as exc:
        print(f"invalid parameters, not starting: {exc}", file=sys.stderr, flush=True)
        return EXIT_INVALID_PARAMETERS
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except RCLError:
        if node is not None and not node.context.ok():
            return 0  # Ctrl-C / SIGTERM shut the context down under a running call
        raise
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
