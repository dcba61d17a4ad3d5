"""ROS time <-> int64 nanoseconds, exactly, and the error constructor every conversion uses.

The arithmetic lives in :mod:`perception.rosmsg.stamps` (shared with log replay); this module
adds the rclpy ``builtin_interfaces/Time`` constructor.
"""

from __future__ import annotations

from builtin_interfaces.msg import Time

from perception.rosmsg.stamps import (
    INT32_MAX,
    INT32_MIN,
    NS_PER_S,
    conversion_error,
    header_stamp_ns,
    split_ns,
    stamp_to_ns,
)

__all__ = ["INT32_MAX", "INT32_MIN", "NS_PER_S", "conversion_error", "header_stamp_ns",
           "ns_to_stamp", "stamp_to_ns"]


def ns_to_stamp(stamp_ns: int) -> Time:
    """int ns -> ``builtin_interfaces/Time``; TimestampError when ``sec`` leaves int32."""
    sec, nanosec = split_ns(stamp_ns)
    return Time(sec=sec, nanosec=nanosec)
