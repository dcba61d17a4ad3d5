"""The package's own box-table format for ground truth, detections and tracks (``.npz``).

One row per box, columns as named arrays (loaded with ``allow_pickle=False``):

=============  ===========  ==========================================================
name           dtype        meaning
=============  ===========  ==========================================================
sequence_id    unicode      frame key, part 1
stamp_ns       int64        frame key, part 2
boxes          float32      (N, 7) ``(x, y, z, l, w, h, heading)``, vehicle frame
labels         int32        :class:`ObjectClass` values
scores         float32      predictions only: present means the file holds predictions
ids            int64 / str  optional object or track ids
num_points     int32        ground truth only, optional
difficulty     int8         ground truth only, optional (0 unset, 1, 2)
=============  ===========  ==========================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import DataError, PerceptionError
from ..types import Boxes3D, Detections
from .frames import FrameKey
from .waymo_objects import GroundTruthSet, PredictionSet

__all__ = ["load_ground_truth_table", "load_prediction_table", "save_ground_truth_table",
           "save_prediction_table"]


def _load(path: str | Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            table = {k: data[k] for k in data.files}
    except (OSError, ValueError) as exc:
        raise DataError(f"not a readable .npz box table ({exc})", source=str(path)) from None
    for name in ("sequence_id", "stamp_ns", "boxes", "labels"):
        if name not in table:
            raise DataError(f"box table lacks the column {name!r}", source=str(path))
    n = len(table["stamp_ns"])
    for name, col in table.items():
        if len(col) != n:
            raise DataError(f"column {name!r} has {len(col)} rows, stamp_ns has {n}",
                            source=str(path))
    return table


def _groups(table: dict[str, np.ndarray]) -> dict[FrameKey, np.ndarray]:
    seq = table["sequence_id"].astype(str)
    stamps = table["stamp_ns"].astype(np.int64)
    groups: dict[FrameKey, list[int]] = {}
    for i, (s, t) in enumerate(zip(seq, stamps)):
        groups.setdefault(FrameKey(str(s), int(t)), []).append(i)
    return {k: np.asarray(v) for k, v in groups.items()}


def load_ground_truth_table(path: str | Path) -> GroundTruthSet:
    table = _load(path)
    frames = {}
    for key, rows in _groups(table).items():
        try:
            frames[key] = Boxes3D(
                boxes=table["boxes"][rows], labels=table["labels"][rows],
                ids=table["ids"][rows] if "ids" in table else None,
                num_points=table["num_points"][rows] if "num_points" in table else None,
                difficulty=table["difficulty"][rows] if "difficulty" in table else None)
        except PerceptionError as exc:
            raise DataError(f"frame {key}: {exc}", source=str(path)) from None
    return GroundTruthSet(frames, {k: b.levels() for k, b in frames.items()})


def load_prediction_table(path: str | Path) -> PredictionSet:
    table = _load(path)
    if "scores" not in table:
        raise DataError("a prediction table needs a 'scores' column", source=str(path))
    frames, nlz, ids = {}, {}, {}
    for key, rows in _groups(table).items():
        try:
            frames[key] = Detections(key.stamp_ns, table["boxes"][rows], table["scores"][rows],
                                     table["labels"][rows])
        except PerceptionError as exc:
            raise DataError(f"frame {key}: {exc}", source=str(path)) from None
        nlz[key] = np.zeros(len(rows), bool)
        if "ids" in table:
            ids[key] = table["ids"][rows].astype(np.int64)
    return PredictionSet(frames, nlz, ids if "ids" in table else None, ())


def _key_columns(frames: Mapping[FrameKey, object], sizes: list[int]) -> dict[str, np.ndarray]:
    keys = sorted(frames)
    return {"sequence_id": np.repeat(np.array([k.sequence_id for k in keys], dtype=str)
                                     if keys else np.zeros(0, str), sizes),
            "stamp_ns": np.repeat(np.array([k.stamp_ns for k in keys], np.int64), sizes)}


def save_prediction_table(path: str | Path, frames: Mapping[FrameKey, Detections],
                          track_ids: Mapping[FrameKey, np.ndarray] | None = None) -> None:
    keys = sorted(frames)
    cols = _key_columns(frames, [len(frames[k]) for k in keys])
    cols["boxes"] = np.concatenate([frames[k].boxes for k in keys] or [np.zeros((0, 7))])
    cols["labels"] = np.concatenate([frames[k].labels for k in keys] or [np.zeros(0)])
    cols["scores"] = np.concatenate([frames[k].scores for k in keys] or [np.zeros(0)])
    if track_ids is not None:
        cols["ids"] = np.concatenate([np.asarray(track_ids[k], np.int64) for k in keys]
                                     or [np.zeros(0, np.int64)])
    _save_npz(path, cols)


def save_ground_truth_table(path: str | Path, frames: Mapping[FrameKey, Boxes3D]) -> None:
    keys = sorted(frames)
    cols = _key_columns(frames, [len(frames[k]) for k in keys])
    cols["boxes"] = np.concatenate([frames[k].boxes for k in keys] or [np.zeros((0, 7))])
    cols["labels"] = np.concatenate([frames[k].labels for k in keys] or [np.zeros(0)])
    cols["difficulty"] = np.concatenate([frames[k].difficulty for k in keys] or [np.zeros(0)])
    if keys and all(frames[k].ids is not None for k in keys):
        cols["ids"] = np.concatenate([frames[k].ids for k in keys])
    if keys and all(frames[k].num_points is not None for k in keys):
        cols["num_points"] = np.concatenate([frames[k].num_points for k in keys])
    _save_npz(path, cols)


def _save_npz(path: str | Path, cols: dict[str, np.ndarray]) -> None:
    """``np.savez`` (which adds ``.npz`` to a path without it), written atomically."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **cols)
