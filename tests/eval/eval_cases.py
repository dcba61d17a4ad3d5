"""Builders of small evaluation cases shared by the eval tests.

``pseudo_random(n, salt)`` is a deterministic sequence from ``frac(sin(i) * 43758.5453)``; it
does not depend on NumPy's random streams, so frozen official numbers stay valid.
"""

from __future__ import annotations

import numpy as np

from perception.eval.frames import FrameKey
from perception.types import Boxes3D, Detections, ObjectClass

VEH, PED, CYC = int(ObjectClass.VEHICLE), int(ObjectClass.PEDESTRIAN), int(ObjectClass.CYCLIST)
SIZES = {VEH: (4.5, 2.0, 1.7), PED: (0.8, 0.8, 1.8), CYC: (1.8, 0.7, 1.7)}


def key(i: int, seq: str = "seq") -> FrameKey:
    return FrameKey(seq, 1_000_000_000 + 100_000_000 * i)


def box(x: float, y: float = 0.0, cls: int = VEH, heading: float = 0.0, z: float = 0.0,
        size: tuple[float, float, float] | None = None) -> list[float]:
    l, w, h = size or SIZES[cls]
    return [x, y, z, l, w, h, heading]


def gt(boxes: list[list[float]], labels: list[int], num_points: list[int] | None = None,
       difficulty: list[int] | None = None, ids: list[str] | None = None) -> Boxes3D:
    return Boxes3D(np.array(boxes, np.float32).reshape(-1, 7), np.array(labels, np.int32),
                   ids=None if ids is None else np.array(ids, dtype=str),
                   num_points=None if num_points is None else np.array(num_points),
                   difficulty=None if difficulty is None else np.array(difficulty))


def det(k: FrameKey, boxes: list[list[float]], labels: list[int], scores: list[float]
        ) -> Detections:
    return Detections(k.stamp_ns, np.array(boxes, np.float32).reshape(-1, 7),
                      np.array(scores, np.float32), np.array(labels, np.int32))


def pseudo_random(n: int, salt: float = 0.0) -> np.ndarray:
    """(n,) float64 in [0, 1), deterministic across platforms and library versions."""
    i = np.arange(n, dtype=np.float64) + 1.0 + salt * 1000.0
    return np.modf(np.abs(np.sin(i * 12.9898 + salt) * 43758.5453))[0]


def synthetic_set(n_frames: int, n_gt: int, salt: float, *, flip_every: int = 0,
                  fp_per_frame: int = 0, empty_every: int = 0, all_level2_every: int = 0,
                  miss_every: int = 7) -> tuple[dict[FrameKey, Boxes3D],
                                                dict[FrameKey, Detections]]:
    """Noisy copies of pseudo-random ground truth, with heading flips, false positives, empty
    frames and all-LEVEL_2 frames; classes cycle vehicle/pedestrian/cyclist."""
    gts, preds = {}, {}
    classes = np.array([VEH, PED, CYC])
    for f in range(n_frames):
        k = key(f, seq=f"seq{int(salt)}")
        r = pseudo_random(12 * n_gt + 4 * fp_per_frame + 1, salt + 0.37 * f)
        labels = classes[np.arange(n_gt) % 3]
        dims = np.array([SIZES[c] for c in labels])
        centre = np.stack([r[:n_gt] * 120 - 60, r[n_gt:2 * n_gt] * 120 - 60,
                           r[2 * n_gt:3 * n_gt] * 2 - 1], axis=1)
        heading = r[3 * n_gt:4 * n_gt] * 2 * np.pi - np.pi
        boxes = np.concatenate([centre, dims, heading[:, None]], axis=1)
        points = (r[4 * n_gt:5 * n_gt] * 30).astype(int)        # 0..29: some 0, some <= 5
        if all_level2_every and f % all_level2_every == 0:
            points = np.minimum(points, 5) + 1
        if empty_every and f % empty_every == 1:
            gts[k] = Boxes3D.empty()
        else:
            gts[k] = Boxes3D(boxes.astype(np.float32), labels, num_points=points,
                             ids=np.array([f"o{i}" for i in range(n_gt)]))
        # Predictions: jittered copies of most boxes.
        jitter = (r[5 * n_gt:8 * n_gt].reshape(3, n_gt).T - 0.5) * 0.3 * dims.min(1)[:, None]
        pred = boxes.copy()
        pred[:, :3] += jitter
        pred[:, 3:6] *= 1 + (r[8 * n_gt:9 * n_gt, None] - 0.5) * 0.08
        pred[:, 6] += (r[9 * n_gt:10 * n_gt] - 0.5) * 0.2
        if flip_every:
            flip = np.arange(n_gt) % flip_every == 0
            pred[flip, 6] += np.pi
        keep = np.arange(n_gt) % miss_every != 3 if miss_every else np.ones(n_gt, bool)
        scores = r[10 * n_gt:11 * n_gt]
        pred, plabels, scores = pred[keep], labels[keep], scores[keep]
        if fp_per_frame:
            q = r[12 * n_gt:12 * n_gt + 4 * fp_per_frame].reshape(4, fp_per_frame)
            fl = classes[np.arange(fp_per_frame) % 3]
            fd = np.array([SIZES[c] for c in fl])
            fp = np.concatenate([np.stack([q[0] * 140 - 70, q[1] * 140 - 70, q[2] - 0.5], 1),
                                 fd, (q[3] * 6 - 3)[:, None]], axis=1)
            pred = np.concatenate([pred, fp])
            plabels = np.concatenate([plabels, fl])
            scores = np.concatenate([scores, q[3] * 0.8])
        pred[:, 6] = (pred[:, 6] + np.pi) % (2 * np.pi) - np.pi
        preds[k] = Detections(k.stamp_ns, pred.astype(np.float32), scores.astype(np.float32),
                              plabels)
    return gts, preds


def synthetic_tracks(n_frames: int, n_obj: int, salt: float, *, switch_at: int = -1,
                     drop_every: int = 0, ghosts: int = 0, appear_late: bool = False,
                     seq: str = "trk") -> tuple[dict[FrameKey, Boxes3D],
                                                dict[FrameKey, Detections],
                                                dict[FrameKey, np.ndarray]]:
    """Objects moving on straight lines, tracked by jittered boxes.

    ``switch_at``: from that frame on, tracks 0 and 1 exchange ids. ``drop_every``: every
    k-th (frame, object) observation is missing. ``ghosts``: tracks that follow no object.
    ``appear_late``: object i enters at frame i % 3 (objects never leave).
    """
    r = pseudo_random(8 * n_obj + 4 * ghosts, salt)
    classes = np.array([VEH, PED, CYC])
    labels = classes[np.arange(n_obj) % 3]
    dims = np.array([SIZES[c] for c in labels])
    start = np.stack([r[:n_obj] * 80 - 40, r[n_obj:2 * n_obj] * 80 - 40], 1)
    velocity = (np.stack([r[2 * n_obj:3 * n_obj], r[3 * n_obj:4 * n_obj]], 1) - 0.5) * 2.0
    heading = np.arctan2(velocity[:, 1], velocity[:, 0])
    gts, preds, ids = {}, {}, {}
    for f in range(n_frames):
        k = key(f, seq)
        xy = start + velocity * 0.1 * f
        boxes = np.concatenate([xy, np.zeros((n_obj, 1)), dims, heading[:, None]], 1)
        present = np.ones(n_obj, bool)
        if appear_late:
            present = np.arange(n_obj) % 3 <= f
        gts[k] = Boxes3D(boxes[present].astype(np.float32), labels[present],
                         ids=np.array([f"obj{i}" for i in np.flatnonzero(present)]),
                         num_points=np.full(int(present.sum()), 50))
        q = pseudo_random(3 * n_obj, salt + 0.71 * f)
        pred = boxes.copy()
        pred[:, :2] += (q[:2 * n_obj].reshape(n_obj, 2) - 0.5) * 0.1 * dims[:, 1:2]
        track_id = np.arange(n_obj, dtype=np.int64) + 100
        if 0 <= switch_at <= f and n_obj >= 2:
            track_id[[0, 1]] = track_id[[1, 0]]
        keep = present.copy()
        if drop_every:
            keep &= (np.arange(n_obj) + f * n_obj) % drop_every != drop_every - 1
        pred, plabels, track_id = pred[keep], labels[keep], track_id[keep]
        scores = 0.5 + 0.5 * q[2 * n_obj:][keep]
        if ghosts:
            g = r[8 * n_obj:].reshape(4, ghosts)
            gl = classes[np.arange(ghosts) % 3]
            gd = np.array([SIZES[c] for c in gl])
            gb = np.concatenate([np.stack([g[0] * 60 + 100 + f * 0.1, g[1] * 60, g[2] * 0], 1),
                                 gd, g[3][:, None]], 1)
            pred = np.concatenate([pred, gb])
            plabels = np.concatenate([plabels, gl])
            track_id = np.concatenate([track_id, 900 + np.arange(ghosts)])
            scores = np.concatenate([scores, 0.3 + 0.6 * g[3]])
        preds[k] = Detections(k.stamp_ns, pred.astype(np.float32), scores.astype(np.float32),
                              plabels)
        ids[k] = track_id
    return gts, preds, ids
