"""The ``rosbags`` type store of replay and the bag converters, and a message factory on it.

The store is ``rosbags``' ROS 2 Jazzy store (the common interfaces, whose type hashes equal
those of the ROS 2 packages the nodes use) plus the project's interface packages
(``vision_msgs``, ``tf2_msgs``, ``fusion_perception_msgs``), registered from the same ``.msg``
files the setup builds into the environment: ``ros_nodes/interfaces/<package>/msg/*.msg`` in a
source tree, else ``<prefix>/share/<package>/msg/*.msg`` of the environment or of an
``AMENT_PREFIX_PATH`` entry (an installed package).

:class:`RosbagsFactory` is the :class:`perception.rosmsg.MessageFactory` over the store: the
shared encoders build ``rosbags`` message objects with it, which the store serialises to CDR.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..fixtures import REPO_ROOT

INTERFACE_PACKAGES = ("vision_msgs", "tf2_msgs", "fusion_perception_msgs")
"""Interface packages registered from ``.msg`` files, dependencies first."""
NUMPY_OF_ROS = {
    "bool": np.bool_, "byte": np.uint8, "char": np.uint8, "uint8": np.uint8, "int8": np.int8,
    "uint16": np.uint16, "int16": np.int16, "uint32": np.uint32, "int32": np.int32,
    "uint64": np.uint64, "int64": np.int64, "float32": np.float32, "float64": np.float64,
}
"""ROS primitive type -> NumPy dtype of array fields (how ``rosbags`` holds them)."""
BASE, NAME, ARRAY, SEQUENCE = 1, 2, 3, 4
"""``rosbags`` field node types."""


def _search_dirs() -> list[Path]:
    dirs = [REPO_ROOT / "ros_nodes" / "interfaces"]
    prefixes = [Path(sys.prefix)] + [Path(p) for p in
                                     os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep)
                                     if p]
    dirs += [prefix / "share" for prefix in prefixes]
    return dirs


def interface_definitions() -> dict[str, str]:
    """``{"vision_msgs/msg/Detection3D": ".msg text", ...}`` of :data:`INTERFACE_PACKAGES`.

    Raises:
        ConfigError: a package's ``.msg`` files are found nowhere.
    """
    found: dict[str, str] = {}
    for package in INTERFACE_PACKAGES:
        for root in _search_dirs():
            files = sorted((root / package / "msg").glob("*.msg"))
            if files:
                found.update({f"{package}/msg/{f.stem}": f.read_text() for f in files})
                break
        else:
            raise ConfigError(f"no .msg files of {package!r} under "
                              f"{[str(d) for d in _search_dirs()]}; install fusion_perception "
                              f"with its ros_nodes/interfaces")
    return found


@functools.lru_cache(maxsize=1)
def typestore() -> Any:
    """The shared store (built once per process; see the module doc)."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    types: dict[str, Any] = {}
    for name, text in interface_definitions().items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


# ------------------------------------------------------------------------------------------
# Message factory
# ------------------------------------------------------------------------------------------

Field = tuple[str, Callable[[Any], Any] | None, Callable[[], Any]]
"""(name, converter of a given value or None, default maker)."""


class RosbagsFactory:
    """Builds ``rosbags`` messages: missing fields get the type's defaults (zeros, empty
    strings and arrays, default sub-messages) and numeric array fields become NumPy arrays of
    their ROS type, as the CDR serialiser expects."""

    def __init__(self, store: Any | None = None):
        self.store = store if store is not None else typestore()
        self._fields: dict[str, list[Field]] = {}

    def new(self, typename: str, **fields: Any) -> Any:
        values = {}
        for name, convert, default in self._layout(typename):
            if name in fields:
                value = fields.pop(name)
                values[name] = convert(value) if convert is not None else value
            else:
                values[name] = default()
        if fields:
            raise TypeError(f"{typename} has no field(s) {sorted(fields)}")
        return self.store.types[typename](**values)

    def bytes_field(self, data: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(data).view(np.uint8).reshape(-1)

    def default(self, typename: str) -> Any:
        return self.new(typename)

    def _layout(self, typename: str) -> list[Field]:
        layout = self._fields.get(typename)
        if layout is None:
            if typename not in self.store.fielddefs:
                raise KeyError(f"message type {typename!r} is not in the type store")
            layout = [(name, *self._field(node)) for name, node in
                      self.store.fielddefs[typename][1]]
            self._fields[typename] = layout
        return layout

    def _field(self, node: tuple) -> tuple[Callable[[Any], Any] | None, Callable[[], Any]]:
        kind, desc = int(node[0]), node[1]
        if kind == BASE:
            return None, _base_default(desc[0])
        if kind == NAME:
            return None, functools.partial(self.default, desc)
        (sub_kind, sub_desc), length = desc
        dtype = NUMPY_OF_ROS.get(sub_desc[0]) if int(sub_kind) == BASE else None
        if dtype is not None:
            size = length if kind == ARRAY else 0
            return (functools.partial(np.asarray, dtype=dtype),
                    functools.partial(np.zeros, size, dtype))
        if kind == ARRAY:
            make = (_base_default(sub_desc[0]) if int(sub_kind) == BASE
                    else functools.partial(self.default, sub_desc))
            return list, lambda: [make() for _ in range(length)]
        return list, list


def _base_default(ros_type: str) -> Callable[[], Any]:
    if ros_type == "string" or ros_type == "wstring":
        return str
    if ros_type == "bool":
        return bool
    if ros_type.startswith("float"):
        return float
    return int
