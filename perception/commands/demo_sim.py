"""The simulator part of ``perception demo``: a scenario through the pipeline (sync ->
detector -> tracker), its metrics, the modality ablation and the explanations, and pictures.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..align import SyncConfig
from ..data.sim import Simulator
from ..eval.detection import DetectionResult, evaluate_detection
from ..eval.frames import FrameKey
from ..eval.tracking import TrackingResult, evaluate_tracking
from ..explain import FrameExplanation, explain_frame
from ..models.config import ground_truth_in_grid
from ..pipeline import Pipeline, PipelineOutput
from ..types import (
    DETECTION_CLASSES,
    Boxes3D,
    Detections,
    Modality,
    SensorFrame,
    Tracks,
)
from ..viz import draw_boxes_on_image
from ..viz.sequence import TrackTrails, render_bev, save_png, side_by_side, write_gif

FRAME_RATE_HZ = 10.0
ARRIVAL_LATENCY_NS = 5_000_000
"""Messages reach the sync 5 ms after their stamp (as over a local network)."""
SUBSETS: tuple[tuple[str, frozenset[Modality]], ...] = (
    ("all", frozenset(Modality)),
    ("without lidar", frozenset({Modality.CAMERA, Modality.RADAR})),
    ("without camera", frozenset({Modality.LIDAR, Modality.RADAR})),
    ("without radar", frozenset({Modality.LIDAR, Modality.CAMERA})),
    ("lidar only", frozenset({Modality.LIDAR})),
    ("camera only", frozenset({Modality.CAMERA})),
    ("radar only", frozenset({Modality.RADAR})),
)
GIF_SIZE_PX = 420


@dataclass
class SimRun:
    """What the simulated part produced, keyed by frame."""

    gt: dict[FrameKey, Boxes3D] = field(default_factory=dict)
    detections: dict[FrameKey, Detections] = field(default_factory=dict)
    tracks: dict[FrameKey, Detections] = field(default_factory=dict)
    track_ids: dict[FrameKey, np.ndarray] = field(default_factory=dict)
    outputs: list[PipelineOutput] = field(default_factory=list)
    explanations: list[FrameExplanation] = field(default_factory=list)
    gif_frames: list[np.ndarray] = field(default_factory=list)
    seconds: float = 0.0


def sync_config_for(sim: Simulator) -> SyncConfig:
    """Synchronise every sensor of the simulator's rig (lidar as the reference)."""
    return SyncConfig(reference=sim.lidar.cfg.name, cameras=tuple(sim.cameras),
                      radars=tuple(sim.radars), timeout_s=0.3)


def run_simulation(sim: Simulator, pipeline: Pipeline, frames: int, out: Path,
                   explain: bool, progress: bool = True,
                   ground_truth: dict[int, Boxes3D] | None = None) -> SimRun:
    """``frames`` frames at 10 Hz: each frame's messages pushed to the pipeline in stamp
    order, ground truth kept per frame (and put in ``ground_truth`` by stamp, for a
    noise-model detector); with ``explain``, every frame is also explained (the same passes
    give the modality ablation)."""
    from tqdm import tqdm

    step = max(1, int(round(sim.lidar.cfg.rate_hz / FRAME_RATE_HZ)))
    run = SimRun()
    trails = TrackTrails()
    t0 = time.perf_counter()
    last_arrival = 0
    bar = tqdm(total=frames, unit="frame", desc="simulate -> sync -> detect -> track",
               disable=not progress, dynamic_ncols=True)
    for i in range(frames):
        frame = sim.frame(i * step)
        run.gt[_key(frame)] = frame.boxes
        if ground_truth is not None:
            ground_truth[int(frame.stamp_ns)] = frame.boxes
        for message in sim.frame_messages(frame):
            last_arrival = message.stamp_ns + ARRIVAL_LATENCY_NS
            for output in pipeline.push(message.payload, last_arrival):
                _collect(run, output, pipeline, trails, explain, sim)
        bar.update(1)
    for output in pipeline.flush(last_arrival):
        _collect(run, output, pipeline, trails, explain, sim)
    bar.close()
    run.seconds = time.perf_counter() - t0
    return run


def _key(frame: SensorFrame) -> FrameKey:
    return FrameKey(frame.sequence_id, int(frame.stamp_ns))


def _collect(run: SimRun, output: PipelineOutput, pipeline: Pipeline, trails: TrackTrails,
             explain: bool, sim: Simulator) -> None:
    key = FrameKey(sim.sequence_id, output.stamp_ns)
    run.outputs.append(output)
    run.detections[key] = output.detections
    tracks = output.tracks
    run.tracks[key] = tracks_as_detections(tracks)
    run.track_ids[key] = tracks.ids
    if explain:
        run.explanations.append(explain_frame(pipeline.detector, output.model_input))
    trails.update(tracks, output.frame.ego_pose)
    gt = run.gt.get(key)
    bev = render_bev(output.frame.lidar.points if output.frame.lidar is not None else None,
                     gt, output.detections, tracks, trails.in_vehicle_frame(
                         output.frame.ego_pose), size_px=GIF_SIZE_PX,
                     title=f"t = {len(run.outputs) / FRAME_RATE_HZ:.1f} s")
    camera = front_camera(output.frame)
    if camera is not None:
        image, _ = draw_boxes_on_image(camera, output.detections.boxes,
                                       output.detections.labels)
        bev = side_by_side(bev, image)
    run.gif_frames.append(bev)


def front_camera(frame: SensorFrame):
    """The forward-looking camera of a frame (by name), or None without cameras."""
    for name in ("CAM_FRONT", "FRONT"):
        if name in frame.cameras:
            return frame.cameras[name]
    return frame.cameras[sorted(frame.cameras)[0]] if frame.cameras else None


def tracks_as_detections(tracks: Tracks) -> Detections:
    return Detections(tracks.stamp_ns, tracks.boxes, tracks.scores, tracks.labels,
                      velocities=tracks.velocities)


def grid_ground_truth(run: SimRun, point_range_m) -> dict[FrameKey, Boxes3D]:
    """Ground truth inside the model's BEV range (what the model can see), per frame."""
    from ..models.config import GridConfig

    grid = GridConfig(point_range_m=tuple(point_range_m))
    return {k: ground_truth_in_grid(v, grid) for k, v in run.gt.items()}


def score(run: SimRun, gt: dict[FrameKey, Boxes3D]) -> tuple[DetectionResult, TrackingResult]:
    keys = [k for k in run.detections if k in gt]
    detection = evaluate_detection({k: gt[k] for k in keys}, {k: run.detections[k] for k in keys})
    tracking = evaluate_tracking({k: gt[k] for k in keys}, {k: run.tracks[k] for k in keys},
                                 {k: run.track_ids[k] for k in keys})
    return detection, tracking


def ablation_table(run: SimRun, gt: dict[FrameKey, Boxes3D]) -> tuple[str, dict]:
    """AP (LEVEL_1) per class for each test-time modality subset, from the explanation
    passes (the model given only that subset)."""
    rows = {}
    for name, subset in SUBSETS:
        preds = {}
        for e, out in zip(run.explanations, run.outputs):
            key = FrameKey(next(iter(gt)).sequence_id, out.stamp_ns)
            if key not in gt:
                continue
            have = subset & e.players
            preds[key] = e.by_subset.get(have, Detections.empty(out.stamp_ns, frozenset()))
        result = evaluate_detection({k: gt[k] for k in preds}, preds)
        rows[name] = {c.name: result.get(c, 1).ap for c in DETECTION_CLASSES}
    full = rows["all"]
    lines = [f"{'test-time input':<18}" + "".join(f"{c.name:>12}" for c in DETECTION_CLASSES)
             + f"{'mean':>9}{'of all':>9}"]
    mean_all = float(np.mean(list(full.values())))
    for name, aps in rows.items():
        mean = float(np.mean(list(aps.values())))
        kept = mean / mean_all if mean_all > 0 else 0.0
        lines.append(f"{name:<18}" + "".join(f"{aps[c.name]:>12.3f}" for c in DETECTION_CLASSES)
                     + f"{mean:>9.3f}{kept:>8.0%}")
    return "\n".join(lines), rows


def latency_text(outputs: list[PipelineOutput]) -> str:
    """Per-stage latency per frame: mean, p50, p95 (ms)."""
    def row(name: str, values: list[float]) -> str:
        v = np.asarray(values)
        return (f"{name:<26}{v.mean():>8.1f}{np.percentile(v, 50):>8.1f}"
                f"{np.percentile(v, 95):>8.1f}")

    t = [o.timings for o in outputs]
    lines = [f"{'stage (ms per frame)':<26}{'mean':>8}{'p50':>8}{'p95':>8}",
             row("sync wait", [x.sync_wait_ms for x in t]),
             row("accumulate", [x.accumulate_ms for x in t]),
             row("collate", [x.collate_ms for x in t]),
             row("model", [x.model_ms for x in t]),
             row("decode + NMS", [x.decode_ms for x in t]),
             row("detector (collate..NMS)",
                 [x.collate_ms + x.model_ms + x.decode_ms for x in t]),
             row("tracker", [x.track_ms for x in t])]
    return "\n".join(lines)


def save_pictures(run: SimRun, out: Path) -> dict[str, list[Path]]:
    """BEV PNG, camera overlays and the GIF of the sequence."""
    from PIL import Image

    written: dict[str, list[Path]] = {}
    last = run.outputs[-1]
    key = FrameKey(next(iter(run.gt)).sequence_id, last.stamp_ns)
    trails = TrackTrails()
    for o in run.outputs:
        trails.update(o.tracks, o.frame.ego_pose)
    bev = render_bev(last.frame.lidar.points if last.frame.lidar is not None else None,
                     run.gt.get(key), last.detections, last.tracks,
                     trails.in_vehicle_frame(last.frame.ego_pose), size_px=900,
                     title="last frame: ground truth, detections, tracks with ids and trails")
    written["bev"] = [save_png(bev, out / "sim_bev.png")]
    overlays = []
    for name in sorted(last.frame.cameras):
        image, _ = draw_boxes_on_image(last.frame.cameras[name], last.detections.boxes,
                                       last.detections.labels)
        overlays.append((name, image))
    if overlays:
        tiles = [np.asarray(Image.fromarray(img).resize((480, 270))) for _, img in overlays]
        rows = [np.concatenate(tiles[i:i + 3] + [np.zeros_like(tiles[0])] * (3 - len(
            tiles[i:i + 3])), axis=1) for i in range(0, len(tiles), 3)]
        written["cameras"] = [save_png(np.concatenate(rows, axis=0), out / "sim_cameras.png")]
    written["gif"] = [write_gif(run.gif_frames, out / "sim_sequence.gif", fps=FRAME_RATE_HZ)]
    return written
