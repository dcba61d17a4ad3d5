"""Waymo 3D detection metrics: AP and APH per class, LEVEL_1 / LEVEL_2, and by range.

The numbers equal those of the official Waymo evaluator with its default configuration
(``compute_detection_metrics_main.cc`` / ``WODDetectionEvaluator``); docs/metrics.md lists
each rule with the official source it was confirmed against. In short:

* Ground truth whose point count is known and zero is dropped before matching.
* Per frame, per breakdown shard and per score cutoff (0.00, 0.01, ..., 0.99, 1.0), the
  predictions with ``score >= cutoff`` are matched to the ground truth by a maximum-weight
  assignment on quantised IoU (``round(iou * 1e6)``) over pairs with IoU at or above the class
  threshold (vehicle 0.7, pedestrian and cyclist 0.5). Scores play no part in the assignment.
* A matched prediction is a true positive at every level; an unmatched ground truth is a miss
  at level L when its difficulty is <= L. Unmatched predictions are false positives unless they
  overlap a no-label zone.
* The range breakdown shards predictions and ground truth by their own centre distance from the
  origin: [0, 30), [30, 50), [50, +inf) m, and matches within each shard.
* AP integrates the interpolated precision/recall curve with the trapezoid rule, filling recall
  gaps wider than 0.05 (see :func:`mean_average_precision`).

The assignment problem is solved per connected component of the "can match" graph: the many
isolated predictions and ground truths, and the one-to-one pairs, are counted vectorised over
all frames and cutoffs at once; only components with several candidates go through
:func:`scipy.optimize.linear_sum_assignment`, once per distinct set of predictions above a
cutoff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from ..errors import ValidationError
from ..types import DETECTION_CLASSES, Boxes3D, Detections, ObjectClass
from .frames import FrameKey, index_frames
from .iou import heading_accuracy_f32, iou_3d_per_frame

__all__ = [
    "DetectionConfig", "BreakdownMetrics", "InputCounts", "DetectionResult",
    "evaluate_detection", "evaluate_waymo", "mean_average_precision", "precision_recall",
    "range_bins",
    "LEVELS", "RANGE_NAMES",
]

LEVELS: tuple[int, ...] = (1, 2)
RANGE_NAMES: tuple[str, ...] = ("[0, 30)", "[30, 50)", "[50, +inf)")
_QUANTISATION = 1_000_000  # Waymo kMaxIoU: matching weights are round(iou * 1e6)


def _default_cutoffs() -> tuple[float, ...]:
    # The official default: i * 0.01 for i in 0..99, then 1.0 (stored as float32).
    return tuple(float(np.float32(i * 0.01)) for i in range(100)) + (1.0,)


@dataclass(frozen=True)
class DetectionConfig:
    """Evaluation settings; the defaults are the official Waymo detection config.

    Attributes:
        iou_vehicle, iou_pedestrian, iou_cyclist: 3D IoU a match needs (>=).
        score_cutoffs: ascending score thresholds; a prediction takes part at cutoff c when
            ``score >= c``.
        recall_delta: the largest recall gap the AP integration leaves unfilled.
        range_edges_m: the range breakdown's shard edges (centre distance, metres).
        drop_zero_point_gt: drop ground truth with a known lidar point count of zero.
    """

    iou_vehicle: float = 0.7
    iou_pedestrian: float = 0.5
    iou_cyclist: float = 0.5
    score_cutoffs: tuple[float, ...] = field(default_factory=_default_cutoffs)
    recall_delta: float = 0.05
    range_edges_m: tuple[float, float] = (30.0, 50.0)
    drop_zero_point_gt: bool = True

    def __post_init__(self) -> None:
        cut = np.asarray(self.score_cutoffs, np.float64)
        if cut.ndim != 1 or cut.size == 0 or (np.diff(cut) <= 0).any():
            raise ValidationError("DetectionConfig.score_cutoffs: expected a non-empty, "
                                  "strictly increasing sequence")
        if not 0.0 < self.recall_delta <= 1.0:
            raise ValidationError("DetectionConfig.recall_delta: expected a value in (0, 1]")

    def iou_threshold(self, cls: ObjectClass) -> float:
        thresholds = {ObjectClass.VEHICLE: self.iou_vehicle,
                      ObjectClass.PEDESTRIAN: self.iou_pedestrian,
                      ObjectClass.CYCLIST: self.iou_cyclist}
        return thresholds[ObjectClass(cls)]


@dataclass(frozen=True, eq=False)
class BreakdownMetrics:
    """Metrics of one (class, level[, range shard]) breakdown.

    Attributes:
        name: e.g. ``"VEHICLE_LEVEL_1"`` or ``"VEHICLE_[0, 30)_LEVEL_2"``.
        object_class, level: the class and LEVEL (1 or 2).
        range_shard: index into :data:`RANGE_NAMES`, or None for the whole class.
        ap, aph: average precision and its heading-weighted form.
        score_cutoffs: (K,) float32.
        precisions, recalls, precisions_ha: (K,) float32 per cutoff, as the official tool
            reports them (precision 1 where recall is 0).
        tps, fps, fns: (K,) int64 counts per cutoff.
    """

    name: str
    object_class: ObjectClass
    level: int
    range_shard: int | None
    ap: float
    aph: float
    score_cutoffs: np.ndarray
    precisions: np.ndarray
    recalls: np.ndarray
    precisions_ha: np.ndarray
    tps: np.ndarray
    fps: np.ndarray
    fns: np.ndarray


@dataclass(frozen=True)
class InputCounts:
    """What went in, and what was skipped (each skip is documented in docs/metrics.md)."""

    num_frames: int
    num_gt: int
    num_pred: int
    gt_dropped_zero_points: int
    gt_other_class: int
    pred_other_class: int
    pred_frames_without_gt: int


@dataclass(frozen=True, eq=False)
class DetectionResult:
    """All breakdowns plus the input counts."""

    by_class: tuple[BreakdownMetrics, ...]
    by_range: tuple[BreakdownMetrics, ...]
    counts: InputCounts

    def get(self, cls: ObjectClass, level: int, range_shard: int | None = None
            ) -> BreakdownMetrics:
        pool = self.by_class if range_shard is None else self.by_range
        for m in pool:
            if m.object_class == cls and m.level == level and m.range_shard == range_shard:
                return m
        raise KeyError(f"no breakdown for {ObjectClass(cls).name} level {level} "
                       f"range {range_shard}")

    def to_json(self) -> dict:
        """The ``metrics.json`` layout: ``{"VEHICLE_LEVEL_1": {"AP": .., "APH": ..}, ...}``
        plus ``"range"`` (same layout per range shard) and ``"counts"``."""
        out: dict = {m.name: {"AP": m.ap, "APH": m.aph} for m in self.by_class}
        out["range"] = {m.name: {"AP": m.ap, "APH": m.aph} for m in self.by_range}
        out["counts"] = dict(vars(self.counts))
        return out


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------

def evaluate_waymo(gt: Mapping[FrameKey, Boxes3D] | str | Path,
                   pred: Mapping[FrameKey, Detections] | str | Path,
                   config: DetectionConfig | None = None) -> dict:
    """Waymo metrics as the ``metrics.json`` dict (see :meth:`DetectionResult.to_json`).

    ``gt`` and ``pred`` are frame mappings or paths of serialized Waymo ``Objects`` files.
    """
    overlap_nlz = None
    if isinstance(gt, (str, Path)):
        from .waymo_objects import read_ground_truth
        gt = read_ground_truth(gt).frames
    if isinstance(pred, (str, Path)):
        from .waymo_objects import read_predictions
        pred_set = read_predictions(pred)
        pred, overlap_nlz = pred_set.frames, pred_set.overlap_nlz
    return evaluate_detection(gt, pred, pred_overlap_nlz=overlap_nlz, config=config).to_json()


def evaluate_detection(gt: Mapping[FrameKey, Boxes3D] | Iterable[tuple[FrameKey, Boxes3D]],
                       pred: Mapping[FrameKey, Detections]
                       | Iterable[tuple[FrameKey, Detections]],
                       *, pred_overlap_nlz: Mapping[FrameKey, np.ndarray] | None = None,
                       config: DetectionConfig | None = None) -> DetectionResult:
    """Waymo AP/APH for vehicles, pedestrians and cyclists at LEVEL_1/LEVEL_2, and by range.

    Args:
        gt: ground truth per frame (vehicle frame). ``num_points`` and ``difficulty`` decide
            the level (:meth:`Boxes3D.levels`); a known point count of 0 drops the box.
        pred: detections per frame. Frames absent from ``gt`` are evaluated as frames with no
            ground truth (all their predictions are false positives, as in the official tool)
            and counted in ``counts.pred_frames_without_gt``.
        pred_overlap_nlz: per frame (N,) bool, True for predictions overlapping a no-label
            zone (never false positives). Default all False.
        config: evaluation settings, default the official ones.

    Raises:
        ValidationError: duplicate frame keys, non-FrameKey keys, wrong item types, or an
            overlap mask whose length differs from its frame's predictions.
    """
    config = config or DetectionConfig()
    gt_frames = index_frames(gt, "ground truth")
    pred_frames = index_frames(pred, "predictions")
    _check_types(gt_frames, Boxes3D, "ground truth")
    _check_types(pred_frames, Detections, "predictions")
    nlz = dict(pred_overlap_nlz or {})
    keys = sorted(set(gt_frames) | set(pred_frames))

    counts = _count_inputs(gt_frames, pred_frames, keys, config)
    by_class: list[BreakdownMetrics] = []
    by_range: list[BreakdownMetrics] = []
    for cls in DETECTION_CLASSES:
        arrays = _collect_class(cls, keys, gt_frames, pred_frames, nlz, config)
        by_class += _class_breakdowns(cls, arrays, config, by_range=False)
        by_range += _class_breakdowns(cls, arrays, config, by_range=True)
    return DetectionResult(tuple(by_class), tuple(by_range), counts)


def _check_types(frames: dict, cls: type, what: str) -> None:
    for key, item in frames.items():
        if not isinstance(item, cls):
            raise ValidationError(f"{what}: frame {key} holds {type(item).__name__}, "
                                  f"expected {cls.__name__}")


def _count_inputs(gt_frames: dict[FrameKey, Boxes3D], pred_frames: dict[FrameKey, Detections],
                  keys: list[FrameKey], config: DetectionConfig) -> InputCounts:
    classes = np.array([int(c) for c in DETECTION_CLASSES])
    num_gt = sum(len(b) for b in gt_frames.values())
    num_pred = sum(len(d) for d in pred_frames.values())
    zero = sum(int((_zero_point_mask(b, config)).sum()) for b in gt_frames.values())
    gt_other = sum(int((~np.isin(b.labels, classes) & ~_zero_point_mask(b, config)).sum())
                   for b in gt_frames.values())
    pred_other = sum(int((~np.isin(d.labels, classes)).sum()) for d in pred_frames.values())
    orphan = sum(1 for k in pred_frames if k not in gt_frames)
    return InputCounts(len(keys), num_gt, num_pred, zero, gt_other, pred_other, orphan)


def _zero_point_mask(boxes: Boxes3D, config: DetectionConfig) -> np.ndarray:
    if boxes.num_points is None or not config.drop_zero_point_gt:
        return np.zeros(len(boxes), bool)
    return boxes.num_points <= 0


# --------------------------------------------------------------------------------------------
# Gathering one class over all frames
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _ClassArrays:
    """One class over all frames, with global indices.

    pred_*: (P,) per prediction; gt_*: (G,) per ground truth; edge_*: (E,) the pairs whose
    IoU reaches the class threshold (edges never cross frames).
    """

    pred_ncut: np.ndarray      # int64: the prediction takes part at cutoffs [0, ncut)
    pred_nlz: np.ndarray       # bool
    pred_range: np.ndarray     # int64 range shard
    gt_level: np.ndarray       # int8, 1 or 2
    gt_range: np.ndarray       # int64 range shard
    edge_pred: np.ndarray      # int64
    edge_gt: np.ndarray        # int64
    edge_weight: np.ndarray    # int64, round(iou * 1e6)
    edge_ha: np.ndarray        # float64 heading accuracy


def range_bins(boxes: np.ndarray, edges_m: tuple[float, float] = (30.0, 50.0)) -> np.ndarray:
    """(N,) int64 range shard of (N, 7) boxes by centre distance from the origin (3D)."""
    centres = boxes[:, :3].astype(np.float64)
    dist = np.sqrt((centres ** 2).sum(axis=1))
    return np.searchsorted(np.asarray(edges_m, np.float64), dist, side="right").astype(np.int64)


def _collect_class(cls: ObjectClass, keys: list[FrameKey],
                   gt_frames: dict[FrameKey, Boxes3D], pred_frames: dict[FrameKey, Detections],
                   nlz: dict[FrameKey, np.ndarray], config: DetectionConfig) -> _ClassArrays:
    cutoffs = np.asarray(config.score_cutoffs, np.float32)
    threshold = np.float32(config.iou_threshold(cls))
    preds = [_frame_preds(cls, key, pred_frames.get(key), nlz) for key in keys]
    gts = [_frame_gt(cls, gt_frames.get(key), config) for key in keys]
    ious = iou_3d_per_frame([p[0] for p in preds], [g[0] for g in gts])
    pred_offset = np.cumsum([0] + [len(p[0]) for p in preds])
    gt_offset = np.cumsum([0] + [len(g[0]) for g in gts])
    edge_parts = []
    for f, iou in enumerate(ious):
        pi, gi = np.nonzero(iou >= threshold)
        if pi.size:
            weight = np.floor(iou[pi, gi] * np.float32(_QUANTISATION)
                              + np.float32(0.5)).astype(np.int64)
            ha = heading_accuracy_f32(preds[f][0][pi, 6], gts[f][0][gi, 6]).astype(np.float64)
            edge_parts.append((pi + pred_offset[f], gi + gt_offset[f], weight, ha))
    pred_boxes = _cat([p[0] for p in preds], (0, 7), np.float32)
    scores = _cat([p[1] for p in preds], (0,), np.float32)
    gt_boxes = _cat([g[0] for g in gts], (0, 7), np.float32)
    return _ClassArrays(
        pred_ncut=np.searchsorted(cutoffs, scores, side="right").astype(np.int64),
        pred_nlz=_cat([p[2] for p in preds], (0,), bool),
        pred_range=range_bins(pred_boxes, config.range_edges_m),
        gt_level=_cat([g[1] for g in gts], (0,), np.int8),
        gt_range=range_bins(gt_boxes, config.range_edges_m),
        edge_pred=_cat([e[0] for e in edge_parts], (0,), np.int64),
        edge_gt=_cat([e[1] for e in edge_parts], (0,), np.int64),
        edge_weight=_cat([e[2] for e in edge_parts], (0,), np.int64),
        edge_ha=_cat([e[3] for e in edge_parts], (0,), np.float64),
    )


def _cat(parts: list[np.ndarray], empty_shape: tuple[int, ...], dtype: type) -> np.ndarray:
    if not parts:
        return np.zeros(empty_shape, dtype)
    return np.concatenate(parts).astype(dtype, copy=False)


def _frame_preds(cls: ObjectClass, key: FrameKey, det: Detections | None,
                 nlz: dict[FrameKey, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    if det is None or len(det) == 0:
        return np.zeros((0, 7), np.float32), np.zeros(0, np.float32), np.zeros(0, bool)
    overlap = nlz.get(key)
    if overlap is None:
        overlap = np.zeros(len(det), bool)
    overlap = np.asarray(overlap, bool)
    if overlap.shape != (len(det),):
        raise ValidationError(f"pred_overlap_nlz[{key}]: expected shape ({len(det)},), got "
                              f"{overlap.shape}")
    keep = det.labels == int(cls)
    return det.boxes[keep], det.scores[keep], overlap[keep]


def _frame_gt(cls: ObjectClass, boxes: Boxes3D | None, config: DetectionConfig
              ) -> tuple[np.ndarray, np.ndarray]:
    if boxes is None or len(boxes) == 0:
        return np.zeros((0, 7), np.float32), np.zeros(0, np.int8)
    keep = (boxes.labels == int(cls)) & ~_zero_point_mask(boxes, config)
    return boxes.boxes[keep], boxes.levels()[keep]


# --------------------------------------------------------------------------------------------
# Counting TP / FP / FN per shard and cutoff
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True, eq=False)
class _Counts:
    """(S, K) per shard and cutoff; fns is (S, 2, K) for LEVEL_1 and LEVEL_2."""

    tps: np.ndarray
    fps: np.ndarray
    fns: np.ndarray
    sum_ha: np.ndarray


class _RangeAdder:
    """Adds values to cutoff ranges [lo, hi) of a shard with difference arrays."""

    def __init__(self, n_shards: int, n_cut: int):
        self.n_cut = n_cut
        self.diff = np.zeros((n_shards, n_cut + 1))

    def add(self, shard: np.ndarray, lo: np.ndarray, hi: np.ndarray,
            value: np.ndarray | float = 1.0) -> None:
        shard, lo, hi = np.broadcast_arrays(shard, lo, hi)
        value = np.broadcast_to(np.asarray(value, np.float64), shard.shape)
        keep = hi > lo
        np.add.at(self.diff, (shard[keep], lo[keep]), value[keep])
        np.add.at(self.diff, (shard[keep], hi[keep]), -value[keep])

    def result(self) -> np.ndarray:
        return np.cumsum(self.diff, axis=1)[:, :self.n_cut]


def _count(arrays: _ClassArrays, pred_shard: np.ndarray, gt_shard: np.ndarray,
           n_shards: int, n_cut: int) -> _Counts:
    """TP/FP/FN/sum of heading accuracy for every shard and cutoff.

    Edges between a prediction and a ground truth of different shards must already be removed.
    """
    n_pred, n_gt = len(pred_shard), len(gt_shard)
    ep, eg = arrays.edge_pred, arrays.edge_gt
    tp, fp, ha = (_RangeAdder(n_shards, n_cut) for _ in range(3))
    fn = [_RangeAdder(n_shards, n_cut) for _ in LEVELS]
    ncut = arrays.pred_ncut

    graph = coo_matrix((np.ones(ep.size), (ep, n_pred + eg)),
                       shape=(n_pred + n_gt, n_pred + n_gt))
    _, label = connected_components(graph, directed=False)
    pred_label, gt_label = label[:n_pred], label[n_pred:]
    preds_per = np.bincount(pred_label, minlength=label.max(initial=-1) + 1)
    gts_per = np.bincount(gt_label, minlength=label.max(initial=-1) + 1)

    # Predictions without any candidate: false positives wherever they take part.
    lonely_pred = gts_per[pred_label] == 0
    fp_mask = lonely_pred & ~arrays.pred_nlz
    fp.add(pred_shard[fp_mask], np.zeros(int(fp_mask.sum()), np.int64), ncut[fp_mask])
    # Ground truth without any candidate: missed at every cutoff.
    lonely_gt = preds_per[gt_label] == 0
    _add_fn(fn, gt_shard[lonely_gt], arrays.gt_level[lonely_gt], 0, n_cut)

    # One prediction, one ground truth: a true positive while the prediction takes part.
    pair_edge = (preds_per[pred_label[ep]] == 1) & (gts_per[gt_label[eg]] == 1)
    p, g = ep[pair_edge], eg[pair_edge]
    tp.add(pred_shard[p], 0, ncut[p])
    ha.add(pred_shard[p], 0, ncut[p], arrays.edge_ha[pair_edge])
    _add_fn(fn, gt_shard[g], arrays.gt_level[g], ncut[p], n_cut)

    # The rest: solve the assignment for each distinct set of predictions above a cutoff.
    big = np.flatnonzero((preds_per > 0) & (gts_per > 0) & ~((preds_per == 1) & (gts_per == 1)))
    if big.size:
        _count_components(big, arrays, pred_label, gt_label, pred_shard, gt_shard,
                          tp, fp, fn, ha, n_cut)
    fns = np.stack([f.result() for f in fn], axis=1)
    return _Counts(tp.result(), fp.result(), fns, ha.result())


def _add_fn(fn: list[_RangeAdder], shard: np.ndarray, level: np.ndarray,
            lo: np.ndarray | int, hi: int) -> None:
    # A miss counts at level L when the ground truth's level is <= L.
    for li, lv in enumerate(LEVELS):
        mask = level <= lv
        lo_m = lo[mask] if isinstance(lo, np.ndarray) else lo
        fn[li].add(shard[mask], lo_m, hi)


def _count_components(components: np.ndarray, arrays: _ClassArrays, pred_label: np.ndarray,
                      gt_label: np.ndarray, pred_shard: np.ndarray, gt_shard: np.ndarray,
                      tp: _RangeAdder, fp: _RangeAdder, fn: list[_RangeAdder],
                      ha: _RangeAdder, n_cut: int) -> None:
    pred_order = np.argsort(pred_label, kind="stable")
    gt_order = np.argsort(gt_label, kind="stable")
    edge_label = pred_label[arrays.edge_pred]
    edge_order = np.argsort(edge_label, kind="stable")
    pred_split = np.searchsorted(pred_label[pred_order], components)
    pred_end = np.searchsorted(pred_label[pred_order], components, side="right")
    gt_split = np.searchsorted(gt_label[gt_order], components)
    gt_end = np.searchsorted(gt_label[gt_order], components, side="right")
    e_split = np.searchsorted(edge_label[edge_order], components)
    e_end = np.searchsorted(edge_label[edge_order], components, side="right")
    for c in range(components.size):
        preds = pred_order[pred_split[c]:pred_end[c]]
        gts = gt_order[gt_split[c]:gt_end[c]]
        edges = edge_order[e_split[c]:e_end[c]]
        _solve_component(preds, gts, edges, arrays, pred_shard, gt_shard, tp, fp, fn, ha,
                         n_cut)


def _solve_component(preds: np.ndarray, gts: np.ndarray, edges: np.ndarray,
                     arrays: _ClassArrays, pred_shard: np.ndarray, gt_shard: np.ndarray,
                     tp: _RangeAdder, fp: _RangeAdder, fn: list[_RangeAdder],
                     ha: _RangeAdder, n_cut: int) -> None:
    pred_pos = {int(p): i for i, p in enumerate(preds)}
    gt_pos = {int(g): j for j, g in enumerate(gts)}
    weight = np.zeros((preds.size, gts.size), np.int64)
    heading = np.zeros((preds.size, gts.size))
    rows = np.array([pred_pos[int(p)] for p in arrays.edge_pred[edges]])
    cols = np.array([gt_pos[int(g)] for g in arrays.edge_gt[edges]])
    weight[rows, cols] = arrays.edge_weight[edges]
    heading[rows, cols] = arrays.edge_ha[edges]
    ncut = arrays.pred_ncut[preds]
    lo = 0
    for hi in np.unique(ncut):
        # Cutoffs [lo, hi) all see the same predictions: those with ncut >= hi.
        if hi <= lo:
            continue
        active = np.flatnonzero(ncut >= hi)
        r, c = linear_sum_assignment(weight[active], maximize=True)
        ok = weight[active[r], c] > 0
        r, c = active[r[ok]], c[ok]
        k = r.size
        shard = pred_shard[preds[r]]
        tp.add(shard, np.full(k, lo), np.full(k, hi))
        ha.add(shard, np.full(k, lo), np.full(k, hi), heading[r, c])
        unmatched = np.setdiff1d(active, r)
        unmatched = unmatched[~arrays.pred_nlz[preds[unmatched]]]
        fp.add(pred_shard[preds[unmatched]], np.full(unmatched.size, lo),
               np.full(unmatched.size, hi))
        missed = np.setdiff1d(np.arange(gts.size), c)
        _add_fn(fn, gt_shard[gts[missed]], arrays.gt_level[gts[missed]],
                np.full(missed.size, lo), hi)
        lo = int(hi)
    if lo < n_cut:
        _add_fn(fn, gt_shard[gts], arrays.gt_level[gts], np.full(gts.size, lo), n_cut)


# --------------------------------------------------------------------------------------------
# Counts -> precision/recall -> AP
# --------------------------------------------------------------------------------------------

def _class_breakdowns(cls: ObjectClass, arrays: _ClassArrays, config: DetectionConfig,
                      by_range: bool) -> list[BreakdownMetrics]:
    n_cut = len(config.score_cutoffs)
    if by_range:
        same = arrays.pred_range[arrays.edge_pred] == arrays.gt_range[arrays.edge_gt]
        arrays = _keep_edges(arrays, same)
        counts = _count(arrays, arrays.pred_range, arrays.gt_range, len(RANGE_NAMES), n_cut)
        shards: list[int | None] = list(range(len(RANGE_NAMES)))
    else:
        zeros_p = np.zeros(len(arrays.pred_ncut), np.int64)
        zeros_g = np.zeros(len(arrays.gt_level), np.int64)
        counts = _count(arrays, zeros_p, zeros_g, 1, n_cut)
        shards = [None]
    out = []
    for si, shard in enumerate(shards):
        for li, level in enumerate(LEVELS):
            out.append(_metrics(cls, level, shard, counts.tps[si], counts.fps[si],
                                counts.fns[si, li], counts.sum_ha[si], config))
    return out


def _keep_edges(arrays: _ClassArrays, keep: np.ndarray) -> _ClassArrays:
    return _ClassArrays(arrays.pred_ncut, arrays.pred_nlz, arrays.pred_range, arrays.gt_level,
                        arrays.gt_range, arrays.edge_pred[keep], arrays.edge_gt[keep],
                        arrays.edge_weight[keep], arrays.edge_ha[keep])


def _metrics(cls: ObjectClass, level: int, shard: int | None, tps: np.ndarray,
             fps: np.ndarray, fns: np.ndarray, sum_ha: np.ndarray,
             config: DetectionConfig) -> BreakdownMetrics:
    tps_i = np.rint(tps).astype(np.int64)
    fps_i = np.rint(fps).astype(np.int64)
    fns_i = np.rint(fns).astype(np.int64)
    precisions, recalls, precisions_ha = precision_recall(tps_i, fps_i, fns_i, sum_ha)
    name = ObjectClass(cls).name
    if shard is not None:
        name += "_" + RANGE_NAMES[shard]
    name += f"_LEVEL_{level}"
    return BreakdownMetrics(
        name=name, object_class=ObjectClass(cls), level=level, range_shard=shard,
        ap=mean_average_precision(precisions, recalls, config.recall_delta),
        aph=mean_average_precision(precisions_ha, recalls, config.recall_delta),
        score_cutoffs=np.asarray(config.score_cutoffs, np.float32), precisions=precisions,
        recalls=recalls, precisions_ha=precisions_ha, tps=tps_i, fps=fps_i, fns=fns_i)


def precision_recall(tps: np.ndarray, fps: np.ndarray, fns: np.ndarray, sum_ha: np.ndarray
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-cutoff (precision, recall, heading-weighted precision), float32.

    As the official ToDetectionMetrics: precision is 0 with no detections, recall 0 with no
    ground truth, and precision is forced to 1 wherever recall is 0.
    """
    f32 = np.float32
    det = (tps + fps).astype(f32)
    pos = (tps + fns).astype(f32)
    safe_det = np.where(det > 0, det, f32(1))
    precision = np.where(det > 0, tps.astype(f32) / safe_det, f32(0)).astype(f32)
    precision_ha = np.where(det > 0, sum_ha.astype(f32) / safe_det, f32(0)).astype(f32)
    recall = np.where(pos > 0, tps.astype(f32) / np.where(pos > 0, pos, f32(1)),
                      f32(0)).astype(f32)
    precision = np.where(recall == 0, f32(1), precision).astype(f32)
    precision_ha = np.where(recall == 0, f32(1), precision_ha).astype(f32)
    return precision, recall, precision_ha


def mean_average_precision(precisions: np.ndarray, recalls: np.ndarray,
                           max_recall_delta: float = 0.05) -> float:
    """Area under the interpolated precision/recall curve, as Waymo's
    ``ComputeMeanAveragePrecision`` (float32 arithmetic reproduced).

    1. Keep the best precision per distinct recall, plus the point (recall 0, precision 1).
    2. Walk from high to low recall with the running maximum precision (the usual monotone
       envelope). Where two recalls are more than ``max_recall_delta`` apart, insert points
       every ``max_recall_delta`` below the higher one, at the envelope's precision.
    3. The recall-0 point takes the precision of its neighbour (its 1.0 is not real data).
    4. Trapezoid rule over the points.
    """
    f32 = np.float32
    best: dict[np.float32, np.float32] = {f32(0.0): f32(1.0)}
    for p, r in zip(np.asarray(precisions, f32), np.asarray(recalls, f32)):
        best[r] = max(best.get(r, f32(0.0)), p)
    delta = f32(max_recall_delta)
    slack = f32(1e-6)
    ordered = sorted(best)
    curve: list[tuple[np.float32, np.float32]] = []  # (precision, recall), recall descending
    last_recall = ordered[0]
    max_precision = f32(0.0)
    for r in reversed(ordered):
        while f32(last_recall - r) > f32(delta + slack):
            last_recall = f32(last_recall - delta)
            curve.append((max_precision, last_recall))
        max_precision = max(best[r], max_precision)
        curve.append((max_precision, r))
        last_recall = r
    if len(curve) >= 2:
        curve[-1] = (curve[-2][0], curve[-1][1])
    area = f32(0.0)
    for (p0, r0), (p1, r1) in zip(curve[:-1], curve[1:]):
        area = f32(float(area) + 0.5 * float(f32(r0 - r1)) * float(f32(p0 + p1)))
    return float(area)

