"""What a replayed log is: a bag (messages, synchronised by the pipeline) or a data set
sequence (frames that are already synchronised).

:func:`detect_kind` tells them apart by path:

==========================  ====================================================
``LogKind``                 path
==========================  ====================================================
``BAG``                     a directory with ``metadata.yaml``, an ``.mcap`` or ``.db3`` file
``WAYMO_SEGMENT``           a ``.tfrecord`` file (a Waymo v1 segment)
``WAYMO_CONVERTED``         a directory written by ``perception convert waymo`` (``meta.json``
                            in it or in its subdirectories)
``NUSCENES``                a devkit ``dataroot`` (``v1.0-*/sample.json``)
``KITTI_RAW``               a KITTI raw drive directory (``velodyne_points/data``)
==========================  ====================================================
"""

from __future__ import annotations

import enum
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..types import SensorFrame

log = logging.getLogger("perception.replay")


class LogKind(str, enum.Enum):
    BAG = "bag"
    WAYMO_SEGMENT = "waymo_segment"
    WAYMO_CONVERTED = "waymo_converted"
    NUSCENES = "nuscenes"
    KITTI_RAW = "kitti_raw"


def detect_kind(path: str | Path) -> LogKind:
    """The kind of log at ``path`` (see the module doc).

    Raises:
        DataError: the path does not exist or is none of the kinds.
    """
    from ..data.kitti_raw import is_kitti_raw

    path = Path(path)
    if not path.exists():
        raise DataError("no such file or directory", source=str(path))
    if path.is_file():
        if path.suffix in (".mcap", ".db3"):
            return LogKind.BAG
        if path.suffix == ".tfrecord":
            return LogKind.WAYMO_SEGMENT
    elif (path / "metadata.yaml").is_file():
        return LogKind.BAG
    elif (path / "meta.json").is_file() or any(path.glob("*/meta.json")):
        return LogKind.WAYMO_CONVERTED
    elif any(path.glob("v1.0-*/sample.json")):
        return LogKind.NUSCENES
    elif is_kitti_raw(path):
        return LogKind.KITTI_RAW
    raise DataError("not a log: expected a rosbag2 directory, an .mcap or .db3 file, a Waymo "
                    ".tfrecord segment, a converted Waymo directory, a nuScenes dataroot or a "
                    "KITTI raw drive directory", source=str(path))


@dataclass
class FrameLog:
    """A data set sequence: random access to its frames, in stamp order.

    Attributes:
        kind: where it comes from.
        readers: readers with ``len()`` and ``reader[i] -> SensorFrame``, played one after
            the other.
        indices: per reader, the frame indices played (all, in order, by default).
    """

    kind: LogKind
    readers: Sequence[Any]
    indices: Sequence[Sequence[int]]

    def __len__(self) -> int:
        return sum(len(i) for i in self.indices)

    def __iter__(self) -> Iterator[SensorFrame]:
        for reader, indices in zip(self.readers, self.indices):
            for i in indices:
                yield reader[i]


def open_frame_log(path: str | Path, kind: LogKind, scene: str | None = None) -> FrameLog:
    """The frames of a data set log (every kind but ``BAG``).

    Args:
        scene: nuScenes scene name (``scene-0061``); default the first scene.

    Raises:
        DataError: unreadable files; ConfigError: an unknown scene.
    """
    path = Path(path)
    if kind is LogKind.WAYMO_SEGMENT:
        from ..data.waymo import WaymoReader

        reader = WaymoReader(path)
        return FrameLog(kind, [reader], [range(len(reader))])
    if kind is LogKind.WAYMO_CONVERTED:
        from ..data.waymo_convert import open_converted

        segments = open_converted(path)
        return FrameLog(kind, segments, [range(len(s)) for s in segments])
    if kind is LogKind.KITTI_RAW:
        from ..data.kitti_raw import KittiRawReader

        reader = KittiRawReader(path)
        return FrameLog(kind, [reader], [range(len(reader))])
    if kind is LogKind.NUSCENES:
        return _nuscenes(path, scene)
    raise ConfigError(f"{path}: a {kind.value} log is not a frame log")


def _nuscenes(dataroot: Path, scene: str | None) -> FrameLog:
    from ..data.nuscenes import NuScenesDevkit

    version_dir = sorted(dataroot.glob("v1.0-*/sample.json"))[0].parent
    devkit = NuScenesDevkit(dataroot, version_dir.name)
    by_scene: dict[str, list[int]] = {}
    for i, sample in enumerate(devkit.samples):
        by_scene.setdefault(sample.get("scene_token", ""), []).append(i)
    names = _scene_names(version_dir)
    token = _scene_token(scene, names, by_scene) if scene else \
        min(by_scene, key=lambda t: min(devkit.samples[i]["timestamp"] for i in by_scene[t]))
    if scene is None and len(by_scene) > 1:
        log.warning("%s holds %d scenes; replaying %s (choose one with --scene)", dataroot,
                    len(by_scene), names.get(token, token))
    indices = sorted(by_scene[token], key=lambda i: devkit.samples[i]["timestamp"])
    return FrameLog(LogKind.NUSCENES, [devkit], [indices])


def _scene_names(version_dir: Path) -> dict[str, str]:
    """scene token -> scene name, from ``scene.json`` when there is one."""
    path = version_dir / "scene.json"
    if not path.is_file():
        return {}
    return {row["token"]: row["name"] for row in json.loads(path.read_text())}


def _scene_token(scene: str, names: dict[str, str], by_scene: dict[str, list[int]]) -> str:
    for token in by_scene:
        if scene in (token, names.get(token)):
            return token
    raise ConfigError(f"--scene {scene}: no such scene; scenes: "
                      f"{sorted(names.get(t, t) for t in by_scene)}")
