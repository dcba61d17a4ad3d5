"""Noisy detections made from ground truth, to evaluate trackers without a detector.

:func:`noisy_detections` turns a sequence of ground-truth :class:`~perception.types.Boxes3D`
(vehicle frame, with stable ``ids``) into one :class:`~perception.types.Detections` per frame:

* position noise (Gaussian, ``position_std_m`` in x and y, ``z_std_m`` in z);
* size noise (multiplicative, ``size_std_frac``) and heading noise (``heading_std_rad``), plus
  front/back confusion (heading turned by pi with ``heading_flip_prob``);
* velocity noise (``velocity_std_mps``) when the ground truth has velocities;
* independent misses (``miss_prob``) and bursts of misses: each visible object starts a burst
  with ``burst_prob`` per frame and then stays undetected for ``burst_min_frames`` to
  ``burst_max_frames`` frames;
* false positives: a Poisson number per frame (mean ``false_positives_per_frame``), uniform in
  a square of half-side ``fp_range_m`` around the vehicle, with class-typical sizes.

Scores: true detections draw from ``tp_score``, false ones from ``fp_score`` (uniform ranges),
so a score threshold separates them only in part, as with a real detector.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ValidationError
from ..types import Boxes3D, Detections, ObjectClass, SensorFrame, wrap_heading

_FP_SIZES = {  # typical (l, w, h) per class, metres
    int(ObjectClass.VEHICLE): (4.5, 1.9, 1.6),
    int(ObjectClass.PEDESTRIAN): (0.8, 0.8, 1.7),
    int(ObjectClass.CYCLIST): (1.8, 0.7, 1.7),
}


@dataclass(frozen=True)
class DetectionNoise:
    """Parameters of the detection noise model (see the module docstring)."""

    name: str
    position_std_m: float
    z_std_m: float
    size_std_frac: float
    heading_std_rad: float
    heading_flip_prob: float
    velocity_std_mps: float
    miss_prob: float
    burst_prob: float
    burst_min_frames: int
    burst_max_frames: int
    false_positives_per_frame: float
    fp_range_m: float = 50.0
    tp_score: tuple[float, float] = (0.5, 1.0)
    fp_score: tuple[float, float] = (0.1, 0.6)


NOISE_LEVELS: tuple[DetectionNoise, ...] = (
    DetectionNoise("low", position_std_m=0.1, z_std_m=0.05, size_std_frac=0.03,
                   heading_std_rad=0.05, heading_flip_prob=0.02, velocity_std_mps=0.3,
                   miss_prob=0.05, burst_prob=0.005, burst_min_frames=2, burst_max_frames=4,
                   false_positives_per_frame=2.0),
    DetectionNoise("medium", position_std_m=0.25, z_std_m=0.1, size_std_frac=0.06,
                   heading_std_rad=0.1, heading_flip_prob=0.05, velocity_std_mps=0.6,
                   miss_prob=0.1, burst_prob=0.01, burst_min_frames=2, burst_max_frames=5,
                   false_positives_per_frame=5.0, tp_score=(0.4, 1.0), fp_score=(0.1, 0.65)),
    DetectionNoise("high", position_std_m=0.4, z_std_m=0.15, size_std_frac=0.1,
                   heading_std_rad=0.2, heading_flip_prob=0.1, velocity_std_mps=1.0,
                   miss_prob=0.2, burst_prob=0.02, burst_min_frames=3, burst_max_frames=6,
                   false_positives_per_frame=10.0, tp_score=(0.3, 1.0), fp_score=(0.1, 0.7)),
)


def noisy_detections(frames: Sequence[Boxes3D], stamps_ns: Sequence[int],
                     noise: DetectionNoise, rng: np.random.Generator) -> list[Detections]:
    """One :class:`Detections` per ground-truth frame (vehicle frame, same stamps).

    Args:
        frames: ground truth per frame; ``ids`` must be set (bursts follow objects).
        stamps_ns: int64 ns per frame.
        noise: the noise parameters.
        rng: random generator (the result is deterministic for a given seed).
    """
    if len(frames) != len(stamps_ns):
        raise ValidationError(f"noisy_detections: {len(frames)} frames, {len(stamps_ns)} stamps")
    model = NoisyGroundTruthDetector(noise, rng)
    return [model.detect(gt, stamp_ns) for gt, stamp_ns in zip(frames, stamps_ns)]


class NoisyGroundTruthDetector:
    """Stands in for a detector in the pipeline: ``detector(frame)`` gives noisy detections of
    the frame's ground truth (the noise model above; bursts of misses carry across frames).

    Args:
        noise: the noise parameters.
        rng: random generator, or an int seed.
        ground_truth: boxes by stamp, for frames that do not carry their own (frames rebuilt
            by a sensor sync from messages have no labels).
    """

    def __init__(self, noise: DetectionNoise, rng: np.random.Generator | int = 0,
                 ground_truth: Mapping[int, Boxes3D] | None = None):
        self.noise = noise
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.ground_truth = ground_truth if ground_truth is not None else {}
        self._burst_left: dict[object, int] = {}

    def __call__(self, frame: SensorFrame) -> Detections:
        gt = frame.boxes if frame.boxes is not None else self.ground_truth.get(
            int(frame.stamp_ns), Boxes3D.empty())
        return self.detect(gt, frame.stamp_ns)

    def detect(self, gt: Boxes3D, stamp_ns: int) -> Detections:
        if gt.ids is None and len(gt):
            raise ValidationError("noisy_detections: ground-truth Boxes3D.ids must be set")
        detected = _detected_mask(gt, self.noise, self.rng, self._burst_left)
        true_part = _perturb(gt, detected, self.noise, self.rng)
        false_part = _false_positives(self.noise, self.rng,
                                      with_velocity=gt.velocities is not None)
        return _concat(stamp_ns, true_part, false_part)


def _detected_mask(gt: Boxes3D, noise: DetectionNoise, rng: np.random.Generator,
                   burst_left: dict[object, int]) -> np.ndarray:
    n = len(gt)
    detected = rng.random(n) >= noise.miss_prob
    starts = rng.random(n) < noise.burst_prob
    lengths = rng.integers(noise.burst_min_frames, noise.burst_max_frames + 1, size=n)
    ids = [] if gt.ids is None else gt.ids.tolist()
    for i, obj in enumerate(ids):
        left = burst_left.get(obj, 0)
        if left == 0 and starts[i]:
            left = int(lengths[i])
        if left > 0:
            detected[i] = False
            burst_left[obj] = left - 1
    return detected


def _perturb(gt: Boxes3D, detected: np.ndarray, noise: DetectionNoise,
             rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    boxes = gt.boxes[detected].astype(np.float64)
    n = boxes.shape[0]
    boxes[:, :2] += rng.normal(0.0, noise.position_std_m, size=(n, 2))
    boxes[:, 2] += rng.normal(0.0, noise.z_std_m, size=n)
    boxes[:, 3:6] *= np.clip(1.0 + rng.normal(0.0, noise.size_std_frac, size=(n, 3)), 0.5, 1.5)
    flip = rng.random(n) < noise.heading_flip_prob
    boxes[:, 6] += rng.normal(0.0, noise.heading_std_rad, size=n) + np.where(flip, np.pi, 0.0)
    boxes[:, 6] = wrap_heading(boxes[:, 6])
    scores = rng.uniform(*noise.tp_score, size=n)
    velocities = None
    if gt.velocities is not None:
        velocities = gt.velocities[detected] + rng.normal(0.0, noise.velocity_std_mps, (n, 2))
    return boxes, scores, gt.labels[detected], velocities


def _false_positives(noise: DetectionNoise, rng: np.random.Generator,
                     with_velocity: bool) -> tuple[np.ndarray, ...]:
    n = int(rng.poisson(noise.false_positives_per_frame))
    labels = rng.choice(np.array(list(_FP_SIZES), dtype=np.int32), size=n)
    sizes = np.array([_FP_SIZES[int(c)] for c in labels]).reshape(n, 3)
    boxes = np.zeros((n, 7))
    boxes[:, :2] = rng.uniform(-noise.fp_range_m, noise.fp_range_m, size=(n, 2))
    boxes[:, 2] = sizes[:, 2] / 2.0
    boxes[:, 3:6] = sizes * np.clip(1.0 + rng.normal(0.0, 0.1, size=(n, 3)), 0.5, 1.5)
    boxes[:, 6] = rng.uniform(-np.pi, np.pi, size=n)
    scores = rng.uniform(*noise.fp_score, size=n)
    velocities = rng.normal(0.0, noise.velocity_std_mps, (n, 2)) if with_velocity else None
    return boxes, scores, labels, velocities


def _concat(stamp_ns: int, a: tuple[np.ndarray, ...], b: tuple[np.ndarray, ...]) -> Detections:
    boxes = np.concatenate([a[0], b[0]]).astype(np.float32)
    scores = np.concatenate([a[1], b[1]]).astype(np.float32)
    labels = np.concatenate([a[2], b[2]]).astype(np.int32)
    velocities = None
    if a[3] is not None and b[3] is not None:
        velocities = np.concatenate([a[3], b[3]]).astype(np.float32)
    return Detections(stamp_ns, boxes, scores, labels, velocities=velocities)
