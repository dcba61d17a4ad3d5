"""Ground-truth sampling ("GT paste", as in SECOND / OpenPCDet): a lidar-only augmentation.

A :class:`GroundTruthDatabase` holds every labelled object of the training frames that has
at least ``min_points`` lidar points, with those points. During training,
:meth:`GroundTruthDatabase.paste` adds up to ``max_per_class`` stored objects to a frame at
their original vehicle-frame pose, skipping any whose BEV box would overlap a box already in
the frame (or one pasted before it). The lidar points inside each pasted box are replaced by
the object's own points.

Only the lidar sweep and the labels change: camera images cannot be edited consistently, so
camera and point-painting models refuse the augmentation
(:func:`perception.train.config.check_gt_sampling`), and
radar scans are left as they are (pasted objects have no radar returns).

Storage: a single ``.npz`` of plain arrays (read with ``allow_pickle=False``). Object points
keep every lidar column; their x, y, z are stored relative to the box centre (vehicle-frame
axes, not rotated), so an object can be placed at its stored pose by adding the centre back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import to_dict
from ..errors import DataError
from ..geometry import bev_intersection, points_in_boxes
from ..types import BOX_DIM, DETECTION_CLASSES, Boxes3D, ObjectClass, SensorFrame
from .config import DataConfig, GtSamplingConfig

__all__ = ["GroundTruthDatabase", "database_path"]

log = logging.getLogger("perception.train")

DATABASE_FORMAT = "perception.gt_database/1"

_UNKNOWN_INDEX = -1
"""Stored laser_id / return_index of points whose sweep did not carry them."""


# --------------------------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class GroundTruthDatabase:
    """Labelled objects with their lidar points; M objects, P points in all.

    Attributes:
        columns: names of the C point columns (start with x, y, z).
        boxes: (M, 7) float32 boxes, vehicle frame of the frame they came from.
        labels: (M,) int32 :class:`ObjectClass` values.
        difficulty: (M,) int8 labelled difficulty.
        velocities: (M, 2) float32 m/s, vehicle frame; NaN rows where the frame had none.
        accelerations: (M, 2) float32 m/s^2, vehicle frame; NaN rows where unknown.
        offsets: (M + 1,) int64; object i owns points ``offsets[i]:offsets[i + 1]``.
        points: (P, C) float32; x, y, z relative to the object's box centre (vehicle-frame
            axes), other columns as recorded.
        laser_id, return_index: (P,) int8, -1 where the sweep did not carry them.
    """

    columns: tuple[str, ...]
    boxes: np.ndarray
    labels: np.ndarray
    difficulty: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray
    offsets: np.ndarray
    points: np.ndarray
    laser_id: np.ndarray
    return_index: np.ndarray

    def __len__(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def num_points(self) -> np.ndarray:
        """(M,) int32 stored points per object."""
        return np.diff(self.offsets).astype(np.int32)

    def object_points(self, i: int) -> np.ndarray:
        """(n, C) float32 points of object ``i``, vehicle frame of its stored pose."""
        pts = self.points[self.offsets[i]:self.offsets[i + 1]].copy()
        pts[:, :3] = (pts[:, :3] + self.boxes[i, :3].astype(np.float64)).astype(np.float32)
        return pts

    # ---------------------------------------------------------------------------------------
    @classmethod
    def build(cls, frames: Iterable[SensorFrame], min_points: int = 5,
              progress: bool = True) -> GroundTruthDatabase:
        """Collect the detection-class objects of labelled lidar ``frames`` that hold at least
        ``min_points`` points (closed boxes, :func:`perception.geometry.points_in_boxes`).

        The first sweep fixes the columns; other sweeps are mapped onto them by name (a
        missing column reads 0). Frames without lidar or labels are skipped.
        """
        from tqdm import tqdm

        total = len(frames) if hasattr(frames, "__len__") else None
        columns: tuple[str, ...] | None = None
        parts: list[_Objects] = []
        for frame in tqdm(frames, total=total, desc="gt database", disable=not progress,
                          dynamic_ncols=True):
            if frame.lidar is None or frame.boxes is None or len(frame.boxes) == 0:
                continue
            columns = columns or frame.lidar.columns
            parts.append(_objects_of(frame, columns, min_points))
        db = cls._concat(columns or ("x", "y", "z"), parts)
        log.info("ground-truth database: %d objects (%s)", len(db), db.class_counts())
        return db

    def class_counts(self) -> dict[str, int]:
        """Stored objects per class name."""
        return {c.name: int((self.labels == c.value).sum()) for c in DETECTION_CLASSES}

    @classmethod
    def _concat(cls, columns: tuple[str, ...], parts: list[_Objects]) -> GroundTruthDatabase:
        C = len(columns)
        counts = np.concatenate([p.counts for p in parts]) if parts else np.zeros(0, np.int64)
        return cls(
            columns=tuple(columns),
            boxes=_cat([p.boxes for p in parts], (0, BOX_DIM), np.float32),
            labels=_cat([p.labels for p in parts], (0,), np.int32),
            difficulty=_cat([p.difficulty for p in parts], (0,), np.int8),
            velocities=_cat([p.velocities for p in parts], (0, 2), np.float32),
            accelerations=_cat([p.accelerations for p in parts], (0, 2), np.float32),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            points=_cat([p.points for p in parts], (0, C), np.float32),
            laser_id=_cat([p.laser_id for p in parts], (0,), np.int8),
            return_index=_cat([p.return_index for p in parts], (0,), np.int8))

    # ---------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write one ``.npz`` of plain arrays, atomically (concurrent ranks never see half a
        file). Returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        arrays["columns"] = np.array(self.columns, dtype=str)
        arrays["format"] = np.str_(DATABASE_FORMAT)
        tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> GroundTruthDatabase:
        """Read a file written by :meth:`save` (no pickle). Raises :class:`DataError` when it
        is missing, corrupt or inconsistent."""
        path = Path(path)
        if not path.is_file():
            raise DataError("ground-truth database not found", source=str(path))
        try:
            with np.load(path, allow_pickle=False) as z:
                a = {k: z[k] for k in z.files}
        except Exception as exc:  # zip, zlib and header errors alike
            raise DataError(f"cannot read ground-truth database: {exc}",
                            source=str(path)) from None
        if str(a.get("format", "")) != DATABASE_FORMAT:
            raise DataError(f"not a {DATABASE_FORMAT} file", source=str(path))
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in a]
        if missing:
            raise DataError(f"ground-truth database lacks arrays {missing}", source=str(path))
        a["columns"] = tuple(str(c) for c in a["columns"])
        db = cls(**{n: a[n] for n in names})
        db._check(str(path))
        return db

    def _check(self, source: str) -> None:
        M, P = len(self), self.points.shape[0]
        ok = (self.boxes.shape == (M, BOX_DIM) and self.labels.shape == (M,)
              and self.difficulty.shape == (M,) and self.velocities.shape == (M, 2)
              and self.accelerations.shape == (M, 2) and self.offsets.shape == (M + 1,)
              and self.points.shape == (P, len(self.columns))
              and self.laser_id.shape == (P,) and self.return_index.shape == (P,)
              and self.offsets[0] == 0 and self.offsets[-1] == P
              and bool((np.diff(self.offsets) >= 0).all()))
        if not ok:
            raise DataError("ground-truth database arrays have inconsistent shapes",
                            source=source)

    # ---------------------------------------------------------------------------------------
    def paste(self, frame: SensorFrame, rng: np.random.Generator, config: GtSamplingConfig
              ) -> SensorFrame:
        """``frame`` with up to ``config.max_per_class`` stored objects per class added at
        their stored pose (``config.enabled`` is the trainer's switch and is not read here).

        Classes are filled in the order of ``max_per_class``. A candidate is refused when its
        BEV box intersects a box of the frame or one pasted before it (intersection area
        > 0). Lidar points inside a pasted box are replaced by the object's points; boxes,
        labels, ids (fresh), velocities, accelerations, point counts and difficulty grow
        together. Objects stored without velocities (accelerations) are not pasted into
        frames whose labels have them. Frames without lidar or labels are returned as they
        are; ``frame`` itself is never modified.
        """
        if frame.lidar is None or frame.boxes is None or len(self) == 0:
            return frame
        chosen = self._choose(frame.boxes, rng, config)
        if chosen.size == 0:
            return frame
        lidar = self._paste_points(frame, chosen)
        boxes = self._paste_boxes(frame.boxes, chosen)
        return dataclasses.replace(frame, lidar=lidar, boxes=boxes)

    def _choose(self, existing: Boxes3D, rng: np.random.Generator, config: GtSamplingConfig
                ) -> np.ndarray:
        """Indices of the objects to paste, none overlapping ``existing`` or each other."""
        usable = np.ones(len(self), bool)
        if existing.velocities is not None:  # pasted rows need values too
            usable &= np.isfinite(self.velocities).all(axis=1)
        if existing.accelerations is not None:
            usable &= np.isfinite(self.accelerations).all(axis=1)
        placed = existing.boxes
        chosen: list[int] = []
        for name, limit in config.max_per_class.items():
            pool = np.flatnonzero(usable & (self.labels == ObjectClass[name].value))
            if limit <= 0 or pool.size == 0:
                continue
            tries = rng.permutation(pool)[:limit * config.max_tries_per_object]
            accepted = _non_overlapping(self.boxes[tries], placed, limit)
            chosen.extend(tries[accepted].tolist())
            placed = np.concatenate([placed, self.boxes[tries[accepted]]])
        return np.asarray(chosen, np.int64)

    def _paste_points(self, frame: SensorFrame, chosen: np.ndarray):
        sweep = frame.lidar
        inside = _inside_any(sweep.points, self.boxes[chosen])
        parts = [self.object_points(int(i)) for i in chosen]
        sel = np.concatenate([np.arange(self.offsets[i], self.offsets[i + 1]) for i in chosen])
        new = _map_columns(np.concatenate(parts), self.columns, sweep.columns)
        changes = {"points": np.concatenate([sweep.points[~inside], new])}
        for name in ("laser_id", "return_index"):
            old = getattr(sweep, name)
            if old is None:
                continue
            stored = getattr(self, name)[sel]
            # An unknown per-point value cannot be invented: drop the optional array instead.
            changes[name] = (np.concatenate([old[~inside], stored])
                             if (stored != _UNKNOWN_INDEX).all() else None)
        return dataclasses.replace(sweep, **changes)

    def _paste_boxes(self, boxes: Boxes3D, chosen: np.ndarray) -> Boxes3D:
        n = chosen.size

        def grow(old: np.ndarray | None, new: np.ndarray) -> np.ndarray | None:
            return None if old is None else np.concatenate([old, new.astype(old.dtype)])

        return Boxes3D(
            boxes=np.concatenate([boxes.boxes, self.boxes[chosen]]),
            labels=np.concatenate([boxes.labels, self.labels[chosen]]),
            ids=None if boxes.ids is None else np.concatenate([boxes.ids,
                                                               _fresh_ids(boxes.ids, n)]),
            velocities=grow(boxes.velocities, self.velocities[chosen]),
            accelerations=grow(boxes.accelerations, self.accelerations[chosen]),
            num_points=grow(boxes.num_points, self.num_points[chosen]),
            difficulty=np.concatenate([boxes.difficulty, self.difficulty[chosen]]))


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

@dataclass
class _Objects:
    """The stored objects of one frame (same fields as the database, per-object counts)."""

    boxes: np.ndarray
    labels: np.ndarray
    difficulty: np.ndarray
    velocities: np.ndarray
    accelerations: np.ndarray
    counts: np.ndarray
    points: np.ndarray
    laser_id: np.ndarray
    return_index: np.ndarray


def _objects_of(frame: SensorFrame, columns: tuple[str, ...], min_points: int) -> _Objects:
    sweep, labelled = frame.lidar, frame.boxes
    detect = np.isin(labelled.labels, [c.value for c in DETECTION_CLASSES])
    points = _map_columns(sweep.points, sweep.columns, columns)
    keep, members = [], []
    for j in np.flatnonzero(detect):
        idx = np.flatnonzero(_inside_one(sweep.points, labelled.boxes[j]))
        if idx.size >= min_points:
            keep.append(j)
            members.append(idx)
    keep = np.asarray(keep, np.int64)
    boxes = labelled.boxes[keep]
    local = []
    for j, idx in zip(keep, members):
        pts = points[idx].copy()
        pts[:, :3] = (points[idx, :3].astype(np.float64)
                      - labelled.boxes[j, :3].astype(np.float64)).astype(np.float32)
        local.append(pts)
    idx_all = np.concatenate(members) if members else np.zeros(0, np.int64)

    def per_point(values: np.ndarray | None) -> np.ndarray:
        return (np.full(idx_all.size, _UNKNOWN_INDEX, np.int8) if values is None
                else values[idx_all])

    def per_box(values: np.ndarray | None) -> np.ndarray:
        return (np.full((keep.size, 2), np.nan, np.float32) if values is None
                else values[keep])

    return _Objects(boxes=boxes, labels=labelled.labels[keep],
                    difficulty=labelled.difficulty[keep],
                    velocities=per_box(labelled.velocities),
                    accelerations=per_box(labelled.accelerations),
                    counts=np.array([m.size for m in members], np.int64),
                    points=(np.concatenate(local) if local
                            else np.zeros((0, len(columns)), np.float32)),
                    laser_id=per_point(sweep.laser_id),
                    return_index=per_point(sweep.return_index))


def _inside_one(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """(N,) bool: points (N, 3+) inside one box (closed); a bounding-sphere prefilter keeps
    it linear in N."""
    xyz = points[:, :3].astype(np.float64)
    radius = 0.5 * float(np.linalg.norm(box[3:6])) + 1e-3
    near = np.flatnonzero(((xyz - box[:3]) ** 2).sum(axis=1) <= radius * radius)
    inside = np.zeros(points.shape[0], bool)
    if near.size:
        inside[near] = points_in_boxes(xyz[near], box[None])[:, 0]
    return inside


def _inside_any(points: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    inside = np.zeros(points.shape[0], bool)
    for box in boxes:
        inside |= _inside_one(points, box)
    return inside


def _non_overlapping(candidates: np.ndarray, placed: np.ndarray, limit: int) -> np.ndarray:
    """Greedy, in order: indices of at most ``limit`` candidates (K, 7) whose BEV boxes meet
    neither ``placed`` (L, 7) nor an earlier accepted candidate."""
    free = ~(bev_intersection(candidates, placed) > 0).any(axis=1)
    mutual = bev_intersection(candidates, candidates) > 0
    accepted: list[int] = []
    for k in np.flatnonzero(free):
        if len(accepted) == limit:
            break
        if not mutual[k, accepted].any():
            accepted.append(int(k))
    return np.asarray(accepted, np.int64)


def _map_columns(points: np.ndarray, source: tuple[str, ...], target: tuple[str, ...]
                 ) -> np.ndarray:
    """(N, len(target)) float32: ``points`` columns picked by name; absent ones read 0."""
    if tuple(source) == tuple(target):
        return points
    out = np.zeros((points.shape[0], len(target)), np.float32)
    for k, name in enumerate(target):
        if name in source:
            out[:, k] = points[:, source.index(name)]
    return out


def _fresh_ids(existing: np.ndarray, n: int) -> np.ndarray:
    """``n`` ids unused in ``existing`` (int64 above the largest, or ``"gt_sample_k"``)."""
    if existing.dtype.kind in "iu":
        top = int(existing.max()) if existing.size else -1
        if top < np.iinfo(np.int64).max - n:
            return np.arange(top + 1, top + 1 + n, dtype=np.int64)
        return np.setdiff1d(np.arange(existing.size + n), existing)[:n].astype(np.int64)
    taken = set(existing.tolist())
    names = (f"gt_sample_{k}" for k in range(existing.size + n))
    return np.array([name for name in names if name not in taken][:n])


def _cat(arrays: list[np.ndarray], empty_shape: tuple[int, ...], dtype) -> np.ndarray:
    if not arrays:
        return np.zeros(empty_shape, dtype)
    return np.concatenate(arrays).astype(dtype, copy=False)


# --------------------------------------------------------------------------------------------
# Training set-up
# --------------------------------------------------------------------------------------------

def database_path(data: DataConfig, config: GtSamplingConfig) -> Path | None:
    """``<cache_dir>/gt_database_<hash>.npz``, the hash covering the data config and
    ``min_points`` (what the database depends on); None without a cache directory."""
    if not data.cache_dir:
        return None
    key = json.dumps({"format": DATABASE_FORMAT, "data": to_dict(data),
                      "min_points": config.min_points}, sort_keys=True)
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return Path(data.cache_dir) / f"gt_database_{digest}.npz"
