"""Recorded-log replay: rosbag2 bags (MCAP, SQLite3), Waymo segments, converted Waymo, nuScenes
scenes and KITTI raw drives through the pipeline, offline and deterministic; converters of
Waymo segments and simulator scenarios into bags.

Modules, in the order a replay uses them: :mod:`.sources` (what a log is), :mod:`.bag`
(reading bags), :mod:`.typestore` (message types), :mod:`.topics` (topic map),
:mod:`.calibration`, :mod:`.decode` and :mod:`.read` (messages -> sensor data), :mod:`.runner`
(the replay), :mod:`.outputs`, :mod:`.output_bag`, :mod:`.ground_truth`, :mod:`.video`,
:mod:`.summary` (what it writes); :mod:`.frames_to_bag` and :mod:`.convert` (frames -> bags);
:mod:`.stop` (Ctrl-C). See ``docs/replay.md``.
"""

import importlib
from typing import Any

_EXPORTS = {
    "Bag": "bag", "BagMessage": "bag", "BagTopic": "bag", "TopicQos": "bag", "open_bag": "bag",
    "ConvertResult": "convert", "sim_to_bag": "convert", "waymo_to_bag": "convert",
    "bag_frames": "read", "ReplayOptions": "runner", "replay": "runner",
    "LogKind": "sources", "detect_kind": "sources", "ReplaySummary": "summary",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    # Lazy: the ROS player reads bags without loading the detector (torch) at start-up.
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
