"""Reading recorded bags: rosbag2 (MCAP or SQLite3, any version ``rosbags`` reads) and MCAP
files of other profiles, as raw messages in log-time order.

* rosbag2 directories (``metadata.yaml``), bare ``.mcap`` and ``.db3`` files are read with
  ``rosbags`` (:class:`Rosbag2Bag`);
* MCAP files that ``rosbags`` does not read are read with the ``mcap`` library
  (:class:`McapStreamBag`): the ``ros1`` profile (ROS 1 serialisation, e.g. bags converted from
  ROS 1), and files cut short (a recorder that was killed), of which the readable prefix is
  recovered and the bag flagged :attr:`Bag.truncated`.

Messages are deserialised with a per-bag ``rosbags`` type store: the project's store
(:mod:`.typestore`) overlaid with the definitions the bag carries, so a bag's own types win
and any type it defines can be read. Nothing here is ROS code.

Errors: a bag that cannot be opened raises :class:`DataError` naming the file and the reason;
a message that cannot be deserialised raises :class:`DataError` from :meth:`Bag.decode`, for
the caller to count and skip.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError
from .typestore import typestore

log = logging.getLogger("perception.replay")

MCAP_MAGIC = b"\x89MCAP0\r\n"


@dataclass(frozen=True)
class TopicQos:
    """The QoS kind a topic was recorded with (what a player offers again).

    Attributes:
        reliable: RELIABLE (else BEST_EFFORT).
        transient_local: TRANSIENT_LOCAL durability (latched, e.g. ``/tf_static``).
        depth: KEEP_LAST history depth.
    """

    reliable: bool = True
    transient_local: bool = False
    depth: int = 10


SENSOR_QOS = TopicQos(reliable=False, depth=5)
LATCHED_QOS = TopicQos(reliable=True, transient_local=True, depth=1)
RELIABLE_QOS = TopicQos()


@dataclass(frozen=True)
class BagTopic:
    """One topic of a bag: name, ROS 2 type name (``sensor_msgs/msg/PointCloud2``), message
    count and recorded QoS (None when the bag does not say)."""

    name: str
    msgtype: str
    count: int
    qos: TopicQos | None = None


@dataclass(frozen=True, eq=False)
class BagMessage:
    """One recorded message: topic, type, log time (ns, when it was recorded) and its
    serialised bytes (CDR, or ROS 1 for ``ros1`` bags)."""

    topic: str
    msgtype: str
    log_time_ns: int
    raw: bytes | memoryview


def ros2_typename(name: str) -> str:
    """``sensor_msgs/PointCloud2`` (ROS 1) -> ``sensor_msgs/msg/PointCloud2``."""
    parts = name.split("/")
    return name if len(parts) == 3 else f"{parts[0]}/msg/{parts[-1]}"


class Bag:
    """A bag open for reading (use as a context manager). Subclasses fill :attr:`topics`,
    :attr:`store` and :attr:`encoding` and implement :meth:`messages`."""

    path: Path
    topics: dict[str, BagTopic]
    store: Any
    encoding: str = "cdr"
    storage: str = ""
    truncated: bool = False

    def messages(self, topics: Collection[str], start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[BagMessage]:
        """Messages of ``topics`` with ``start_ns <= log time < stop_ns``, in log-time order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release the files."""

    def __enter__(self) -> Bag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def start_ns(self) -> int:
        raise NotImplementedError

    def decode(self, message: BagMessage) -> Any:
        """The message object (``rosbags`` dataclass) of ``message``.

        Raises:
            DataError: the bytes do not deserialise as the topic's type, or the type is unknown.
        """
        try:
            # ROS 1 bytes go through CDR: rosbags maps the ROS 1 header (with ``seq``) onto
            # the ROS 2 one only in that conversion
            return self.store.deserialize_cdr(self.cdr(message), message.msgtype)
        except Exception as exc:  # noqa: BLE001 - rosbags raises several types on bad bytes
            raise DataError(f"cannot deserialise {message.msgtype} at log time "
                            f"{message.log_time_ns} ns: {type(exc).__name__}: {exc}",
                            source=f"{self.path}:{message.topic}") from None

    def cdr(self, message: BagMessage) -> bytes | memoryview:
        """The message as CDR bytes (as it is, or converted from ROS 1)."""
        if self.encoding == "ros1":
            return self.store.ros1_to_cdr(message.raw, message.msgtype)
        return message.raw

    def definition(self, msgtype: str) -> tuple[str, str] | None:
        """``(ros2msg definition text, RIHS01 hash)`` of ``msgtype`` for writing it into a
        ROS 2 bag, or None when the type is unknown."""
        ours = typestore()
        store = ours if msgtype in ours.fielddefs else self.store
        if msgtype not in store.fielddefs:
            return None
        return store.generate_msgdef(msgtype, ros_version=2)[0], store.hash_rihs01(msgtype)


def open_bag(path: str | Path) -> Bag:
    """Open a rosbag2 directory, an ``.mcap`` or a ``.db3`` file (see the module doc).

    Raises:
        DataError: not a bag, or unreadable (missing tables, bad metadata, not MCAP).
    """
    path = Path(path)
    if not path.exists():
        raise DataError("no such file or directory", source=str(path))
    try:
        return Rosbag2Bag(path)
    except DataError as exc:
        if path.is_file() and _is_mcap(path):
            log.info("%s: rosbags cannot read it (%s); reading with the mcap library", path, exc)
            return McapStreamBag(path)
        raise


def _is_mcap(path: Path) -> bool:
    with path.open("rb") as f:
        return f.read(len(MCAP_MAGIC)) == MCAP_MAGIC


def _parse_definitions(definitions: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """``{type: (format, text)}`` -> ``rosbags`` field definitions (dependencies included)."""
    from rosbags.typesys import get_types_from_idl, get_types_from_msg

    types: dict[str, Any] = {}
    for msgtype, (fmt, text) in sorted(definitions.items()):
        try:
            if fmt == "idl":
                for part in text.split("=" * 80 + "\n")[1:] or [text]:
                    types.update(get_types_from_idl(part.split("\n", 1)[-1]))
            else:
                types.update(get_types_from_msg(text, msgtype))
        except Exception as exc:  # noqa: BLE001 - a bad definition only loses that type
            log.warning("message definition of %s cannot be parsed (%s); its messages will "
                        "be skipped unless the type is known", msgtype, exc)
    return types


def _bag_store(definitions: dict[str, tuple[str, str]], ros1: bool = False) -> Any:
    """The project's types with a bag's own ``{type: (format, text)}`` definitions.

    Types the project does not know are added to its store. Only when the bag defines a known
    type differently (another version of a message) does the bag get a store of its own, in
    which its definitions win. ROS 1 definitions only add types: ``rosbags`` reads ROS 1
    bytes (converting them to CDR) with the ROS 2 definition of a type, handling the ROS 1
    header's ``seq`` itself."""
    from rosbags.typesys import Stores, get_typestore

    ours = typestore()
    parsed = _parse_definitions(definitions)
    added = {k: v for k, v in parsed.items() if k not in ours.fielddefs}
    differing = {k: v for k, v in parsed.items()
                 if k in ours.fielddefs and ours.fielddefs[k] != v and not ros1}
    if not differing:
        if added:
            ours.register(added)  # additive: other users of the store are unaffected
        return ours
    store = get_typestore(Stores.EMPTY)
    store.register({**ours.fielddefs, **added, **differing})
    return store


# ------------------------------------------------------------------------------------------
# rosbag2 through rosbags
# ------------------------------------------------------------------------------------------

def _qos(profiles: list[Any]) -> TopicQos | None:
    if not profiles:
        return None
    q = profiles[0]
    return TopicQos(reliable=q.reliability.name != "BEST_EFFORT",
                    transient_local=q.durability.name == "TRANSIENT_LOCAL",
                    depth=max(int(q.depth), 1))


class Rosbag2Bag(Bag):
    """A rosbag2 bag read by ``rosbags`` (MCAP or SQLite3 storage)."""

    def __init__(self, path: Path):
        from rosbags.rosbag2 import Reader

        self.path = path
        try:
            self.reader = Reader(path)
            self.reader.open()
        except Exception as exc:  # noqa: BLE001 - sqlite3, yaml and rosbags errors alike
            raise DataError(f"cannot open as rosbag2: {type(exc).__name__}: {exc}",
                            source=str(path)) from None
        self.storage = "sqlite3" if _is_sqlite(path) else "mcap"
        connections = self.reader.connections
        definitions = {c.msgtype: (c.msgdef.format.name.lower(), c.msgdef.data)
                       for c in connections if c.msgdef.data}
        self.store = _bag_store(definitions)
        self.topics = {}
        for topic, info in sorted(self.reader.topics.items()):
            qos = _qos(info.connections[0].ext.offered_qos_profiles) if info.connections else None
            self.topics[topic] = BagTopic(topic, info.msgtype or "", info.msgcount, qos)
        self._connections = connections

    @property
    def start_ns(self) -> int:
        return int(self.reader.start_time) if self.reader.message_count else 0

    def messages(self, topics: Collection[str], start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[BagMessage]:
        wanted = [c for c in self._connections if c.topic in set(topics)]
        if not wanted:
            return
        try:
            for connection, log_time, raw in self.reader.messages(wanted, start_ns, stop_ns):
                yield BagMessage(connection.topic, connection.msgtype, int(log_time), raw)
        except DataError:
            raise
        except Exception as exc:  # noqa: BLE001 - a storage error ends the readable part
            raise DataError(f"reading stopped: {type(exc).__name__}: {exc}",
                            source=str(self.path)) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.reader.close()


def _is_sqlite(path: Path) -> bool:
    if path.is_dir():
        return any(path.glob("*.db3"))
    return path.suffix == ".db3"


# ------------------------------------------------------------------------------------------
# MCAP through the mcap library (ros1 profile, truncated files)
# ------------------------------------------------------------------------------------------

class McapStreamBag(Bag):
    """An MCAP file read record by record with the ``mcap`` library: any profile, and the
    readable prefix of a file that ends early (:attr:`truncated`)."""

    def __init__(self, path: Path):
        from mcap.reader import make_reader

        self.path = path
        self.storage = "mcap"
        self._file = path.open("rb")
        try:
            header = make_reader(self._file).get_header()
        except Exception as exc:  # noqa: BLE001 - mcap raises several types
            self._file.close()
            raise DataError(f"not a readable MCAP file: {type(exc).__name__}: {exc}",
                            source=str(path)) from None
        self.encoding = "ros1" if header.profile == "ros1" else "cdr"
        try:
            self._scan()
        except Exception as exc:  # noqa: BLE001 - mcap raises several types on bad records
            self._file.close()
            raise DataError(f"not a readable MCAP file: {type(exc).__name__}: {exc}",
                            source=str(path)) from None

    def _summary(self) -> Any:
        from mcap.reader import make_reader

        self._file.seek(0)
        try:
            return make_reader(self._file).get_summary()
        except Exception:  # noqa: BLE001 - no footer or summary: a cut-off file
            return None

    def _records(self, topics: Collection[str] | None = None, start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[tuple[Any, Any, Any]]:
        """(schema, channel, message): in log-time order through the summary's index, or in
        file order up to a cut-off end (see :meth:`messages`)."""
        from mcap.reader import NonSeekingReader, make_reader

        self._file.seek(0)
        if self._indexed:
            yield from make_reader(self._file).iter_messages(
                topics=list(topics) if topics is not None else None, start_time=start_ns,
                end_time=stop_ns, log_time_order=True)
            return
        reader = NonSeekingReader(self._file, validate_crcs=True)
        try:
            # file order: in log-time order the reader would hold every message until the
            # end of the file, and lose them all at the cut
            yield from reader.iter_messages(log_time_order=False)
        except Exception as exc:  # noqa: BLE001 - EndOfFile, CRC or record errors at the cut
            if not self.truncated:
                log.warning("%s: the file ends early (%s: %s); only the messages before it "
                            "are read", self.path, type(exc).__name__, exc)
            self.truncated = True

    def _scan(self) -> None:
        summary = self._summary()
        self._indexed = summary is not None and bool(summary.chunk_indexes or
                                                     summary.statistics)
        counts: dict[str, int] = {}
        types: dict[str, str] = {}
        definitions: dict[str, tuple[str, str]] = {}
        self._start_ns: int | None = None
        for schema, channel, message in self._records():
            msgtype = ros2_typename(schema.name) if schema is not None else ""
            types[channel.topic] = msgtype
            counts[channel.topic] = counts.get(channel.topic, 0) + 1
            if schema is not None and msgtype not in definitions:
                fmt = "idl" if schema.encoding == "ros2idl" else "msg"
                try:
                    definitions[msgtype] = (fmt, bytes(schema.data).decode())
                except UnicodeDecodeError as exc:
                    # like a definition that does not parse: only that type is lost
                    log.warning("message definition of %s is not UTF-8 text (%s); its "
                                "messages will be skipped unless the type is known", msgtype,
                                exc)
            if self._start_ns is None or message.log_time < self._start_ns:
                self._start_ns = message.log_time
        self.store = _bag_store(definitions, ros1=self.encoding == "ros1")
        self.topics = {t: BagTopic(t, types[t], counts[t]) for t in sorted(counts)}

    @property
    def start_ns(self) -> int:
        return int(self._start_ns or 0)

    def messages(self, topics: Collection[str], start_ns: int | None = None,
                 stop_ns: int | None = None) -> Iterator[BagMessage]:
        """In log-time order. A cut-off file has no index: its readable records are read in
        file order and sorted by log time (a recorder writes in arrival order, which may
        differ from log-time order a little; file order breaks ties)."""
        wanted = set(topics)
        if not wanted:
            return
        selected = (BagMessage(channel.topic, ros2_typename(schema.name), int(message.log_time),
                               message.data)
                    for schema, channel, message in self._records(wanted, start_ns, stop_ns)
                    if channel.topic in wanted and schema is not None)
        if self._indexed:
            try:
                yield from selected
            except Exception as exc:  # noqa: BLE001 - a record damaged inside the index
                raise DataError(f"reading stopped: {type(exc).__name__}: {exc}",
                                source=str(self.path)) from None
            return
        window = [m for m in selected if (start_ns is None or m.log_time_ns >= start_ns)
                  and (stop_ns is None or m.log_time_ns < stop_ns)]
        yield from sorted(window, key=lambda m: m.log_time_ns)

    def close(self) -> None:
        self._file.close()
