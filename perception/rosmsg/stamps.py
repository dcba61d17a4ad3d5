"""ROS time <-> int64 nanoseconds, exactly, and the error constructor every conversion uses.

``builtin_interfaces/Time`` is ``(sec: int32, nanosec: uint32)`` with ``0 <= nanosec < 1e9``;
a negative time has a negative ``sec`` and a positive ``nanosec`` (ROS convention), so
``stamp_ns = sec * 1e9 + nanosec`` in integer arithmetic, never through a float.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConversionError, TimestampError

NS_PER_S = 1_000_000_000
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


def stamp_to_ns(stamp: Any) -> int:
    """``builtin_interfaces/Time`` (or anything with ``sec``/``nanosec``) -> int ns."""
    return int(stamp.sec) * NS_PER_S + int(stamp.nanosec)


def split_ns(stamp_ns: int) -> tuple[int, int]:
    """int ns -> ``(sec, nanosec)`` of ``builtin_interfaces/Time``.

    Raises:
        TimestampError: not an integer, or ``sec`` outside int32.
    """
    if isinstance(stamp_ns, bool) or not isinstance(stamp_ns, int) and not hasattr(
            stamp_ns, "__index__"):
        raise TimestampError(f"stamp_ns must be an integer number of ns, got {stamp_ns!r}")
    sec, nanosec = divmod(int(stamp_ns), NS_PER_S)
    if not INT32_MIN <= sec <= INT32_MAX:
        raise TimestampError(f"stamp {int(stamp_ns)} ns does not fit builtin_interfaces/Time "
                             f"(sec {sec} outside int32)")
    return sec, nanosec


def header_stamp_ns(msg: Any) -> int | None:
    """The header stamp of ``msg`` in ns, or None when it has no readable header."""
    try:
        return stamp_to_ns(msg.header.stamp)
    except (AttributeError, TypeError, ValueError):
        return None


def conversion_error(topic: str, msg: Any, problem: str) -> ConversionError:
    """A :class:`ConversionError` whose text names the topic and the message stamp."""
    return ConversionError(f"{topic or '<no topic>'} [stamp {header_stamp_ns(msg)} ns]: "
                           f"{problem}")
