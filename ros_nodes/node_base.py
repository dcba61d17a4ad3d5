"""What every node shares: parameter loading and validation against the node's schema,
per-sensor diagnostics, processing-time topics and checks, QoS profiles, guarded callbacks,
the DDS profile option, and the ``main()`` wrapper (clean shutdown on Ctrl-C and SIGTERM,
exit code 2 on invalid parameters).
"""

from __future__ import annotations

import array
import faulthandler
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any, TypeVar

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from std_msgs.msg import Float64

from perception.align import DeadlineMonitor, Health
from perception.config import from_dict
from perception.errors import ConfigError, PerceptionError
from perception.processes import settle_allocator

from . import topics
from .conversions.stamps import ns_to_stamp
from .params import LAUNCH_OVERRIDES, parse_launch_overrides

T = TypeVar("T")

ROS_BUILTIN_PARAMETERS = frozenset({"use_sim_time", "start_type_description_service"})
"""Parameters rclpy declares on every node; they are not part of a node's schema."""
EXIT_INVALID_PARAMETERS = 2
WINDOW = 50
"""Receive times and latencies kept per sensor for the rate and latency statistics."""
PROCESSING_WINDOW = 50
"""Outputs kept for the processing-time statistics."""
DDS_PROFILE_OPTION = "--dds-profile"
DDS_PROFILE_ENV = "FASTDDS_DEFAULT_PROFILES_FILE"
SIGNAL_CHECK_S = 0.05
"""Longest wait for callbacks in every node's loop: Ctrl-C and SIGTERM are taken between waits
(:func:`run_node`)."""
STOP_DEADLINE_S = 30.0
"""A node process asked to stop exits within this time of the first Ctrl-C / SIGTERM, even when
something below it (a DDS teardown, a native call) never returns: it then prints the stack of
every thread and exits with 1 (:func:`run_node`). Model loading, the slowest step a signal can
wait for, takes a few seconds."""


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
        self.checks: list[Callable[[], DiagnosticStatus]] = []
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

    def add_check(self, check: Callable[[], DiagnosticStatus]) -> None:
        """Publish ``check()`` with every report, after the sensors (node-level statuses)."""
        self.checks.append(check)

    def make_status(self, name: str, level: int, message: str,
                    values: dict[str, object]) -> DiagnosticStatus:
        """A status named ``"<node>: <name>"`` with ``values`` as strings."""
        return DiagnosticStatus(
            level=bytes([int(level)]), name=f"{self.node.get_name()}: {name}", message=message,
            hardware_id=self.node.get_name(),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

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
        age = (f"{(time.time_ns() - health.receive_ns[-1]) / 1e9:.2f}" if health.receive_ns
               else "")
        values = {
            "rate_hz": f"{health.rate_hz():.2f}",
            "age_s": age,
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
        statuses = [self.status(name) for name in list(self.health)]
        statuses += [check() for check in self.checks]
        msg = DiagnosticArray(status=statuses)
        msg.header.stamp = ns_to_stamp(time.time_ns())
        self.publisher.publish(msg)


class ProcessingTimes:
    """Processing time of a node that publishes one output per input (the detector per frame,
    the tracker per update): the debug topics ``~/debug/processing_time_ms``,
    ``~/debug/pipeline_latency_ms`` (publish time on the node's clock minus the input stamp)
    and ``~/debug/cyclic_time_ms`` (between two publications), and a ``processing time``
    diagnostics check against the budget (:class:`perception.align.DeadlineMonitor`).

    :meth:`record` may run in another thread than :meth:`status` (the detector's worker).

    Args:
        node: the node publishing the outputs.
        max_ms, error_count: the budget per output and the consecutive misses that make an
            ERROR.
        unit: what one output is called in the status (``frames``, ``updates``).
        digits: decimals of the times in the status values.
    """

    def __init__(self, node: Node, max_ms: float, error_count: int, unit: str = "frames",
                 digits: int = 1):
        self.node = node
        self.deadline = DeadlineMonitor(max_ms, error_count)
        self.unit = unit
        self.digits = digits
        self.processing_pub = node.create_publisher(Float64, topics.DEBUG_PROCESSING_TIME, 10)
        self.latency_pub = node.create_publisher(Float64, topics.DEBUG_PIPELINE_LATENCY, 10)
        self.cyclic_pub = node.create_publisher(Float64, topics.DEBUG_CYCLIC_TIME, 10)
        self._times: deque[float] = deque(maxlen=PROCESSING_WINDOW)
        self._last_publish_ns: int | None = None
        self._lock = threading.Lock()

    def record(self, processing_ms: float, stamp_ns: int, done_ns: int) -> None:
        """One output, published at ``done_ns`` (monotonic) for the input stamped
        ``stamp_ns``: publish the debug times and check the budget."""
        self.processing_pub.publish(Float64(data=float(processing_ms)))
        now_ns = self.node.get_clock().now().nanoseconds  # the ROS clock: sim time under replay
        self.latency_pub.publish(Float64(data=(now_ns - stamp_ns) / 1e6))
        if self._last_publish_ns is not None:
            self.cyclic_pub.publish(Float64(data=(done_ns - self._last_publish_ns) / 1e6))
        self._last_publish_ns = done_ns
        with self._lock:
            self.deadline.add(processing_ms)
            self._times.append(processing_ms)

    def status(self, diagnostics: Diagnostics) -> DiagnosticStatus:
        """OK within the budget; WARN when the last output was over it; ERROR after
        ``error_count`` consecutive outputs over it."""
        n = self.digits
        with self._lock:
            d = self.deadline
            times = np.asarray(self._times) if self._times else None
            level = d.level
            values = {"last_ms": f"{d.last_ms:.{n}f}" if d.last_ms is not None else "",
                      "p50_ms": f"{np.percentile(times, 50):.{n}f}" if times is not None else "",
                      "max_ms": f"{times.max():.{n}f}" if times is not None else "",
                      "threshold_ms": f"{d.max_ms:.1f}", "consecutive_misses": d.consecutive,
                      "misses": d.misses, self.unit: d.checks}
        message = {Health.OK: "within budget", Health.WARN: "over budget",
                   Health.ERROR: f"over budget for {values['consecutive_misses']} consecutive "
                                 f"{self.unit}"}[level]
        return diagnostics.make_status("processing time", level, message, values)


def guarded(node: Node, diagnostics: Diagnostics, sensor: str,
            callback: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap a subscription callback: a typed error (a malformed message) is logged (throttled)
    and counted as ``malformed`` for ``sensor``; an unexpected error likewise, so bad input
    never stops the node."""

    def wrapped(msg: Any) -> None:
        try:
            callback(msg)
        except PerceptionError as exc:
            diagnostics.malformed(sensor, str(exc))
            node.get_logger().warning(f"{sensor}: skipped a message: {exc}",
                                      throttle_duration_sec=1.0)
        except Exception as exc:  # noqa: BLE001 - bad input must never stop the node
            diagnostics.malformed(sensor, f"unexpected {type(exc).__name__}: {exc}")
            node.get_logger().error(f"{sensor}: skipped a message after an unexpected "
                                    f"{type(exc).__name__}: {exc}", throttle_duration_sec=1.0)

    return wrapped


# ------------------------------------------------------------------------------------------
# DDS profile
# ------------------------------------------------------------------------------------------

def apply_dds_profile(argv: list[str], environ: Any = None) -> tuple[list[str], str]:
    """Handle ``--dds-profile=PATH`` (before ``--ros-args``): set ``FASTDDS_DEFAULT_PROFILES_FILE``
    to PATH for this process unless the user already set it; an empty PATH turns it off.

    Launch files pass the option to nodes so that a launch works out of the box on one machine
    (the Fast DDS defaults lose most large best-effort clouds between processes) while a
    profile the user exported always wins. It must run before ``rclpy.init``, which reads the
    variable when DDS starts.

    Returns:
        ``argv`` without the option, and a line for the node's log (empty when the option was
        not given).
    """
    environ = os.environ if environ is None else environ
    out, path, given = [], "", False
    ros_args = False
    for arg in argv:
        if arg == "--ros-args":
            ros_args = True
        if not ros_args and arg.startswith(DDS_PROFILE_OPTION + "="):
            path, given = arg.split("=", 1)[1], True
            continue
        out.append(arg)
    if not given:
        return out, ""
    if not path:
        return out, f"DDS profile: none set by the launch ({DDS_PROFILE_OPTION}= is empty)"
    if environ.get(DDS_PROFILE_ENV):
        return out, (f"DDS profile: keeping {DDS_PROFILE_ENV}={environ[DDS_PROFILE_ENV]} from the "
                     f"environment")
    if not os.path.isfile(path):
        return out, f"DDS profile: {path} not found; using the DDS defaults"
    environ[DDS_PROFILE_ENV] = path
    return out, f"DDS profile: {path} ({DDS_PROFILE_ENV})"


# ------------------------------------------------------------------------------------------
# main()
# ------------------------------------------------------------------------------------------

_STOP = threading.Event()


def stop_on_signals_in_main_thread(exit_deadline_s: float | None = None) -> None:
    """SIGINT and SIGTERM ask the node to stop: :func:`running` turns False, and the loop
    that waits for callbacks (never longer than ``SIGNAL_CHECK_S``) returns.

    The handler only sets a flag. It runs in the main thread at the next bytecode, which may
    be Python code that rclpy's bindings call into while they take a message (its
    conversion); an exception raised there comes out of the bindings as "Unable to convert
    call argument" instead of ``KeyboardInterrupt``.

    With ``exit_deadline_s`` the first signal also starts faulthandler's watchdog, a native
    thread that needs neither the main thread nor the GIL: if the process has not exited
    ``exit_deadline_s`` later, it prints the stack of every thread and exits with 1. Calling
    this again cancels a watchdog already started."""
    def stop(signum, frame) -> None:
        if exit_deadline_s is not None and not _STOP.is_set():
            faulthandler.dump_traceback_later(exit_deadline_s, exit=True)
        _STOP.set()

    faulthandler.cancel_dump_traceback_later()
    _STOP.clear()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, stop)


def stop_requested() -> bool:
    return _STOP.is_set()


def running(node: Node) -> bool:
    """True until Ctrl-C / SIGTERM or the context's shutdown."""
    return node.context.ok() and not _STOP.is_set()


def ignore_signals_until_exit() -> None:
    """SIGINT and SIGTERM do nothing from here on. Python's finalisation puts the default
    handlers back in place of its own, so a second signal (the launcher escalates) arriving
    while the process exits would kill it with that signal's code instead of the node's.
    ``signal.signal`` first runs the handlers of signals already received, so none is left
    pending when SIG_IGN takes over."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)


def spin_until_signal(node: Node) -> None:
    """``rclpy.spin(node)`` until :func:`running` is False, with waits of at most
    ``SIGNAL_CHECK_S``, so that a signal stops it within that time."""
    executor = SingleThreadedExecutor(context=node.context)
    executor.add_node(node)
    while running(node):
        executor.spin_once(timeout_sec=SIGNAL_CHECK_S)


def run_node(make_node: Callable[[], Node], spin: Callable[[Node], None] | None = None,
             argv: list[str] | None = None, stop_deadline_s: float = STOP_DEADLINE_S) -> int:
    """Initialise rclpy, build the node, spin until Ctrl-C / SIGTERM / the end, shut down.

    ``spin(node)`` replaces :func:`spin_until_signal` for nodes with their own loop. Returns the
    process exit code: 0 on a clean stop, 2 when the parameters are invalid (the reason is
    printed on stderr, naming the parameter). ``--dds-profile=PATH`` is handled first (see
    :func:`apply_dds_profile`).

    Signals are taken in the main thread, never by rclpy's handler: that one shuts the context
    down from its own thread while this thread may be publishing or destroying the node (the
    player crashed), and raises ``KeyboardInterrupt`` wherever the main thread is, inside
    rclpy's bindings too (a tracker exited with a ``RuntimeError`` from them). Here a signal
    sets a flag (:func:`stop_on_signals_in_main_thread`) that every loop checks between waits
    of at most ``SIGNAL_CHECK_S``; the node is then destroyed and rclpy shut down in this
    thread. Whatever hangs after the first signal, the process exits within
    ``stop_deadline_s`` (with 1, after printing the stack of every thread).
    """
    faulthandler.enable()  # a crash in native code prints the Python stack of every thread
    allocator_note = settle_allocator()  # before any thread starts: arenas are per thread
    args, dds_note = apply_dds_profile(list(sys.argv if argv is None else argv))
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    stop_on_signals_in_main_thread(exit_deadline_s=stop_deadline_s)
    node = None
    try:
        node = make_node()
        for note in (dds_note, allocator_note):
            if note:
                node.get_logger().info(note)
        (spin or spin_until_signal)(node)
        return 0
    except ConfigError as exc:
        print(f"invalid parameters, not starting: {exc}", file=sys.stderr, flush=True)
        return EXIT_INVALID_PARAMETERS
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except RuntimeError:  # RCLError, or rclpy's pybind layer taking a message mid-shutdown
        if node is not None and not node.context.ok():
            return 0  # Ctrl-C / SIGTERM shut the context down under a running call
        raise
    finally:
        if node is not None:
            node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
        ignore_signals_until_exit()
