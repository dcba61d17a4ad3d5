"""Diagnostics of a real rclpy node: counters, rate, latency and levels."""

from __future__ import annotations

import time

import rclpy
from diagnostic_msgs.msg import DiagnosticStatus

from ros_nodes.node_base import Diagnostics


def _values(status: DiagnosticStatus) -> dict[str, str]:
    return {kv.key: kv.value for kv in status.values}


def test_counters_levels_rate_and_latency():
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("diag_test", context=context)
    try:
        diagnostics = Diagnostics(node, ["TOP", "FRONT"], period_s=1.0)
        now = time.time_ns()
        for i in range(5):
            diagnostics.received("TOP", latency_ms=10.0 + i)
        diagnostics.received("FRONT", stamp_ns=now - 40_000_000)
        health = diagnostics.health["TOP"]
        health.receive_ns.clear()
        health.receive_ns.extend(now + k * 100_000_000 for k in range(5))  # 10 Hz arrivals
        diagnostics.malformed("TOP", "/sensors/lidar/points [stamp 5 ns]: missing field(s)")
        diagnostics.dropped("FRONT", 2, reason="late")

        top = diagnostics.status("TOP")
        assert top.name == "diag_test: TOP" and top.hardware_id == "TOP"
        assert top.level == DiagnosticStatus.WARN
        values = _values(top)
        assert values["received"] == "5" and values["malformed"] == "1"
        assert float(values["rate_hz"]) == 10.0
        assert float(values["latency_ms_p50"]) == 12.0 and float(values["latency_ms_max"]) == 14.0
        assert "missing field" in values["last_error"]
        front = _values(diagnostics.status("FRONT"))
        assert front["dropped"] == "2" and front["last_error"] == "late"
        assert float(front["latency_ms_p50"]) >= 40.0
        # nothing new since the last report: back to OK
        assert diagnostics.status("FRONT").level == DiagnosticStatus.OK
        diagnostics.publish()  # builds and publishes the array without error
    finally:
        node.destroy_node()
        rclpy.shutdown(context=context)
