"""The real-data part of ``perception demo``: the shipped model on the real fixture frames
that have lidar (nuScenes keyframe, KITTI, the Waymo 800-point lidar sample), drawn next to
their labels, with honest numbers. Each frame goes through the same pipeline as the
simulator's (one frame at a time, no tracking)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import fixtures
from ..data.kitti import KittiReader
from ..data.nuscenes import NuScenesInfoReader
from ..eval.detection import evaluate_detection
from ..eval.frames import FrameKey
from ..models.config import GridConfig, ground_truth_in_grid
from ..pipeline import Pipeline
from ..types import DETECTION_CLASSES, Detections, SensorFrame
from ..viz import draw_boxes_on_image
from ..viz.sequence import render_bev, save_png, side_by_side

NUSCENES_INFO = "n015-2018-07-24-11-22-45+0800.pkl"
MATCH_DISTANCE_M = 2.0
MIN_SCORE = 0.3


@dataclass
class RealResult:
    """One fixture's numbers."""

    name: str
    frames: int
    modalities: str
    ground_truth: int
    detections: int
    recall_2m: dict[str, float]
    precision_2m: float
    ap_l1: dict[str, float]
    pictures: list[Path]


def real_frames() -> list[tuple[str, SensorFrame]]:
    """(name, frame) of each real fixture with lidar that is present."""
    found = []
    nuscenes_dir = fixtures.fixture_path("nuscenes_keyframe")
    if nuscenes_dir is not None and (nuscenes_dir / NUSCENES_INFO).is_file():
        reader = NuScenesInfoReader(nuscenes_dir / NUSCENES_INFO)
        found += [("nuScenes keyframe", reader[i]) for i in range(len(reader))]
    kitti_dir = fixtures.fixture_path("kitti_object")
    if kitti_dir is not None:
        reader = KittiReader(kitti_dir)
        found += [(f"KITTI {i:06d}", reader[i]) for i in range(len(reader))]
    return found


def run_real(pipeline: Pipeline, out: Path) -> list[RealResult]:
    """Detect in every real frame, compare with its labels, draw BEV and camera pictures."""
    grid = GridConfig(point_range_m=tuple(pipeline.detector.config.grid.point_range_m))
    results = []
    for name, frame in real_frames():
        pipeline.reset()
        output = pipeline.process(frame)
        gt = ground_truth_in_grid(frame.boxes, grid)
        gt = gt.select(np.isin(gt.labels, [int(c) for c in DETECTION_CLASSES]))
        results.append(_score(name, frame, gt, output.detections, out))
    return results


def _score(name: str, frame: SensorFrame, gt, detections: Detections, out: Path) -> RealResult:
    confident = detections.select(detections.scores >= MIN_SCORE)
    recall = {}
    for c in DETECTION_CLASSES:
        mine = gt.select(gt.labels == int(c))
        if not len(mine):
            continue
        theirs = confident.select(confident.labels == int(c))
        recall[c.name] = _hit_fraction(mine.boxes[:, :2], theirs.boxes[:, :2])
    precision = _hit_fraction(confident.boxes[:, :2], gt.boxes[:, :2]) if len(confident) \
        else 0.0
    key = FrameKey(frame.sequence_id, int(frame.stamp_ns))
    # Real labels come without point counts in some sources: every box counts as LEVEL_1.
    labelled = dataclasses.replace(gt, difficulty=np.ones(len(gt), np.int8),
                                   num_points=None)
    result = evaluate_detection({key: labelled}, {key: detections})
    ap = {c.name: result.get(c, 1).ap for c in DETECTION_CLASSES
          if (gt.labels == int(c)).any()}
    pictures = _draw(name, frame, gt, confident, out)
    mods = "+".join(sorted(m.value for m in detections.modalities)) or "none"
    return RealResult(name, 1, mods, len(gt), len(confident), recall, precision, ap, pictures)


def _hit_fraction(a_xy: np.ndarray, b_xy: np.ndarray) -> float:
    """Fraction of points in ``a_xy`` with a point of ``b_xy`` within the match distance."""
    if not len(a_xy):
        return 0.0
    if not len(b_xy):
        return 0.0
    d = np.linalg.norm(a_xy[:, None, :] - b_xy[None, :, :], axis=-1)
    return float((d.min(axis=1) <= MATCH_DISTANCE_M).mean())


def _draw(name: str, frame: SensorFrame, gt, detections: Detections, out: Path) -> list[Path]:
    slug = name.lower().replace(" ", "_")
    bev = render_bev(frame.lidar.points if frame.lidar is not None else None, gt, detections,
                     size_px=600, title=f"{name}: labels (colour), detections >= "
                                         f"{MIN_SCORE} (white)")
    images = [bev]
    camera = None
    for candidate in ("CAM_FRONT", "FRONT", "CAM2", "image_2"):
        camera = frame.cameras.get(candidate)
        if camera is not None:
            break
    if camera is None and frame.cameras:
        camera = frame.cameras[sorted(frame.cameras)[0]]
    if camera is not None:
        labels_img, _ = draw_boxes_on_image(camera, gt.boxes, gt.labels)
        dets_img, _ = draw_boxes_on_image(camera, detections.boxes, detections.labels)
        images.append(np.concatenate([labels_img, dets_img], axis=0))
    return [save_png(side_by_side(*images), out / f"real_{slug}.png")]


def format_results(results: list[RealResult]) -> str:
    lines = [f"{'frame':<20}{'input':<20}{'labels':>7}{'dets':>6}  "
             f"recall@{MATCH_DISTANCE_M:.0f}m by class        precision@{MATCH_DISTANCE_M:.0f}m"
             f"  AP L1 (official IoU)"]
    for r in results:
        recall = ", ".join(f"{k[:3].lower()} {v:.2f}" for k, v in r.recall_2m.items()) or "-"
        ap = ", ".join(f"{k[:3].lower()} {v:.2f}" for k, v in r.ap_l1.items()) or "-"
        lines.append(f"{r.name:<20}{r.modalities:<20}{r.ground_truth:>7}{r.detections:>6}  "
                     f"{recall:<30}{r.precision_2m:>8.2f}  {ap}")
    return "\n".join(lines)
