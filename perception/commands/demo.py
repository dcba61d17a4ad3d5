"""``perception demo``: run what exists of the pipeline end to end on the built-in defaults.

1. Print ``perception info``.
2. Load the real Waymo frame from the fixtures (when present): cameras, calibration and labels
   through the Waymo reader; draw its 3D labels into the FRONT camera image.
3. Drive the built-in simulator (lidar, cameras, radars, moving actors), voxelize each sweep with
   the custom ops, and track objects through the multi-object tracker.
4. Score detections and tracks with the Waymo metrics and write pictures.

The fusion detector is not part of the demo yet. Until it is, the tracker's input is the
simulator's ground truth passed through the documented detection noise model
(:mod:`perception.tracking.noise`): misses, false positives, position, size and heading
noise. The metrics therefore score that noise model and the tracker, not a detector; the
output says so.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import fixtures
from ..config import config_dir

log = logging.getLogger("perception.demo")

DEFAULT_OUT = Path("outputs/demo")
DEFAULT_TRACKER_CONFIG = config_dir() / "tracking" / "sim.yaml"
SIM_VOXEL_SIZE_M = (0.2, 0.2, 0.25)
SIM_POINT_RANGE_M = (-75.0, -75.0, -3.0, 75.0, 75.0, 5.0)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the pipeline end to end on the built-in simulator "
                                    "and the real Waymo fixture frame",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=20, help="simulated frames at 10 Hz "
                                                          "(default: 20)")
    p.add_argument("--preset", default="waymo_like",
                   help="simulator preset (default: waymo_like)")
    p.add_argument("--seed", type=int, default=0, help="scenario seed (default: 0)")
    p.add_argument("--noise", default="medium", choices=_noise_names(),
                   help="detection noise level fed to the tracker (default: medium)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"where pictures and metrics go (default: {DEFAULT_OUT})")
    p.set_defaults(func=run)


def _noise_names() -> list[str]:
    from ..tracking.noise import NOISE_LEVELS

    return [level.name for level in NOISE_LEVELS]


@dataclass
class SimRun:
    """What the simulated part of the demo produced."""

    gt: dict = field(default_factory=dict)          # FrameKey -> Boxes3D
    detections: dict = field(default_factory=dict)  # FrameKey -> Detections
    tracks: dict = field(default_factory=dict)      # FrameKey -> Detections (tracked boxes)
    track_ids: dict = field(default_factory=dict)   # FrameKey -> (N,) int64
    voxels_per_frame: list[int] = field(default_factory=list)
    points_per_frame: list[int] = field(default_factory=list)
    seconds_per_frame: list[float] = field(default_factory=list)
    last_frame: object = None
    last_tracks: object = None


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from .info import collect, format_text

    if args.frames < 1:
        raise ConfigError(f"--frames must be >= 1, got {args.frames}")
    print(format_text(collect()))
    args.out.mkdir(parents=True, exist_ok=True)
    _section("Real Waymo frame (fixture)")
    _show_waymo_fixture(args.out)
    _section(f"Simulator '{args.preset}', seed {args.seed}, {args.frames} frames")
    sim = _run_simulation(args)
    _section("Metrics")
    _report(sim, args)
    return 0


def _section(title: str) -> None:
    print(f"\n== {title} ==")


def _show_waymo_fixture(out: Path) -> None:
    from ..data.waymo import WaymoReader
    from ..types import ObjectClass
    from ..viz import draw_boxes_on_image

    path = fixtures.fixture_path("waymo_camera_frame")
    if path is None:
        print(f"skipped: the Waymo fixture is not present (set ${fixtures.ENV_VAR})")
        return
    frame = WaymoReader(path)[0]
    labels = frame.boxes
    by_class = {c.name.lower(): int((labels.labels == c).sum()) for c in ObjectClass
                if (labels.labels == c).any()}
    levels = labels.levels()
    print(f"{path.name}: sequence {frame.sequence_id}, stamp {frame.stamp_ns} ns")
    print(f"cameras: {', '.join(f'{n} {c.calibration.width}x{c.calibration.height}' for n, c in frame.cameras.items())}")
    print(f"labels: {len(labels)} ({by_class}); LEVEL_1 {int((levels == 1).sum())}, "
          f"LEVEL_2 {int((levels == 2).sum())}")
    print(f"lidar: {'none in this fixture (its range images were stripped)' if frame.lidar is None or len(frame.lidar) == 0 else len(frame.lidar)}")
    if "FRONT" in frame.cameras:
        from PIL import Image

        image, drawn = draw_boxes_on_image(frame.cameras["FRONT"], labels.boxes, labels.labels)
        target = out / "waymo_front_labels.png"
        Image.fromarray(image).save(target)
        print(f"FRONT camera with {drawn} projected 3D labels -> {target}")


def _run_simulation(args: argparse.Namespace) -> SimRun:
    from tqdm import tqdm

    from ..data.sim import Simulator
    from ..eval.frames import FrameKey
    from ..ops import voxelize_hard
    from ..tracking import Tracker
    from ..tracking.config import load_tracker_config
    from ..tracking.noise import NOISE_LEVELS, noisy_detections

    simulator = Simulator(args.preset, seed=args.seed)
    tracker = Tracker(load_tracker_config(DEFAULT_TRACKER_CONFIG))
    noise = next(level for level in NOISE_LEVELS if level.name == args.noise)
    rng = np.random.default_rng(args.seed)
    result = SimRun()
    for frame in tqdm(simulator.frames(args.frames), total=args.frames, unit="frame",
                      desc="simulate + track"):
        t0 = time.perf_counter()
        voxels, _, _ = voxelize_hard(frame.lidar.points, SIM_VOXEL_SIZE_M, SIM_POINT_RANGE_M,
                                     max_points=10, max_voxels=150_000)
        detections = noisy_detections([frame.boxes], [frame.stamp_ns], noise, rng)[0]
        tracks = tracker.update(detections, frame.stamp_ns, frame.ego_pose)
        key = FrameKey(frame.sequence_id, frame.stamp_ns)
        result.gt[key] = frame.boxes
        result.detections[key] = detections
        result.tracks[key] = _tracks_as_detections(tracks)
        result.track_ids[key] = tracks.ids
        result.voxels_per_frame.append(int(voxels.shape[0]))
        result.points_per_frame.append(len(frame.lidar))
        result.seconds_per_frame.append(time.perf_counter() - t0)
        result.last_frame, result.last_tracks = frame, tracks
    _save_sim_pictures(result, args.out)
    print(f"lidar points per sweep: {int(np.mean(result.points_per_frame))}, voxels per sweep: "
          f"{int(np.mean(result.voxels_per_frame))}; voxelize + track: "
          f"{1000 * np.mean(result.seconds_per_frame):.1f} ms/frame")
    return result


def _tracks_as_detections(tracks):
    from ..types import Detections

    return Detections(tracks.stamp_ns, tracks.boxes, tracks.scores, tracks.labels,
                      velocities=tracks.velocities)


def _save_sim_pictures(sim: SimRun, out: Path) -> None:
    from PIL import Image

    from ..viz import draw_boxes_on_image, plot_bev

    frame, tracks = sim.last_frame, sim.last_tracks
    bev = plot_bev(out / "sim_bev.png", points=frame.lidar.points, boxes=frame.boxes.boxes,
                   labels=frame.boxes.labels, pred_boxes=tracks.boxes,
                   title=f"simulated sweep {frame.frame_index}: ground truth (colour), "
                         f"tracks (dashed)")
    print(f"BEV of the last frame -> {bev}")
    if frame.cameras:
        name = "FRONT" if "FRONT" in frame.cameras else sorted(frame.cameras)[0]
        image, drawn = draw_boxes_on_image(frame.cameras[name], tracks.boxes, tracks.labels)
        target = out / f"sim_{name.lower()}_tracks.png"
        Image.fromarray(image).save(target)
        print(f"{name} camera with {drawn} tracked boxes -> {target}")


def _report(sim: SimRun, args: argparse.Namespace) -> None:
    from ..eval.detection import evaluate_detection
    from ..eval.report import format_table, write_report
    from ..eval.tracking import evaluate_tracking

    print("Detections are simulator ground truth with the "
          f"'{args.noise}' noise model (the fusion detector is not in the demo yet).")
    detection = evaluate_detection(sim.gt, sim.detections)
    tracking = evaluate_tracking(sim.gt, sim.tracks, sim.track_ids)
    print(format_table(detection, tracking))
    write_report(args.out, detection, tracking)
    print(f"metrics.json and precision/recall curves -> {args.out}")
