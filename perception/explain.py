"""What each sensor contributed to each detection of a BEV fusion detector (docs/explain.md).

**Shares (exact Shapley values over modalities).** The players are the modalities present in
the frame and read by the model (at most 3). The value of a coalition ``S`` for detection
``d`` is the detector's heatmap score (after the sigmoid) at the cell and class ``d`` was
decoded from, when the model is given only the modalities in ``S``; the others are marked
absent exactly as a missing sensor is (the fuser's learned "absent" input, or its gate
mask). The Shapley value of modality ``m``::

    phi_m = sum over S in N \\ {m} of |S|! (n - |S| - 1)! / n! * (v(S + m) - v(S))

is exact with ``2^n`` passes of the fuser, BEV backbone and head (the encoders run once, as
absent modalities never reach them). By construction the shares of a detection sum to
``v(all) - v(none)`` (efficiency), a modality the network ignores gets 0, and a modality the
frame lacks is no player and gets 0.

**Heat maps.** Per modality, where it drives the fused BEV features: for the gated fuser its
per-cell softmax weight; for the concat fuser the change of the fused features when that
modality alone is removed, ``|F(all) - F(all - m)|`` (L2 over channels), scaled to [0, 1]
per frame.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from .errors import ConfigError
from .models.batch import MODALITY_ORDER, collate_frames
from .models.detector import FusionDetector, to_detections
from .models.fuser import GatedFuser
from .models.heads import TaskOutput, decode
from .types import Detections, Modality, ObjectClass, SensorFrame

RANGE_EDGES_M = (0.0, 20.0, 40.0, math.inf)
"""Range bins of :func:`summarize` (distance of the box centre from the vehicle origin)."""
MIN_GAIN = 0.05
"""Detections whose score gains less than this from all modalities over none are left out of
:func:`summarize`: their shares are a ratio of near-zero numbers."""


@dataclass(frozen=True, eq=False)
class FrameExplanation:
    """Explanation of one frame's detections.

    Attributes:
        detections: the model's detections with every player present.
        players: the modalities that took part (present and read by the model).
        shapley: (K, 3) float32 Shapley values, columns :data:`MODALITY_ORDER` (0 for
            modalities that are no player).
        score_all: (K,) v(all players): equals ``detections.scores``.
        score_none: (K,) v(no modality): what the network outputs at that cell with every
            sensor marked absent.
        heatmaps: per player, (H, W) float32 in [0, 1] on the fused BEV grid (x along rows).
        heatmap_kind: ``gate`` (gated fuser weights) or ``occlusion`` (concat fuser).
        by_subset: the detections the model makes from each subset of the players alone
            (the same passes the shares come from): the modality ablation of this frame.
    """

    detections: Detections
    players: frozenset[Modality]
    shapley: np.ndarray
    score_all: np.ndarray
    score_none: np.ndarray
    heatmaps: dict[Modality, np.ndarray]
    heatmap_kind: str
    by_subset: dict[frozenset[Modality], Detections]

    def shares(self) -> np.ndarray:
        """(K, 3) fraction of each detection's score gain (all over none) per modality; rows
        with no gain are 0."""
        gain = (self.score_all - self.score_none)[:, None]
        safe = np.where(np.abs(gain) > 1e-9, gain, 1.0)
        return np.where(np.abs(gain) > 1e-9, self.shapley / safe, 0.0).astype(np.float32)


def coalitions(players: Iterable[int]) -> list[tuple[int, ...]]:
    """Every subset of ``players`` (column indices), the empty one first."""
    players = sorted(players)
    return [c for r in range(len(players) + 1) for c in itertools.combinations(players, r)]


def shapley_values(values: dict[tuple[int, ...], np.ndarray], players: Iterable[int],
                   width: int = len(MODALITY_ORDER)) -> np.ndarray:
    """Exact Shapley values from the value of every coalition.

    Args:
        values: coalition (sorted tuple of player columns) -> (K,) values.
        players: the player columns.
        width: columns of the result (non-players stay 0).

    Returns:
        (K, width) float64.
    """
    players = sorted(players)
    n = len(players)
    first = next(iter(values.values()))
    phi = np.zeros((len(first), width))
    for m in players:
        others = [p for p in players if p != m]
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                with_m = tuple(sorted(subset + (m,)))
                phi[:, m] += weight * (values[with_m] - values[tuple(subset)])
    return phi


@torch.no_grad()
def explain_frame(detector: FusionDetector, frame: SensorFrame,
                  drop: frozenset[Modality] = frozenset()) -> FrameExplanation:
    """Shares and heat maps of one frame (see the module doc); ``drop`` removes modalities
    first, as a missing sensor would be."""
    if not isinstance(detector, FusionDetector) or detector.painter is not None:
        raise ConfigError("explanations need a BEV fusion detector (fusion: intermediate); "
                          f"got {type(detector).__name__}"
                          + (" with point painting" if getattr(detector, "painter", None)
                             else ""))
    was_training = detector.training
    detector.eval()
    try:
        return _explain(detector, frame, drop)
    finally:
        detector.train(was_training)


def _explain(detector: FusionDetector, frame: SensorFrame, drop: frozenset[Modality]
             ) -> FrameExplanation:
    device = next(detector.parameters()).device
    batch = collate_frames([frame], detector.spec)
    batch = (batch.without(drop) if drop else batch).to(device)
    used = detector.used_mask(batch)[0]
    players = [i for i in range(len(MODALITY_ORDER)) if bool(used[i])]
    if not players:  # nothing to explain: the detector makes nothing from no sensor
        empty = Detections.empty(batch.stamps_ns[0], frozenset())
        z = np.zeros(0, np.float32)
        return FrameExplanation(empty, frozenset(), np.zeros((0, len(MODALITY_ORDER)),
                                                             np.float32), z, z, {}, "none",
                                {frozenset(): empty})
    subsets = coalitions(players)
    masks = torch.zeros((len(subsets), len(MODALITY_ORDER)), dtype=torch.bool, device=device)
    for row, subset in enumerate(subsets):
        masks[row, list(subset)] = True
    features, _ = detector.encode(batch)
    expanded = {m: f.expand(len(subsets), *f.shape[1:]) for m, f in features.items()}
    fused = detector.fuse(expanded, masks)
    tasks = detector.decode_fused(fused, masks)
    full = len(subsets) - 1  # the last coalition holds every player
    config = detector.config
    decoded = decode(tasks, config.head, config.grid, detector.head_stride)
    stamp = batch.stamps_ns[0]
    by_subset = {}
    for subset, boxes in zip(subsets, decoded):
        mods = frozenset(MODALITY_ORDER[i] for i in subset)
        by_subset[mods] = (to_detections(stamp, boxes, mods) if subset
                           else Detections.empty(stamp, frozenset()))
    detections = by_subset[frozenset(MODALITY_ORDER[i] for i in players)]
    values = _coalition_values(tasks, decoded[full].sources, subsets)
    phi = shapley_values(values, players)
    heatmaps, kind = _heatmaps(detector, expanded, masks, fused, subsets, players)
    return FrameExplanation(
        detections=detections,
        players=frozenset(MODALITY_ORDER[i] for i in players),
        shapley=phi.astype(np.float32),
        score_all=values[tuple(players)].astype(np.float32),
        score_none=values[()].astype(np.float32),
        heatmaps=heatmaps, heatmap_kind=kind, by_subset=by_subset)


def _coalition_values(tasks: list[TaskOutput], sources: torch.Tensor,
                      subsets: list[tuple[int, ...]]) -> dict[tuple[int, ...], np.ndarray]:
    """Score of each detection's heatmap peak under each coalition (rows of ``tasks``)."""
    values = {s: np.zeros(len(sources)) for s in subsets}
    for k, (task, channel, cell) in enumerate(sources.tolist()):
        heat = tasks[task].heatmap  # (coalitions, classes, h, w)
        w = heat.shape[-1]
        scores = heat[:, channel, cell // w, cell % w].float().sigmoid().cpu().numpy()
        for row, subset in enumerate(subsets):
            values[subset][k] = scores[row]
    return values


def _heatmaps(detector: FusionDetector, features: dict[Modality, torch.Tensor],
              masks: torch.Tensor, fused: torch.Tensor, subsets: list[tuple[int, ...]],
              players: list[int]) -> tuple[dict[Modality, np.ndarray], str]:
    full = len(subsets) - 1
    out = {}
    if isinstance(detector.fuser, GatedFuser):
        cols = [MODALITY_ORDER.index(m) for m in detector.bev_modalities]
        weights = detector.fuser.modality_weights(
            {m: f[full:full + 1] for m, f in features.items()}, masks[full:full + 1, cols])[0]
        for j, m in enumerate(detector.bev_modalities):
            if MODALITY_ORDER.index(m) in players:
                out[m] = weights[j].float().cpu().numpy()
        return out, "gate"
    for p in players:
        without = tuple(q for q in players if q != p)
        change = (fused[full] - fused[subsets.index(without)]).float().norm(dim=0)
        top = float(change.max())
        out[MODALITY_ORDER[p]] = (change / top if top > 0 else change).cpu().numpy()
    return out, "occlusion"


# ----------------------------------------------------------------------------------------
# Summary over a sequence
# ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ContributionRow:
    """Mean share of the score gain per modality for one class and range bin.

    Attributes:
        object_class, range_label: the group, e.g. VEHICLE, ``20-40 m``.
        detections: how many detections the means are over.
        mean_share: modality -> mean fraction of the gain (the 3 sum to 1).
        mean_score: mean detection score.
    """

    object_class: ObjectClass
    range_label: str
    detections: int
    mean_share: dict[Modality, float]
    mean_score: float


def summarize(explanations: Iterable[FrameExplanation], min_score: float = 0.3,
              range_edges_m: tuple[float, ...] = RANGE_EDGES_M,
              min_gain: float = MIN_GAIN) -> list[ContributionRow]:
    """Per class and range bin, the mean share of each modality over the detections scoring at
    least ``min_score`` whose score gains at least ``min_gain`` from the sensors."""
    groups: dict[tuple[int, int], list[tuple[np.ndarray, float]]] = {}
    for e in explanations:
        if not len(e.detections):
            continue
        shares = e.shares()
        gain = e.score_all - e.score_none
        ranges = np.hypot(e.detections.boxes[:, 0], e.detections.boxes[:, 1])
        for k in range(len(e.detections)):
            if e.detections.scores[k] < min_score or gain[k] < min_gain:
                continue
            b = int(np.searchsorted(range_edges_m, ranges[k], side="right")) - 1
            key = (int(e.detections.labels[k]), min(b, len(range_edges_m) - 2))
            groups.setdefault(key, []).append((shares[k], float(e.detections.scores[k])))
    rows = []
    for (label, b), items in sorted(groups.items()):
        shares = np.stack([s for s, _ in items])
        lo, hi = range_edges_m[b], range_edges_m[b + 1]
        name = f"{lo:.0f}+ m" if math.isinf(hi) else f"{lo:.0f}-{hi:.0f} m"
        rows.append(ContributionRow(
            ObjectClass(label), name, len(items),
            {m: float(shares[:, i].mean()) for i, m in enumerate(MODALITY_ORDER)},
            float(np.mean([score for _, score in items]))))
    return rows


def format_summary(rows: list[ContributionRow]) -> str:
    """A plain-text table of :func:`summarize`."""
    head = f"{'class':<12}{'range':<10}{'dets':>6}{'score':>7}" + "".join(
        f"{m.value:>9}" for m in MODALITY_ORDER)
    lines = [head]
    for r in rows:
        lines.append(f"{r.object_class.name:<12}{r.range_label:<10}{r.detections:>6}"
                     f"{r.mean_score:>7.2f}"
                     + "".join(f"{r.mean_share[m]:>9.2f}" for m in MODALITY_ORDER))
    if not rows:
        lines.append("(no detection above the score threshold)")
    return "\n".join(lines)
