"""Waymo-style 3D tracking metrics: MOTA, MOTP, miss, mismatch and false-positive ratios per
class and level, plus IDF1 and the CLEAR-MOT counts.

The procedure is the official one (``metrics/mot.cc``, ``metrics/tracking_metrics.cc``), which
follows Bernardin & Stiefelhagen's mapping procedure, run per sequence in stamp order:

1. A ground-truth -> track correspondence from earlier frames is kept when both are present
   and their 3D IoU still reaches the class threshold.
2. The remaining ground truth and tracks are matched by maximum-weight assignment on
   quantised IoU over pairs at or above the threshold (the detection matcher).
3. A ground truth matched to another track than its previous one is a mismatch; so is a track
   that moves to a new ground truth while its previous one has left the frame.
4. Unmatched tracks are false positives (unless they overlap a no-label zone); unmatched
   ground truth is a miss at level L when its level is <= L. LEVEL_2 ground truth that is not
   matched is excluded from the LEVEL_1 object count.

MOTA = 1 - (misses + false positives + mismatches) / objects, MOTP = mean (1 - IoU) over
matches (lower is better, as Waymo reports it). Like the official tool, this is computed for
every score cutoff and the cutoff with the best MOTA is reported (ties: the lowest cutoff);
when no cutoff reaches a MOTA above 0, every ratio is reported as 0.

IDF1 (Ristani et al.) is computed at that cutoff over ground truth of level <= L: the identity
assignment maximises the number of frames where a ground-truth id and a track id overlap at
the class threshold. Ids are scoped per sequence.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ..errors import ValidationError
from ..types import DETECTION_CLASSES, Boxes3D, Detections, ObjectClass, Tracks
from .detection import LEVELS, DetectionConfig
from .frames import FrameKey, index_frames
from .iou import iou_3d_f32

__all__ = ["TrackingCounts", "TrackingMetrics", "TrackingResult", "FrameMatches",
           "evaluate_tracking", "tracks_to_detections"]

_QUANTISATION = 1_000_000


@dataclass(frozen=True)
class TrackingCounts:
    """CLEAR-MOT counts over all frames at one score cutoff and level."""

    num_objects_gt: int
    num_matches: int
    num_misses: int
    num_fps: int
    num_mismatches: int
    matching_cost: float  # sum over matches of (1 - IoU)


@dataclass(frozen=True)
class TrackingMetrics:
    """Metrics of one class and level at the score cutoff with the best MOTA."""

    name: str
    object_class: ObjectClass
    level: int
    mota: float
    motp: float
    miss: float
    mismatch: float
    fp: float
    score_cutoff: float
    counts: TrackingCounts
    idf1: float
    idtp: int
    idfp: int
    idfn: int

    def to_json(self) -> dict:
        out = {"MOTA": self.mota, "MOTP": self.motp, "miss": self.miss,
               "mismatch": self.mismatch, "fp": self.fp, "score_cutoff": self.score_cutoff,
               "IDF1": self.idf1, "IDTP": self.idtp, "IDFP": self.idfp, "IDFN": self.idfn}
        out.update(vars(self.counts))
        return out


@dataclass(frozen=True)
class TrackingResult:
    metrics: tuple[TrackingMetrics, ...]
    pred_duplicate_ids_ignored: int

    def get(self, cls: ObjectClass, level: int) -> TrackingMetrics:
        for m in self.metrics:
            if m.object_class == cls and m.level == level:
                return m
        raise KeyError(f"no tracking metrics for {ObjectClass(cls).name} level {level}")

    def to_json(self) -> dict:
        out: dict = {m.name: m.to_json() for m in self.metrics}
        out["pred_duplicate_ids_ignored"] = self.pred_duplicate_ids_ignored
        return out


@dataclass(frozen=True, eq=False)
class FrameMatches:
    """Matching inputs of one frame and class, shared by every score cutoff.

    Attributes:
        gt_ids: (G,) object ids (str); gt_level: (G,) int8 level (0 counts as 1).
        pred_ids: (P,) int64 track ids; pred_ncut: (P,) the track takes part at cutoffs
            [0, ncut); pred_nlz: (P,) bool.
        iou: (P, G) float32; can_match: (P, G) bool (iou >= class threshold).
    """

    sequence_id: str
    gt_ids: np.ndarray
    gt_level: np.ndarray
    pred_ids: np.ndarray
    pred_ncut: np.ndarray
    pred_nlz: np.ndarray
    iou: np.ndarray
    can_match: np.ndarray


def tracks_to_detections(tracks: Mapping[FrameKey, Tracks]
                         ) -> tuple[dict[FrameKey, Detections], dict[FrameKey, np.ndarray]]:
    """Split tracker output into detections (boxes, scores, labels) and (N,) int64 ids."""
    dets, ids = {}, {}
    for key, t in tracks.items():
        dets[key] = Detections(t.stamp_ns, t.boxes, np.clip(t.scores, 0, 1), t.labels)
        ids[key] = t.ids
    return dets, ids


def evaluate_tracking(gt: Mapping[FrameKey, Boxes3D], pred: Mapping[FrameKey, Detections],
                      pred_ids: Mapping[FrameKey, np.ndarray], *,
                      pred_overlap_nlz: Mapping[FrameKey, np.ndarray] | None = None,
                      gt_tracking_level: Mapping[FrameKey, np.ndarray] | None = None,
                      config: DetectionConfig | None = None) -> TrackingResult:
    """Waymo tracking metrics for vehicles, pedestrians and cyclists at LEVEL_1 and LEVEL_2.

    Args:
        gt: ground truth per frame; ``ids`` must be set and unique within a frame. A known
            point count of 0 drops the box (as in detection).
        pred: tracked boxes per frame, with ``pred_ids[key]`` (N,) int64 track ids. A repeated
            id within a frame keeps its first box; the others are ignored, as the official
            tool does, and counted in ``pred_duplicate_ids_ignored``.
        gt_tracking_level: per frame (G,) tracking difficulty (Waymo
            ``tracking_difficulty_level``: 0 unknown, 1, 2). An unmatched ground truth is a
            miss at level L when this value is <= L, so 0 counts at both levels. Default: the
            detection level, :meth:`Boxes3D.levels`. (The official TensorFlow tracking op
            never sets it, so there every ground truth counts at LEVEL_1.)
        config: IoU thresholds and score cutoffs (default: the official ones).

    Frames are grouped into sequences by ``FrameKey.sequence_id`` and ordered by stamp.
    """
    config = config or DetectionConfig()
    gt_frames = index_frames(gt, "ground truth")
    pred_frames = index_frames(pred, "predictions")
    keys = sorted(set(gt_frames) | set(pred_frames))
    for key, boxes in gt_frames.items():
        if boxes.ids is None:
            raise ValidationError(f"ground truth frame {key}: tracking needs object ids")
        if len(np.unique(boxes.ids)) != len(boxes.ids):
            raise ValidationError(f"ground truth frame {key}: duplicate object ids")
    for key, det in pred_frames.items():
        if key not in pred_ids or np.asarray(pred_ids[key]).shape != (len(det),):
            raise ValidationError(f"pred_ids[{key}]: expected shape ({len(det)},)")
    nlz = dict(pred_overlap_nlz or {})
    metrics: list[TrackingMetrics] = []
    duplicates = 0
    for cls in DETECTION_CLASSES:
        frames, dup = _class_frames(cls, keys, gt_frames, pred_frames, pred_ids, nlz,
                                    gt_tracking_level, config)
        duplicates += dup
        metrics += _class_metrics(cls, frames, config)
    return TrackingResult(tuple(metrics), duplicates)


def _class_frames(cls: ObjectClass, keys: list[FrameKey], gt_frames: dict, pred_frames: dict,
                  pred_ids: Mapping, nlz: dict, tracking_level: Mapping | None,
                  config: DetectionConfig) -> tuple[list[FrameMatches], int]:
    cutoffs = np.asarray(config.score_cutoffs, np.float32)
    threshold = np.float32(config.iou_threshold(cls))
    frames, duplicates = [], 0
    for key in keys:
        boxes = gt_frames.get(key)
        if boxes is None:
            gb, gid, glv = np.zeros((0, 7), np.float32), np.zeros(0, str), np.zeros(0, np.int8)
        else:
            keep = boxes.labels == int(cls)
            if boxes.num_points is not None and config.drop_zero_point_gt:
                keep &= boxes.num_points > 0
            level = boxes.levels()
            if tracking_level is not None:
                level = np.asarray(tracking_level[key], np.int8)
                if level.shape != (len(boxes),):
                    raise ValidationError(f"gt_tracking_level[{key}]: expected shape "
                                          f"({len(boxes)},), got {level.shape}")
            gb, gid, glv = boxes.boxes[keep], boxes.ids[keep].astype(str), level[keep]
        det = pred_frames.get(key)
        if det is None:
            pb, pid = np.zeros((0, 7), np.float32), np.zeros(0, np.int64)
            ps, pn = np.zeros(0, np.float32), np.zeros(0, bool)
        else:
            keep = det.labels == int(cls)
            overlap = np.asarray(nlz.get(key, np.zeros(len(det), bool)), bool)
            pb, ps, pn = det.boxes[keep], det.scores[keep], overlap[keep]
            pid = np.asarray(pred_ids[key], np.int64)[keep]
        iou = iou_3d_f32(pb, gb) if len(pb) and len(gb) else np.zeros((len(pb), len(gb)),
                                                                         np.float32)
        _, first = np.unique(pid, return_index=True)
        duplicates += len(pid) - len(first)
        frames.append(FrameMatches(key.sequence_id, gid, glv, pid,
                                   np.searchsorted(cutoffs, ps, side="right"), pn, iou,
                                   iou >= threshold))
    return frames, duplicates


def _class_metrics(cls: ObjectClass, frames: list[FrameMatches], config: DetectionConfig
                   ) -> list[TrackingMetrics]:
    n_cut = len(config.score_cutoffs)
    # Cutoffs between two distinct prediction score levels see the same tracks and give the
    # same result; evaluate only the lowest cutoff of each such run.
    ncuts = np.unique(np.concatenate([f.pred_ncut for f in frames] + [np.zeros(1, np.int64)]))
    starts = sorted({0} | {int(v) for v in ncuts if v < n_cut})
    per_level: dict[int, list[tuple[int, TrackingCounts]]] = {lv: [] for lv in LEVELS}
    for start in starts:
        for lv, counts in _run_mot(frames, start).items():
            per_level[lv].append((start, counts))
    out = []
    for lv in LEVELS:
        best = _best_mota(per_level[lv])
        cut_index, counts, ratios = best
        idtp, idfp, idfn = _identity_counts(frames, cut_index, lv)
        denominator = 2 * idtp + idfp + idfn
        out.append(TrackingMetrics(
            name=f"{ObjectClass(cls).name}_LEVEL_{lv}", object_class=ObjectClass(cls), level=lv,
            mota=ratios[0], motp=ratios[1], miss=ratios[2], mismatch=ratios[3], fp=ratios[4],
            score_cutoff=float(np.float32(config.score_cutoffs[cut_index])), counts=counts,
            idf1=2 * idtp / denominator if denominator else 0.0, idtp=idtp, idfp=idfp,
            idfn=idfn))
    return out


def _best_mota(candidates: list[tuple[int, TrackingCounts]]
               ) -> tuple[int, TrackingCounts, tuple[float, float, float, float, float]]:
    """The official ToTrackingMetrics: best MOTA above 0, lowest cutoff on ties."""
    f32 = np.float32
    best_mota = f32(0.0)
    chosen = (candidates[0][0], candidates[0][1], (0.0, 0.0, 0.0, 0.0, 0.0))
    for cut_index, c in candidates:
        if c.num_objects_gt == 0:
            continue
        n = f32(c.num_objects_gt)
        miss, fp, mismatch = f32(c.num_misses) / n, f32(c.num_fps) / n, \
            f32(c.num_mismatches) / n
        mota = f32(1.0 - (float(miss) + float(fp) + float(mismatch)))
        if best_mota < mota:
            best_mota = mota
            motp = f32(c.matching_cost / c.num_matches) if c.num_matches else f32(0.0)
            chosen = (cut_index, c, (float(mota), float(motp), float(miss), float(mismatch),
                                     float(fp)))
    return chosen


def _run_mot(frames: list[FrameMatches], cut_index: int) -> dict[int, TrackingCounts]:
    """CLEAR-MOT counts for both levels at one cutoff (the matching does not depend on it)."""
    totals = {lv: np.zeros(6) for lv in LEVELS}
    state: dict[str, _MotState] = {}
    for f in frames:
        mot = state.setdefault(f.sequence_id, _MotState())
        step = mot.step(f, cut_index)
        for lv in LEVELS:
            missed_levels = f.gt_level[step.missed]
            fns = int((missed_levels <= lv).sum())
            above = int((missed_levels > lv).sum())
            totals[lv] += (len(f.gt_ids) - above, step.num_matches, fns, step.num_fps,
                           step.num_mismatches, step.cost)
    return {lv: TrackingCounts(int(t[0]), int(t[1]), int(t[2]), int(t[3]), int(t[4]),
                               float(t[5])) for lv, t in totals.items()}


@dataclass(frozen=True)
class _Step:
    num_matches: int
    num_fps: int
    num_mismatches: int
    cost: float
    missed: np.ndarray  # indices of unmatched ground truth in the frame


class _MotState:
    """The mapping M_t of one sequence (ground-truth id <-> track id)."""

    def __init__(self) -> None:
        self.gt_to_pd: dict[str, int] = {}
        self.pd_to_gt: dict[int, str] = {}

    def step(self, f: FrameMatches, cut_index: int) -> _Step:
        active = _active_tracks(f, cut_index)
        pd_index = {int(f.pred_ids[p]): int(p) for p in active}
        gt_index = {str(g): j for j, g in enumerate(f.gt_ids)}
        new: dict[str, int] = {}
        cost = 0.0
        # Step 1: keep the still-valid correspondences of the previous frames.
        for g, p in self.gt_to_pd.items():
            pi, gj = pd_index.get(p), gt_index.get(g)
            if pi is not None and gj is not None and f.can_match[pi, gj]:
                new[g] = p
                cost += 1.0 - float(f.iou[pi, gj])
        residual_gt = {g: j for g, j in gt_index.items() if g not in new}
        used_pd = set(new.values())
        rest_p = np.array([pd_index[p] for p in pd_index if p not in used_pd], np.int64)
        rest_g = np.array(list(residual_gt.values()), np.int64)
        # Step 2: assignment over the rest.
        matched_p, matched_g = _assign(f, rest_p, rest_g)
        for pi, gj in zip(matched_p, matched_g):
            new[str(f.gt_ids[gj])] = int(f.pred_ids[pi])
            cost += 1.0 - float(f.iou[pi, gj])
        unmatched_p = np.setdiff1d(rest_p, matched_p)
        num_fps = int((~f.pred_nlz[unmatched_p]).sum()) if unmatched_p.size else 0
        missed = np.setdiff1d(rest_g, matched_g)
        mismatches = self._mismatches(new, residual_gt)
        self._update(new)
        return _Step(len(new), num_fps, mismatches, cost, missed)

    def _mismatches(self, new: dict[str, int], residual_gt: dict[str, int]) -> int:
        count = 0
        for g, p in new.items():
            old = self.gt_to_pd.get(g)
            if old is not None and old != p:
                count += 1
            # The track's previous ground truth left the frame: it is evicted, a mismatch.
            prev_g = self.pd_to_gt.get(p)
            if prev_g is not None and prev_g not in residual_gt and prev_g not in new:
                count += 1
        return count

    def _update(self, new: dict[str, int]) -> None:
        evict = []
        for g, p in new.items():
            self.gt_to_pd[g] = p
            prev_g = self.pd_to_gt.get(p)
            if prev_g is not None and prev_g not in new:
                evict.append(prev_g)
        for g in evict:
            self.gt_to_pd.pop(g, None)
        self.pd_to_gt = {p: g for g, p in self.gt_to_pd.items()}


def _active_tracks(f: FrameMatches, cut_index: int) -> np.ndarray:
    """Indices of the tracks taking part at a cutoff; a repeated track id keeps its first box
    and the others are ignored, as the official tool does."""
    active = np.flatnonzero(f.pred_ncut > cut_index)
    _, first = np.unique(f.pred_ids[active], return_index=True)
    return active[np.sort(first)]


def _assign(f: FrameMatches, rows: np.ndarray, cols: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Maximum-weight assignment on quantised IoU over can-match pairs; (pred, gt) indices."""
    if rows.size == 0 or cols.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    sub_ok = f.can_match[np.ix_(rows, cols)]
    weight = np.where(sub_ok, np.floor(f.iou[np.ix_(rows, cols)] * np.float32(_QUANTISATION)
                                       + np.float32(0.5)), 0).astype(np.int64)
    r, c = linear_sum_assignment(weight, maximize=True)
    ok = sub_ok[r, c]
    return rows[r[ok]], cols[c[ok]]


def _identity_counts(frames: list[FrameMatches], cut_index: int, level: int
                     ) -> tuple[int, int, int]:
    """(IDTP, IDFP, IDFN) over ground truth of level <= ``level`` at one cutoff."""
    pair_frames: dict[tuple[str, str, int], int] = {}
    num_gt = num_pred = 0
    for f in frames:
        active = _active_tracks(f, cut_index)
        gts = np.flatnonzero(f.gt_level <= level)
        num_gt += gts.size
        num_pred += active.size
        if active.size == 0 or gts.size == 0:
            continue
        pi, gj = np.nonzero(f.can_match[np.ix_(active, gts)])
        for p, g in zip(active[pi], gts[gj]):
            pair = (f.sequence_id, str(f.gt_ids[g]), int(f.pred_ids[p]))
            pair_frames[pair] = pair_frames.get(pair, 0) + 1
    if not pair_frames:
        return 0, num_pred, num_gt
    gt_keys = sorted({(s, g) for s, g, _ in pair_frames})
    pd_keys = sorted({(s, p) for s, _, p in pair_frames})
    gi = {k: i for i, k in enumerate(gt_keys)}
    pj = {k: j for j, k in enumerate(pd_keys)}
    overlap = np.zeros((len(gt_keys), len(pd_keys)), np.int64)
    for (s, g, p), n in pair_frames.items():
        overlap[gi[(s, g)], pj[(s, p)]] = n
    r, c = linear_sum_assignment(overlap, maximize=True)
    idtp = int(overlap[r, c].sum())
    return idtp, num_pred - idtp, num_gt - idtp
