"""How the encoders of this package build messages without knowing the message classes.

A :class:`MessageFactory` makes a message of a type given by its ROS name
(``"sensor_msgs/msg/PointCloud2"``) from keyword fields; fields not given take the type's
defaults. The nodes pass one over rclpy's generated classes, replay and the bag converters
one over a ``rosbags`` typestore, so each message layout is written once.

Field values follow one convention that both sides accept: numbers and strings as Python
scalars, nested messages as factory-made messages, lists of messages as lists, numeric arrays
(``float64[9]``, ``float32[]``) as NumPy arrays, and byte buffers (``uint8[] data``) through
:meth:`MessageFactory.bytes_field`, which gives each side its fastest container.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from .stamps import split_ns


class MessageFactory(Protocol):
    """Builds messages by type name (see the module doc)."""

    def new(self, typename: str, **fields: Any) -> Any:
        """A message of ``typename`` (``pkg/msg/Name``) with ``fields`` set, the rest default."""
        ...

    def bytes_field(self, data: np.ndarray) -> Any:
        """A ``uint8[]`` field value from a C-contiguous array (one copy at most)."""
        ...


def time_msg(factory: MessageFactory, stamp_ns: int) -> Any:
    """``builtin_interfaces/Time`` of ``stamp_ns`` (TimestampError outside int32 seconds)."""
    sec, nanosec = split_ns(stamp_ns)
    return factory.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def header_msg(factory: MessageFactory, stamp_ns: int, frame_id: str) -> Any:
    """``std_msgs/Header`` with ``stamp_ns`` and ``frame_id``."""
    return factory.new("std_msgs/msg/Header", stamp=time_msg(factory, stamp_ns),
                       frame_id=frame_id)
