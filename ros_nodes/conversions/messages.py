"""The :class:`perception.rosmsg.MessageFactory` over rclpy's generated message classes: the
encoders in :mod:`perception.rosmsg` build rclpy messages through :data:`RCLPY`."""

from __future__ import annotations

import array
import importlib
from typing import Any

import numpy as np


class RclpyFactory:
    """Messages by type name (``sensor_msgs/msg/PointCloud2``) from the installed packages."""

    def __init__(self) -> None:
        self._classes: dict[str, type] = {}

    def message_class(self, typename: str) -> type:
        cls = self._classes.get(typename)
        if cls is None:
            package, kind, name = typename.split("/")
            cls = getattr(importlib.import_module(f"{package}.{kind}"), name)
            self._classes[typename] = cls
        return cls

    def new(self, typename: str, **fields: Any) -> Any:
        return self.message_class(typename)(**fields)

    def bytes_field(self, data: np.ndarray) -> array.array:
        """One memcpy into the ``array.array('B')`` rclpy stores as ``uint8[]``."""
        buffer = array.array("B")
        buffer.frombytes(np.ascontiguousarray(data).view(np.uint8).reshape(-1))
        return buffer


RCLPY = RclpyFactory()
