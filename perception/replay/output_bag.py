"""Writing rosbag2 bags with ``rosbags``: atomically, deterministically, and closed on Ctrl-C.

A bag is written under a temporary name next to its destination and renamed into place when
it is closed, so a destination never holds half a bag. Closing writes the MCAP summary and
``metadata.yaml``; callers close in a ``finally`` so that an interrupt or an error leaves a
valid bag of what was written. The same messages in the same order give the same bytes: the
chunk compression (zstd) is fixed, and nothing from the wall clock goes into the file.

Destinations: a directory (a rosbag2 bag: ``metadata.yaml`` and ``<name>.mcap`` or
``<name>.db3``), or a path ending in ``.mcap`` (a single MCAP file, which carries the rosbag2
metadata itself and is what Foxglove and ``ros2 bag play`` open directly).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from .bag import TopicQos
from .typestore import typestore

STORAGES = ("mcap", "sqlite3")


def rosbags_qos(qos: TopicQos) -> Any:
    """:class:`TopicQos` -> ``rosbags.interfaces.Qos`` (as rosbag2 records offered QoS)."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, qos.depth,
               QosReliability.RELIABLE if qos.reliable else QosReliability.BEST_EFFORT,
               QosDurability.TRANSIENT_LOCAL if qos.transient_local else QosDurability.VOLATILE,
               zero, zero, QosLiveliness.AUTOMATIC, zero, False)


def replace_path(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``, replacing what is there (a file or a directory)."""
    if dst.is_dir() and not dst.is_symlink():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        dst.rename(old)
        src.rename(dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        src.replace(dst)


class OutputBag:
    """A rosbag2 bag being written (see the module doc).

    Args:
        path: destination directory, or ``*.mcap`` file.
        storage: ``mcap`` or ``sqlite3`` (a directory then).
    """

    def __init__(self, path: str | Path, storage: str = "mcap"):
        from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

        self.path = Path(path)
        if storage not in STORAGES:
            raise ConfigError(f"storage: expected one of {STORAGES}, got {storage!r}")
        self.single_file = self.path.suffix == ".mcap"
        if self.single_file and storage != "mcap":
            raise ConfigError(f"{self.path}: a .mcap destination needs storage mcap")
        name = self.path.stem if self.single_file else self.path.name
        self._staging = self.path.with_name(f".{self.path.name}.partial")
        shutil.rmtree(self._staging, ignore_errors=True)
        self._staging.mkdir(parents=True)
        self._bag_dir = self._staging / name
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self._bag_dir, version=9, storage_plugin=plugin)
        if storage == "mcap":
            self._writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
        self._writer.open()
        self.store = typestore()
        self._connections: dict[str, Any] = {}
        self.counts: dict[str, int] = {}
        self.closed = False

    def add_topic(self, topic: str, msgtype: str, qos: TopicQos,
                  definition: tuple[str, str] | None = None) -> None:
        """Declare ``topic`` (once); ``definition`` = (msgdef, RIHS01) for types outside the
        project's store."""
        if topic in self._connections:
            return
        kwargs: dict[str, Any] = {"typestore": self.store}
        if definition is not None:
            kwargs = {"msgdef": definition[0], "rihs01": definition[1]}
        self._connections[topic] = self._writer.add_connection(
            topic, msgtype, offered_qos_profiles=[rosbags_qos(qos)], **kwargs)
        self.counts[topic] = 0

    def write(self, topic: str, log_time_ns: int, msg: Any, qos: TopicQos) -> None:
        """Serialise and write one message object (declaring its topic on first use)."""
        msgtype = msg.__msgtype__
        self.add_topic(topic, msgtype, qos)
        self.write_raw(topic, log_time_ns, self.store.serialize_cdr(msg, msgtype))

    def write_raw(self, topic: str, log_time_ns: int, cdr: bytes | memoryview) -> None:
        """Write CDR bytes on a declared topic."""
        self._writer.write(self._connections[topic], int(log_time_ns), cdr)
        self.counts[topic] += 1

    def close(self) -> Path:
        """Finish the bag and move it into place; returns the destination."""
        if self.closed:
            return self.path
        self.closed = True
        self._writer.close()
        if self.single_file:
            replace_path(self._bag_dir / f"{self._bag_dir.name}.mcap", self.path)
        else:
            replace_path(self._bag_dir, self.path)
        shutil.rmtree(self._staging, ignore_errors=True)
        return self.path

    def __enter__(self) -> OutputBag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def mcap_file(bag_path: Path) -> Path:
    """The MCAP file of a bag written by :class:`OutputBag` (a directory or a file)."""
    if bag_path.is_file():
        return bag_path
    files = sorted(bag_path.glob("*.mcap"))
    if not files:
        raise DataError("no .mcap file in the bag directory", source=str(bag_path))
    return files[0]

