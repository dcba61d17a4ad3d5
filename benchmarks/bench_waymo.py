"""Waymo I/O: encode, decode and convert throughput on Waymo-sized frames, format comparison.

Frames: five lasers as :func:`perception.data.waymo_writer.default_laser_geometries` (TOP
64 x 2650, four 200 x 600), about 170k returns, written with :func:`write_frames`; plus, when the
simulator is available, its ``waymo_like`` frames. The official range-image utils (TensorFlow)
are timed on the same file in a subprocess when an interpreter with them is found
(``$WOD_OFFICIAL_PYTHON`` or ``/opt/wod-venv/bin/python``).
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from perception.data import waymo, waymo_writer
from perception.data.waymo_convert import ConvertedSegment, convert_segment
from perception.data.waymo_range_image import LaserGeometry, column_azimuths
from perception.geometry import make_transform, rotation_z
from perception.types import Boxes3D, EgoPose, LidarSweep, SensorFrame

from .harness import Report, cpu_and_wall, peak_rss_mib, timeit

N_FRAMES = 10
WALL_RADIUS_M = 45.0
SHORT_RANGE_KEEP = 0.04
OFFICIAL_SCRIPT = Path(__file__).resolve().parent.parent / "tests" / "data" / \
    "official_waymo_points.py"


def _beam_returns(geometry: LaserGeometry, rng: np.random.Generator) -> np.ndarray:
    """Returns of one laser against the ground (z = 0) and a round wall: (M, 3) vehicle xyz."""
    w = geometry.width
    incl = geometry.beam_inclinations_rad[::-1]
    az = column_azimuths(w, geometry.T_vehicle_sensor)
    d = np.stack(np.broadcast_arrays(np.cos(az)[None] * np.cos(incl)[:, None],
                                     np.sin(az)[None] * np.cos(incl)[:, None],
                                     np.sin(incl)[:, None]), axis=-1).reshape(-1, 3)
    E = geometry.T_vehicle_sensor
    d = d @ E[:3, :3].T
    o = E[:3, 3]
    t_ground = np.where(d[:, 2] < -1e-6, -o[2] / np.minimum(d[:, 2], -1e-6), np.inf)
    # Ray / vertical cylinder of radius R centred on the vehicle origin.
    a = d[:, 0] ** 2 + d[:, 1] ** 2
    b = 2 * (o[0] * d[:, 0] + o[1] * d[:, 1])
    c = o[0] ** 2 + o[1] ** 2 - WALL_RADIUS_M ** 2
    t_wall = (-b + np.sqrt(np.maximum(b * b - 4 * a * c, 0))) / np.maximum(2 * a, 1e-12)
    t = np.minimum(t_ground, t_wall)
    keep = np.isfinite(t) & (t < 75.0) & (rng.random(t.shape) > 0.05)
    if geometry.laser_id != 1:
        keep &= (t < 20.0) & (rng.random(t.shape) < SHORT_RANGE_KEEP)
    return o + d[keep] * t[keep, None]


def waymo_sized_frame(index: int) -> SensorFrame:
    """A five-laser frame with ~170k returns on the beam directions, and 30 labelled boxes."""
    rng = np.random.default_rng(index)
    xyz, ids = [], []
    for laser_id, geometry in waymo_writer.default_laser_geometries().items():
        pts = _beam_returns(geometry, rng)
        xyz.append(pts)
        ids.append(np.full(len(pts), laser_id, np.int8))
    xyz = np.concatenate(xyz)
    points = np.column_stack([xyz, rng.random((len(xyz), 2))]).astype(np.float32)
    stamp_ns = 1_550_000_000_000_000_000 + index * 100_000_000
    n_boxes = 30
    boxes = Boxes3D(
        boxes=np.column_stack([rng.uniform(-40, 40, (n_boxes, 2)), np.full(n_boxes, 0.9),
                               np.tile([4.5, 2.0, 1.7], (n_boxes, 1)),
                               rng.uniform(-3, 3, n_boxes)]).astype(np.float32),
        labels=np.ones(n_boxes, np.int32), ids=np.array([f"obj{k}" for k in range(n_boxes)]),
        velocities=rng.normal(0, 3, (n_boxes, 2)).astype(np.float32),
        accelerations=np.zeros((n_boxes, 2), np.float32),
        num_points=rng.integers(0, 500, n_boxes).astype(np.int32))
    pose = make_transform(rotation_z(0.01 * index), [1000.0 + index, 2000.0, 100.0])
    lidar = LidarSweep("lidar", stamp_ns, points, waymo.LIDAR_COLUMNS, np.concatenate(ids),
                       np.zeros(len(points), np.int8))
    return SensorFrame(stamp_ns, "bench_segment", index, lidar, ego_pose=EgoPose(stamp_ns, pose),
                       boxes=boxes, source="sim")


def _official_python() -> str | None:
    for candidate in (os.environ.get("WOD_OFFICIAL_PYTHON"), "/opt/wod-venv/bin/python"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def _official_seconds_per_frame(path: Path, work: Path) -> float | None:
    python = _official_python()
    if python is None:
        return None
    out = work / "official.npz"
    try:
        subprocess.run([python, str(OFFICIAL_SCRIPT), str(path), str(out)], check=True,
                       capture_output=True, timeout=240)
    except (subprocess.SubprocessError, OSError):
        return None
    # Both returns of one frame, decoding only (TensorFlow start-up excluded).
    return float(np.median(np.load(out)["seconds"]))


def _throughput(report: Report, frames: list[SensorFrame], work: Path, label: str,
                lasers: dict | None = None) -> tuple[Path, float]:
    path = work / f"{label}.tfrecord"
    t0 = time.process_time()
    waymo_writer.write_frames(path, frames, lasers=lasers)
    encode_s = (time.process_time() - t0) / len(frames)
    reader = waymo.WaymoReader(path)
    n = len(frames)
    decode_cpu, decode_wall = cpu_and_wall(lambda: [reader[i] for i in range(n)])
    out = work / f"{label}_converted"

    def run_convert() -> None:
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir()
        convert_segment(path, out)

    convert_cpu, convert_wall = cpu_and_wall(run_convert)
    n_points = np.mean([len(f.lidar) for f in frames])
    report.table(["frames", "points/frame", "MB/frame (TFRecord)", "encode CPU s/frame",
                  "decode CPU s/frame", "decode frames/s/core", "decode+convert frames/s/core",
                  "decode+convert frames/s (wall)"],
                 [[f"{n} {label}", int(n_points), path.stat().st_size / n / 1e6, encode_s,
                   decode_cpu / n, n / decode_cpu, n / convert_cpu, n / convert_wall]])
    return path, decode_wall / n


def _format_comparison(report: Report, tfrecord: Path, work: Path) -> None:
    """Size per frame and random-access time (lidar + boxes of one frame) per format."""
    reader = waymo.WaymoReader(tfrecord)
    frames = [reader[i] for i in range(len(reader))]
    n = len(frames)
    converted = ConvertedSegment(work / "waymo_sized_converted" / tfrecord.stem)
    npz_dir = work / "npz"
    npz_dir.mkdir(exist_ok=True)
    for compressed in (False, True):
        save = np.savez_compressed if compressed else np.savez
        for i, f in enumerate(frames):
            save(npz_dir / f"{'z' if compressed else 'u'}{i}.npz", points=f.lidar.points,
                 laser_id=f.lidar.laser_id, return_index=f.lidar.return_index,
                 boxes=f.boxes.boxes, labels=f.boxes.labels)
    order = [random.Random(0).randrange(n) for _ in range(30)]

    def access(fn):
        it = iter(order * 1000)
        return timeit(lambda: fn(next(it)), repeat=30, warmup=3)

    def npz_read(prefix):
        def read(i):
            with np.load(npz_dir / f"{prefix}{i}.npz") as z:
                return z["points"], z["laser_id"], z["boxes"], z["labels"]
        return read

    def size(paths):
        return sum(p.stat().st_size for p in paths) / n / 1e6

    seg_dir = converted.directory
    rows = [
        ["raw TFRecord (decode on read)", tfrecord.stat().st_size / n / 1e6,
         access(lambda i: reader[i].lidar.points)],
        ["converted: raw arrays, memory-mapped (chosen)", size(list(seg_dir.iterdir())),
         access(lambda i: converted[i].lidar.points)],
        ["npz per frame, uncompressed", size(list(npz_dir.glob("u*.npz"))),
         access(npz_read("u"))],
        ["npz per frame, zlib (savez_compressed)", size(list(npz_dir.glob("z*.npz"))),
         access(npz_read("z"))],
    ]
    report.table(["format", "MB/frame", "random frame read, s"], rows)


def run(report: Report) -> None:
    report.section("Waymo I/O: decode and convert throughput (one core)")
    report.line("Target: >= 10 frames/s per core for decode + convert of Waymo-sized frames. "
                "Public reports give ~30 s/frame for some setups of the official utils and "
                "days per data set for the mmdet3d/OpenPCDet converters.")
    with tempfile.TemporaryDirectory(prefix="bench_waymo_") as tmp:
        work = Path(tmp)
        frames = [waymo_sized_frame(i) for i in range(N_FRAMES)]
        path, decode_s = _throughput(report, frames, work, "waymo_sized")
        official_s = _official_seconds_per_frame(path, work)
        if official_s is None:
            report.line("Official utils: no interpreter with TensorFlow found "
                        "(set WOD_OFFICIAL_PYTHON); ratio not measured.")
        else:
            report.line(f"Official `convert_range_image_to_point_cloud` (TensorFlow, both "
                        f"returns, same file, wall time): {official_s:.3f} s/frame; ours "
                        f"{decode_s:.3f} s/frame (wall): **{official_s / decode_s:.1f}x** "
                        f"faster.")
        _simulator_throughput(report, work)
        report.section("Waymo converted format: size and random access")
        _format_comparison(report, path, work)
    report.line(f"Peak RSS: {peak_rss_mib():.0f} MiB")


def _simulator_throughput(report: Report, work: Path) -> None:
    try:
        from perception.data.sim import Simulator
    except ImportError:
        report.line("Simulator not available: simulated frames skipped.")
        return
    sim = Simulator("waymo_like", seed=0)
    frames = [f for f in sim.frames(3)]
    top = LaserGeometry("TOP", 1, sim.lidar.calibration.T_vehicle_sensor,
                              sim.lidar.inclination_rad, sim.lidar.cfg.azimuth_steps)
    _throughput(report, frames, work, "simulator", lasers={1: top})
