"""Fuzzing rosbag2 reading as ``perception replay`` reads a log, up to the detector.

A small valid log on our topic names (``_builders.bag_messages``: lidar and radar
``PointCloud2``, a JPEG ``CompressedImage`` with its ``CameraInfo``, ``/tf_static``, ego
poses, ground truth) is written with the ``rosbags`` writer, in MCAP (plain and zstd chunks)
and SQLite3 storage, as a rosbag2 directory or a bare ``.mcap`` / ``.db3`` file. Then:

- ``rosbag2_bytes``: the storage file or ``metadata.yaml`` mutated at the byte level (bit
  flips, overwrites, deletions, insertions, duplicated spans, truncation);
- ``rosbag2_messages``: one to three messages get hostile field values before they are
  serialised (NaN and huge numbers, wrong ``point_step``, ``width * height`` that disagrees
  with the data, unknown encodings, cut or grown byte arrays, fields dropped, duplicated or
  reordered);
- ``rosbag2_cdr``: one to three messages' CDR bytes mutated (malformed CDR: lengths that
  overrun the buffer, bad strings, cut messages), written into an otherwise valid bag.

CI runs 100 inputs per target (each writes and reads a bag); the full mode the usual count.
Each bag goes through :func:`read_like_replay`: open it, map its topics, decode every message
in log-time order (``/tf_static`` first) and push the payloads through the sensor sync, then
touch what the detector reads (points, lazily decoded images). Contract: the bag is refused
with a ``perception.errors`` exception naming it, or accepted, with the messages that cannot
be decoded skipped and counted (reported as ``messages_skipped`` per reason).
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from perception.align import SensorSync, SyncConfig
from perception.errors import ConfigError
from perception.replay.bag import open_bag
from perception.replay.calibration import CalibrationStore
from perception.replay.decode import GroundTruth, MessageDecoder
from perception.replay.ground_truth import GroundTruthCollector
from perception.replay.read import decoded_messages
from perception.replay.runner import ReplayOptions, _input_topics, _window
from perception.replay.topics import build_topic_map
from perception.replay.typestore import typestore
from perception.types import LidarSweep

from . import _builders
from ._fuzz import contract, count_skip, count_skipped_messages, fuzz_settings, seeded
from ._strategies import hostile_floats, hostile_ints, mutated_bytes

_MESSAGES = _builders.bag_messages()
_OPTIONS = ReplayOptions(progress=False, video=False)


def read_like_replay(path) -> dict[str, int]:
    """Read a bag as ``perception replay`` does before the model; returns the messages
    skipped per reason."""
    with open_bag(path) as bag:
        topics = _input_topics(bag, _OPTIONS)
        topic_map = build_topic_map({}, topics)
        if topic_map.lidar is None:
            raise ConfigError("no lidar topic")      # replay refuses such a log likewise
        decoder = MessageDecoder(topic_map, CalibrationStore("base_link"), "map", True)
        has_ego = topic_map.ego_pose is not None or topic_map.tf is not None
        sync = SensorSync(SyncConfig(
            reference=topic_map.lidar_name, cameras=tuple(sorted(topic_map.cameras)),
            radars=tuple(sorted(topic_map.radars)), compensate_motion=has_ego), "fuzz")
        truth = GroundTruthCollector()
        frames, last = [], None
        for message, items in decoded_messages(bag, topic_map, decoder, _window(bag, _OPTIONS)):
            last = message.log_time_ns
            for item in items:
                if isinstance(item, GroundTruth):
                    truth.add_message_boxes(item.stamp_ns, item.boxes)
                    continue
                if isinstance(item, LidarSweep):
                    truth.add_sweep(item)
                frames += [a.frame for a in sync.push(item, message.log_time_ns)]
        frames += [a.frame for a in sync.flush(last or 0)]
        for frame in frames:
            if frame.lidar is not None:
                np.asarray(frame.lidar.points).sum()
            for image in frame.cameras.values():
                image.image                           # decoded on first access
        reasons: dict[str, int] = {}
        for (_, reason), n in decoder.skips.counts.items():
            reasons[reason] = reasons.get(reason, 0) + n
        return reasons


def _read(target: str, path) -> None:
    reasons = contract(target, read_like_replay, path)
    if reasons:
        count_skipped_messages(target, reasons)


_FORMS = ("mcap", "mcap_zstd", "sqlite3")


def _valid_bag(root, storage: str, messages=None):
    """A rosbag2 directory of ``messages`` (default the valid log) under ``root``."""
    path = root / "bag"
    if storage == "mcap_zstd":
        _write_zstd(path, messages or _MESSAGES)
    else:
        _builders.write_bag(path, messages or _MESSAGES, storage)
    return path


def _write_zstd(path, messages) -> None:
    from rosbags.rosbag2 import CompressionFormat, CompressionMode, StoragePlugin, Writer

    store = typestore()
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP)
    writer.set_compression(CompressionMode.STORAGE, CompressionFormat.ZSTD)
    with writer:
        connections = {}
        for topic, log_time, msg in messages:
            if topic not in connections:
                connections[topic] = writer.add_connection(topic, msg.__msgtype__,
                                                           typestore=store)
            writer.write(connections[topic], log_time, store.serialize_cdr(msg, msg.__msgtype__))


_TEMPLATES: dict[str, dict[str, bytes]] = {}


def _template(tmp_path_factory, storage: str) -> dict[str, bytes]:
    """``{file name: bytes}`` of the valid bag in ``storage`` (written once)."""
    if storage not in _TEMPLATES:
        path = _valid_bag(tmp_path_factory.mktemp(f"template_{storage}"), storage)
        _TEMPLATES[storage] = {p.name: p.read_bytes() for p in path.iterdir()}
    return _TEMPLATES[storage]


# ------------------------------------------------------------------------------------------
# Byte level
# ------------------------------------------------------------------------------------------

@seeded
@fuzz_settings(ci_examples=100)
@given(storage=st.sampled_from(_FORMS), which=st.sampled_from(["data", "data", "metadata"]),
       bare=st.booleans(), data=st.data())
def test_fuzz_rosbag2_bytes(tmp_path_factory, storage, which, bare, data):
    files = dict(_template(tmp_path_factory, storage))
    data_name = next(n for n in files if n != "metadata.yaml")
    name = "metadata.yaml" if which == "metadata" else data_name
    files[name] = data.draw(mutated_bytes(files[name], max_ops=6))
    root = tmp_path_factory.mktemp("bag")
    if bare and which == "data":
        path = root / data_name                       # a bare .mcap or .db3 file
        path.write_bytes(files[data_name])
    else:
        path = root / "bag"
        path.mkdir()
        for n, blob in files.items():
            (path / n).write_bytes(blob)
    _read("rosbag2_bytes", path)
    shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# Message level: hostile field values
# ------------------------------------------------------------------------------------------

_STRINGS = ("", "rgb8", "bgr8", "mono8", "mono16", "16UC1", "32FC1", "bayer_rggb8", "yuv422",
            "jpeg", "png", "jpeg; rgb8 compressed", "plumb_bob", "rational_polynomial",
            "equidistant", "base_link", "top", "front_optical", "radar_front", "map", "x", "y",
            "z", "intensity", "time", "t", "timestamp", "laser_id", "doppler", "rcs", "\0",
            "é" * 3, "a" * 300)


def _hostile_array(draw, value: np.ndarray) -> np.ndarray:
    kind = draw(st.sampled_from(["cut", "grow", "empty", "random", "values", "huge"]))
    if kind == "cut" and value.size:
        return value[:draw(st.integers(0, value.size - 1))].copy()
    if kind == "grow":
        return np.concatenate([value, np.zeros(draw(st.integers(1, 64)), value.dtype)])
    if kind == "empty":
        return value[:0].copy()
    if kind == "huge":
        return np.zeros(draw(st.sampled_from([1 << 16, 1 << 20])), value.dtype)
    out = value.copy()
    if out.size:
        if out.dtype.kind == "f":
            idx = draw(st.integers(0, out.size - 1))
            out[idx] = draw(hostile_floats())
        elif kind == "random":
            out[:] = np.frombuffer(draw(st.binary(min_size=out.nbytes, max_size=out.nbytes)),
                                   out.dtype)
        else:
            flat = out.view(np.uint8)
            flat[draw(st.integers(0, flat.size - 1))] = draw(st.integers(0, 255))
    return out


def _int_range(name: str, value: int) -> tuple[int, int]:
    # ROS integer fields: the serialiser refuses values out of their type's range; what gets
    # into a bag is within it, so draw within the widest unsigned/signed 32-bit range
    return (-(2**31), 2**32 - 1) if not isinstance(value, bool) else (0, 1)


@st.composite
def hostile_value(draw, value, name: str):
    """A hostile replacement for one field value of the same ROS kind (so it serialises)."""
    if isinstance(value, bool):
        return draw(st.booleans())
    if isinstance(value, int):
        lo, hi = _int_range(name, value)
        return draw(hostile_ints(lo, hi))
    if isinstance(value, float):
        return draw(hostile_floats())
    if isinstance(value, str):
        return draw(st.one_of(st.sampled_from(_STRINGS), st.text(max_size=12)))
    if isinstance(value, np.ndarray):
        return _hostile_array(draw, value)
    if isinstance(value, list):
        if not value:
            return value
        op = draw(st.sampled_from(["drop", "duplicate", "reverse", "clear"]))
        out = list(value)
        i = draw(st.integers(0, len(out) - 1))
        if op == "drop":
            del out[i]
        elif op == "duplicate":
            out.insert(i, out[i])
        elif op == "reverse":
            out.reverse()
        else:
            out = []
        return out
    return value


def _field_paths(msg, prefix=()):
    """Every (path, value) of a rosbags message, nested messages and list items included."""
    for f in dataclasses.fields(msg):
        value = getattr(msg, f.name)
        path = prefix + (f.name,)
        yield path, value
        if dataclasses.is_dataclass(value):
            yield from _field_paths(value, path)
        elif isinstance(value, list):
            for k, item in enumerate(value):
                if dataclasses.is_dataclass(item):
                    yield from _field_paths(item, path + (k,))


def _replace(msg, path, value):
    """A copy of ``msg`` with the field at ``path`` set to ``value``."""
    head = path[0]
    if len(path) == 1:
        return dataclasses.replace(msg, **{head: value})
    child = getattr(msg, head)
    if isinstance(child, list):
        items = list(child)
        items[path[1]] = _replace(items[path[1]], path[2:], value) if len(path) > 2 else value
        return dataclasses.replace(msg, **{head: items})
    return dataclasses.replace(msg, **{head: _replace(child, path[1:], value)})


@st.composite
def hostile_messages(draw):
    """The valid log with 1-3 messages given a hostile field value each."""
    messages = list(_MESSAGES)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(messages) - 1))
        topic, log_time, msg = messages[i]
        paths = [p for p, v in _field_paths(msg) if not dataclasses.is_dataclass(v)
                 and p[-1] != "__msgtype__"]
        path = draw(st.sampled_from(paths))
        current = msg
        for key in path:
            current = current[key] if isinstance(key, int) else getattr(current, key)
        messages[i] = (topic, log_time, _replace(msg, path, draw(hostile_value(current,
                                                                               path[-1]))))
    return messages


def _serialisable(messages) -> bool:
    store = typestore()
    try:
        for _, _, msg in messages:
            store.serialize_cdr(msg, msg.__msgtype__)
    except Exception:  # noqa: BLE001 - a value the ROS type cannot hold never reaches a bag
        return False
    return True


@seeded
@fuzz_settings(ci_examples=100)
@given(storage=st.sampled_from(("mcap", "sqlite3")), messages=hostile_messages())
def test_fuzz_rosbag2_messages(tmp_path_factory, storage, messages):
    if not _serialisable(messages):
        count_skip("rosbag2_messages")
        return
    root = tmp_path_factory.mktemp("bag")
    _read("rosbag2_messages", _valid_bag(root, storage, messages))
    shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# Malformed CDR
# ------------------------------------------------------------------------------------------

_CDR = [typestore().serialize_cdr(msg, msg.__msgtype__) for _, _, msg in _MESSAGES]


@st.composite
def cdr_messages(draw):
    """The valid log with 1-3 messages' CDR bytes mutated, or replaced by short random
    bytes."""
    messages = list(_MESSAGES)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(messages) - 1))
        topic, log_time, _ = messages[i]
        blob = draw(st.one_of(mutated_bytes(bytes(_CDR[i]), max_ops=4),
                              st.binary(max_size=24)))
        messages[i] = (topic, log_time, blob)
    return messages


@seeded
@fuzz_settings(ci_examples=100)
@given(storage=st.sampled_from(("mcap", "sqlite3")), messages=cdr_messages())
def test_fuzz_rosbag2_cdr(tmp_path_factory, storage, messages):
    root = tmp_path_factory.mktemp("bag")
    path = root / "bag"
    _write_raw_bag(path, messages, storage)
    _read("rosbag2_cdr", path)
    shutil.rmtree(root, ignore_errors=True)


def _write_raw_bag(path, messages, storage: str) -> None:
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    types = {topic: msg.__msgtype__ for topic, _, msg in _MESSAGES}
    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {t: writer.add_connection(t, types[t], typestore=store)
                       for t in sorted(types)}
        for topic, log_time, msg in messages:
            raw = msg if isinstance(msg, bytes) else store.serialize_cdr(msg, msg.__msgtype__)
            writer.write(connections[topic], log_time, bytes(raw))


# ------------------------------------------------------------------------------------------
# The valid log reads back whole (so the mutants start from something that works)
# ------------------------------------------------------------------------------------------

def test_valid_bag_reads_back_whole(tmp_path):
    for storage in _FORMS:
        path = _valid_bag(tmp_path / storage, storage)
        assert read_like_replay(path) == {}, storage
        with open_bag(path) as bag:
            assert bag.topics["/sensors/lidar/points"].count == _builders.BAG_SWEEPS


# Crashing inputs found by the targets above, kept as regression tests.

def test_bare_mcap_with_a_definition_that_is_not_utf8_is_read_without_that_type(tmp_path):
    """A bare ``.mcap`` that ``rosbags`` cannot open is read with the mcap library; a schema
    whose text is not UTF-8 raised UnicodeDecodeError there (found by ``rosbag2_bytes``). Now
    that type's definition is ignored (its messages are skipped unless the type is known) and
    any other error of the mcap library while the file is scanned is a DataError."""
    blob = bytearray(_template_bytes(tmp_path, "mcap"))
    at = blob.find(b"std_msgs/Header header")
    assert at > 0
    while at >= 0:                     # in the data section and in the summary's copy
        blob[at] = 0xFF
        at = blob.find(b"std_msgs/Header header", at + 1)
    path = tmp_path / "bag.mcap"
    path.write_bytes(bytes(blob))
    from perception.errors import DataError

    try:
        read_like_replay(path)
    except DataError:
        pass


def _template_bytes(tmp_path, storage: str) -> bytes:
    path = _valid_bag(tmp_path / "template", storage)
    return next(p for p in path.iterdir() if p.name != "metadata.yaml").read_bytes()
