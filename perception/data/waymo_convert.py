"""Convert Waymo segments into a memory-mappable, training-friendly format, and read it back.

On-disk format (version 1), one directory per segment under the output root::

    OUT/
      index.json                  segments and frame counts (rewritten after each run)
      <segment>/                  one per source TFRecord (named after its file stem)
        meta.json                 schema, frame table, calibrations, array dtypes and shapes
        points.f32                (P, 5) float32 x, y, z, intensity, elongation, vehicle frame
        laser_id.i8               (P,) int8 Waymo LaserName of each point
        return_index.i8           (P,) int8 0 = first return, 1 = second
        point_offsets.i64         (F + 1,) int64: frame f owns points[off[f]:off[f + 1]]
        poses.f64                 (F, 4, 4) float64 T_world_vehicle
        boxes.f32                 (B, 7) float32 x, y, z, length, width, height, heading
        box_labels.i32            (B,) int32 ObjectClass
        box_motion.f32            (B, 4) float32 speed_x, speed_y, accel_x, accel_y (m/s, m/s^2)
        box_num_points.i32        (B,) int32 num_lidar_points_in_box
        box_difficulty.i8         (B,) int8 detection difficulty (0 unset, 1, 2)
        box_ids.txt               B lines, UTF-8 object ids
        box_offsets.i64           (F + 1,) int64
        images.jpg                the original JPEG bytes of every image, concatenated
        image_index.i64           (F, 5, 2) int64 (offset, length) per camera; length 0 = absent
        image_stamps.i64          (F, 5, 3) int64 ns: image stamp, shutter trigger, readout done
        image_shutter.f64         (F, 5) float64 shutter duration, seconds

Cameras follow Waymo's order FRONT, FRONT_LEFT, FRONT_RIGHT, SIDE_LEFT, SIDE_RIGHT. Arrays
are raw little-endian files so that the reader maps them (``np.memmap``) and a random frame
costs two slices and a copy; JPEGs are kept as they came (no re-encoding).

Conversion is resumable and atomic: a segment is written to ``.<segment>.partial``, synced,
and renamed into place when complete; a segment whose directory exists is skipped. A segment
is converted by one process at a time (a lock file ``.<segment>.lock``), so a rerun after a
kill, or two runs on one output, never write into the same partial directory. A segment of
which no frame could be converted (an empty, truncated or corrupt file) fails and leaves no
directory behind. Frames that fail to
decode are logged, left out, and listed in ``meta.json`` under ``errors``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import multiprocessing
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import ConversionError, DataError, PerceptionError
from ..types import (
    Boxes3D,
    Calibration,
    CameraConvention,
    CameraImage,
    EgoPose,
    LidarSweep,
    RollingShutter,
    SensorFrame,
)
from .tfrecord import TFRecordFile, scan_index
from .waymo import CAMERA_IDS, LIDAR_COLUMNS, frame_to_sensor_frame, parse_frame

log = logging.getLogger(__name__)

FORMAT_NAME = "perception-waymo-segment"
FORMAT_VERSION = 1
CAMERA_ORDER = tuple(sorted(CAMERA_IDS, key=CAMERA_IDS.get))
PARTIAL_PREFIX = "."
PARTIAL_SUFFIX = ".partial"

# name -> (dtype, trailing shape) of every array file; the leading dim is in meta.json.
ARRAYS = {
    "points.f32": ("<f4", (len(LIDAR_COLUMNS),)),
    "laser_id.i8": ("i1", ()),
    "return_index.i8": ("i1", ()),
    "point_offsets.i64": ("<i8", ()),
    "poses.f64": ("<f8", (4, 4)),
    "boxes.f32": ("<f4", (7,)),
    "box_labels.i32": ("<i4", ()),
    "box_motion.f32": ("<f4", (4,)),
    "box_num_points.i32": ("<i4", ()),
    "box_difficulty.i8": ("i1", ()),
    "box_offsets.i64": ("<i8", ()),
    "image_index.i64": ("<i8", (len(CAMERA_ORDER), 2)),
    "image_stamps.i64": ("<i8", (len(CAMERA_ORDER), 3)),
    "image_shutter.f64": ("<f8", (len(CAMERA_ORDER),)),
}


@dataclass
class SegmentResult:
    """Outcome of converting one segment."""

    name: str
    frames: int = 0
    objects: int = 0
    points: int = 0
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    skipped: bool = False
    failed: str | None = None


@dataclass
class ConvertSummary:
    """Totals of a conversion run."""

    segments_converted: int = 0
    segments_skipped: int = 0
    segments_failed: int = 0
    frames: int = 0
    objects: int = 0
    frame_errors: int = 0
    seconds: float = 0.0
    results: list[SegmentResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no segment failed and something was converted (or was already done).

        A run that converted nothing, because every record was damaged, the files were empty
        or no ``*.tfrecord`` was found, is a failure: its exit status must say so."""
        return self.segments_failed == 0 and (self.segments_converted + self.segments_skipped) > 0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    def add(self, result: SegmentResult) -> None:
        self.results.append(result)
        if result.skipped:
            self.segments_skipped += 1
            return
        if result.failed is not None:
            self.segments_failed += 1
        else:
            self.segments_converted += 1
        self.frames += result.frames
        self.objects += result.objects
        self.frame_errors += len(result.errors)

    def text(self) -> str:
        lines = [f"segments: {self.segments_converted} converted, {self.segments_skipped} "
                 f"skipped (already done), {self.segments_failed} failed",
                 f"frames: {self.frames}, objects: {self.objects}, frame errors: "
                 f"{self.frame_errors}",
                 f"time: {self.seconds:.1f} s, {self.frames_per_s:.2f} frames/s"]
        for r in self.results:
            if r.failed:
                lines.append(f"  failed {r.name}: {r.failed}")
            for err in r.errors:
                lines.append(f"  skipped frame in {r.name}: {err}")
        if not self.results:
            lines.append("  no *.tfrecord segment found")
        if not self.ok:
            lines.append("nothing was converted" if not self.segments_converted
                         else "some segments failed")
        return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------

def list_segments(src: str | os.PathLike) -> list[Path]:
    """The ``*.tfrecord`` files under ``src`` (or ``src`` itself), sorted by name."""
    src = Path(src)
    if src.is_file():
        return [src]
    if not src.is_dir():
        raise DataError("no such file or directory", source=str(src))
    return sorted(src.glob("*.tfrecord"))


def select_shard(paths: list[Path], shard_index: int, shard_count: int) -> list[Path]:
    """Segments of shard ``shard_index`` of ``shard_count`` (round robin over sorted names)."""
    if shard_count < 1 or not 0 <= shard_index < shard_count:
        raise ConversionError(f"shard {shard_index}/{shard_count}: need 0 <= i < n")
    return [p for k, p in enumerate(sorted(paths)) if k % shard_count == shard_index]


class _SegmentWriter:
    """Appends frames to the array files of one segment directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.files = {name: open(directory / name, "wb") for name in ARRAYS}
        self.images = open(directory / "images.jpg", "wb")
        self.ids = open(directory / "box_ids.txt", "w", encoding="utf-8")
        self.rows = {name: 0 for name in ARRAYS}
        self.image_bytes = 0
        self.n_points = 0
        self.n_boxes = 0
        self.frames: list[dict] = []
        self.cameras: dict[str, dict] = {}
        self.lidar_calibration: list[float] | None = None
        self._put("point_offsets.i64", np.zeros(1, np.int64))
        self._put("box_offsets.i64", np.zeros(1, np.int64))

    def _put(self, name: str, array: np.ndarray) -> None:
        dtype, trailing = ARRAYS[name]
        array = np.ascontiguousarray(array, dtype=dtype)
        if array.shape[1:] != trailing:
            raise ConversionError(f"{name}: rows of shape {array.shape[1:]}, expected {trailing}")
        self.files[name].write(array.tobytes())
        self.rows[name] += array.shape[0]

    @staticmethod
    def check(frame: SensorFrame) -> None:
        """Refuse a frame the format cannot hold, before any of it is written."""
        lidar = frame.lidar
        if lidar is not None and (lidar.columns != LIDAR_COLUMNS or lidar.laser_id is None
                                  or lidar.return_index is None):
            raise ConversionError(f"lidar needs columns {LIDAR_COLUMNS} with laser ids and "
                                  f"return indices, got {lidar.columns}")
        for name, camera in frame.cameras.items():
            if name not in CAMERA_ORDER or camera.encoded is None:
                raise ConversionError(f"camera {name}: only encoded images of the Waymo "
                                      f"cameras {CAMERA_ORDER} are stored")
        ids = frame.boxes.ids if frame.boxes is not None else None
        if ids is not None and any("\n" in str(i) for i in ids):
            raise ConversionError("box ids must not contain newlines")

    def add(self, frame: SensorFrame) -> None:
        self.check(frame)
        lidar = frame.lidar
        if lidar is not None:
            self._put("points.f32", lidar.points)
            self._put("laser_id.i8", lidar.laser_id)
            self._put("return_index.i8", lidar.return_index)
            self.n_points += len(lidar)
            if self.lidar_calibration is None and lidar.calibration is not None:
                self.lidar_calibration = lidar.calibration.T_vehicle_sensor.ravel().tolist()
        self._put("point_offsets.i64", np.array([self.n_points]))
        pose = frame.ego_pose.T_world_vehicle if frame.ego_pose is not None else np.eye(4)
        self._put("poses.f64", pose[None])
        self._add_boxes(frame.boxes if frame.boxes is not None else Boxes3D.empty())
        self._add_images(frame)
        self.frames.append({"stamp_ns": frame.stamp_ns, "frame_index": frame.frame_index,
                            "sequence_id": frame.sequence_id,
                            "has_pose": frame.ego_pose is not None,
                            "has_labels": frame.boxes is not None})

    def _add_boxes(self, boxes: Boxes3D) -> None:
        n = len(boxes)
        zeros2 = np.zeros((n, 2), np.float32)
        motion = np.concatenate([boxes.velocities if boxes.velocities is not None else zeros2,
                                 boxes.accelerations if boxes.accelerations is not None
                                 else zeros2], axis=1)
        self._put("boxes.f32", boxes.boxes)
        self._put("box_labels.i32", boxes.labels)
        self._put("box_motion.f32", motion)
        self._put("box_num_points.i32", boxes.num_points if boxes.num_points is not None
                  else np.full(n, -1, np.int32))
        self._put("box_difficulty.i8", boxes.difficulty)
        ids = [str(i) for i in boxes.ids] if boxes.ids is not None else [""] * n
        self.ids.writelines(i + "\n" for i in ids)
        self.n_boxes += n
        self._put("box_offsets.i64", np.array([self.n_boxes]))

    def _add_images(self, frame: SensorFrame) -> None:
        index = np.zeros((1, len(CAMERA_ORDER), 2), np.int64)
        stamps = np.zeros((1, len(CAMERA_ORDER), 3), np.int64)
        shutter = np.zeros((1, len(CAMERA_ORDER)), np.float64)
        for k, name in enumerate(CAMERA_ORDER):
            camera = frame.cameras.get(name)
            if camera is None:
                continue
            self.images.write(camera.encoded)
            index[0, k] = (self.image_bytes, len(camera.encoded))
            self.image_bytes += len(camera.encoded)
            rs = camera.rolling_shutter
            stamps[0, k, 0] = camera.stamp_ns
            if rs is not None:
                stamps[0, k, 1:] = (rs.trigger_stamp_ns, rs.readout_done_stamp_ns)
                shutter[0, k] = rs.shutter_s
            self.cameras.setdefault(name, _calibration_to_json(camera))
        self._put("image_index.i64", index)
        self._put("image_stamps.i64", stamps)
        self._put("image_shutter.f64", shutter)

    def close(self, meta: dict) -> None:
        """Flush every file to disk, then write ``meta.json`` (the mark of a complete segment,
        written last and also synced, so that after the rename a crash or power loss never
        leaves a ``meta.json`` over files whose data is still only in the page cache)."""
        for f in (*self.files.values(), self.images, self.ids):
            f.flush()
            os.fsync(f.fileno())
            f.close()
        meta.update({
            "format": FORMAT_NAME, "version": FORMAT_VERSION, "columns": list(LIDAR_COLUMNS),
            "camera_order": list(CAMERA_ORDER), "frames": self.frames,
            "cameras": self.cameras, "lidar_T_vehicle_sensor": self.lidar_calibration,
            "arrays": {name: {"dtype": dtype, "shape": [self.rows[name], *trailing]}
                       for name, (dtype, trailing) in ARRAYS.items()},
            "images_bytes": self.image_bytes,
        })
        with open(self.directory / "meta.json", "w", encoding="utf-8") as f:
            f.write(json.dumps(meta, indent=1))
            f.flush()
            os.fsync(f.fileno())

    def abort(self) -> None:
        """Close the files of a segment being given up (its directory is removed next);
        flushing their buffers may fail again, e.g. on a full disk, which changes nothing."""
        for f in (*self.files.values(), self.images, self.ids):
            with contextlib.suppress(OSError):
                f.close()


def _calibration_to_json(camera: CameraImage) -> dict:
    c = camera.calibration
    return {"T_vehicle_sensor": c.T_vehicle_sensor.ravel().tolist(), "K": c.K.ravel().tolist(),
            "distortion": c.distortion.tolist(), "width": c.width, "height": c.height,
            "camera_convention": c.camera_convention.value,
            "rolling_shutter_direction": camera.rolling_shutter.direction
            if camera.rolling_shutter is not None else None}


def segment_name(path: Path) -> str:
    return path.stem


def convert_segment(src: str | os.PathLike, out_root: str | os.PathLike) -> SegmentResult:
    """Convert one segment TFRecord into ``out_root/<stem>/`` (skipped when it exists)."""
    src, out_root = Path(src), Path(out_root)
    name = segment_name(src)
    final = out_root / name
    result = SegmentResult(name)
    t0 = time.perf_counter()
    partial = out_root / f"{PARTIAL_PREFIX}{name}{PARTIAL_SUFFIX}"
    try:
        # One writer per segment: a second run on the same OUT (or a pool worker left over
        # from a killed run, which finishes its segment) must not share the partial directory.
        with _segment_lock(out_root, name):
            if (final / "meta.json").is_file():
                result.skipped = True
                return result
            shutil.rmtree(partial, ignore_errors=True)      # a leftover of an interrupted run
            partial.mkdir(parents=True)
            try:
                _convert_into(src, partial, result)
                if result.frames == 0:
                    reasons = "; ".join(result.errors[:3]) or "the file holds no records"
                    raise DataError(f"no frame could be converted ({reasons})", source=str(src))
                if final.exists():
                    # Not ours (no meta.json): never merge into or replace a foreign directory.
                    raise ConversionError(f"{final} exists but is not a converted segment; "
                                          f"move it away and run again")
                os.replace(partial, final)
            finally:
                shutil.rmtree(partial, ignore_errors=True)
    except PerceptionError as exc:
        result.failed = str(exc)
        log.error("segment %s failed: %s", name, exc)
    except OSError as exc:
        # Disk full, permissions, a vanished source: this segment fails with the reason, its
        # partial directory is gone, and the run goes on to the next one.
        result.failed = f"{type(exc).__name__}: {exc}"
        log.error("segment %s failed: %s", name, result.failed)
    result.seconds = time.perf_counter() - t0
    return result


@contextlib.contextmanager
def _segment_lock(out_root: Path, name: str):
    """Exclusive lock ``OUT/.<segment>.lock`` (``flock``), removed on release.

    A waiter that wakes up on a lock file already unlinked by its previous holder retries on
    the new file, so two processes never both hold the lock of one segment."""
    path = out_root / f"{PARTIAL_PREFIX}{name}.lock"
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                same = os.fstat(fd).st_ino == os.stat(path).st_ino
            except FileNotFoundError:
                same = False
        except BaseException:
            os.close(fd)
            raise
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)


def _convert_into(src: Path, directory: Path, result: SegmentResult) -> None:
    index, scan_error = scan_index(src)
    records = TFRecordFile(src, index)
    writer = _SegmentWriter(directory)
    closed = False
    try:
        for i in range(len(records)):
            try:
                frame = frame_to_sensor_frame(parse_frame(records.read(i), str(src), i),
                                              str(src), i, frame_index=i)
                writer.add(frame)
            except PerceptionError as exc:
                # A failing frame is left out whole: nothing of it was written before add().
                log.warning("skipping frame: %s", exc)
                result.errors.append(str(exc))
                continue
            result.frames += 1
            result.objects += len(frame.boxes) if frame.boxes is not None else 0
            result.points += len(frame.lidar) if frame.lidar is not None else 0
    except BaseException:
        writer.abort()
        closed = True
        raise
    finally:
        if scan_error is not None:
            log.warning("stopping at a damaged record: %s", scan_error)
            result.errors.append(str(scan_error))
        if not closed:
            writer.close({"segment": src.stem, "source": str(src), "errors": result.errors})


def convert(src: str | os.PathLike, out: str | os.PathLike, workers: int = 1,
            shard: tuple[int, int] = (0, 1), progress: bool = True) -> ConvertSummary:
    """Convert every segment of ``src`` (a file or a directory of ``*.tfrecord``) into ``out``.

    Args:
        workers: processes converting segments in parallel (1 = in this process).
        shard: ``(i, n)``: convert only the i-th of n round-robin shards of the sorted segments.
        progress: show a tqdm progress bar over segments.
    """
    from tqdm import tqdm

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = select_shard(list_segments(src), *shard)
    summary = ConvertSummary()
    t0 = time.perf_counter()
    bar = tqdm(total=len(paths), unit="segment", disable=not progress)
    jobs = [(str(p), str(out)) for p in paths]
    if workers <= 1:
        results = (convert_segment(*job) for job in jobs)
        _collect(results, summary, bar)
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            _collect(pool.imap_unordered(_convert_job, jobs), summary, bar)
    bar.close()
    summary.seconds = time.perf_counter() - t0
    write_root_index(out)
    return summary


def _convert_job(job: tuple[str, str]) -> SegmentResult:
    return convert_segment(*job)


def _collect(results, summary: ConvertSummary, bar) -> None:
    for result in results:
        summary.add(result)
        bar.update(1)
        bar.set_postfix(frames=summary.frames, errors=summary.frame_errors)


def write_root_index(out: str | os.PathLike) -> dict:
    """Rewrite ``out/index.json`` from the completed segment directories (atomically)."""
    out = Path(out)
    segments = []
    for meta_path in sorted(out.glob("*/meta.json")):
        meta = json.loads(meta_path.read_text())
        segments.append({"name": meta_path.parent.name, "frames": len(meta["frames"]),
                         "errors": len(meta.get("errors", []))})
    index = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "segments": segments}
    tmp = out / f"index.json{PARTIAL_SUFFIX}.{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(index, indent=1))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, out / "index.json")
    except OSError as exc:
        raise DataError(f"cannot write index.json: {exc}", source=str(out)) from None
    finally:
        tmp.unlink(missing_ok=True)
    return index


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------

class ConvertedSegment:
    """Random access to one converted segment; ``segment[i]`` is a :class:`SensorFrame`.

    Arrays are memory-mapped on first use, so opening is cheap and an instance can be sent to
    DataLoader workers before use.
    """

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        meta_path = self.directory / "meta.json"
        if not meta_path.is_file():
            raise DataError("not a converted segment (no meta.json)", source=str(directory))
        self.meta = json.loads(meta_path.read_text())
        if self.meta.get("format") != FORMAT_NAME or self.meta.get("version") != FORMAT_VERSION:
            raise DataError(f"unsupported format {self.meta.get('format')!r} version "
                            f"{self.meta.get('version')!r}", source=str(meta_path))
        self._arrays: dict[str, np.ndarray] | None = None
        self._ids: list[str] | None = None
        self._calibrations = {name: _calibration_from_json(name, c)
                              for name, c in self.meta["cameras"].items()}

    def __len__(self) -> int:
        return len(self.meta["frames"])

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_arrays"] = None                  # re-map in the worker
        return state

    def _array(self, name: str) -> np.ndarray:
        if self._arrays is None:
            self._arrays = {}
            for key, spec in self.meta["arrays"].items():
                shape = tuple(spec["shape"])
                if shape[0] == 0:
                    self._arrays[key] = np.zeros(shape, spec["dtype"])
                else:
                    self._arrays[key] = np.memmap(self.directory / key, spec["dtype"], "r",
                                                  shape=shape)
            size = self.meta["images_bytes"]
            self._arrays["images.jpg"] = np.memmap(self.directory / "images.jpg", np.uint8,
                                                   "r") if size else np.zeros(0, np.uint8)
        return self._arrays[name]

    def _box_ids(self) -> list[str]:
        if self._ids is None:
            self._ids = (self.directory / "box_ids.txt").read_text("utf-8").split("\n")[:-1]
        return self._ids

    def __getitem__(self, i: int) -> SensorFrame:
        n = len(self)
        if not isinstance(i, (int, np.integer)) or not -n <= i < n:
            raise IndexError(f"{self.directory}: frame index {i!r} out of range ({n} frames)")
        i = int(i) % n
        info = self.meta["frames"][i]
        stamp_ns = int(info["stamp_ns"])
        return SensorFrame(
            stamp_ns=stamp_ns, sequence_id=info["sequence_id"],
            frame_index=int(info["frame_index"]), lidar=self._lidar(i, stamp_ns),
            cameras=self._cameras(i),
            ego_pose=EgoPose(stamp_ns, np.array(self._array("poses.f64")[i]))
            if info["has_pose"] else None,
            boxes=self._boxes(i) if info["has_labels"] else None, source="waymo")

    def _lidar(self, i: int, stamp_ns: int) -> LidarSweep | None:
        offsets = self._array("point_offsets.i64")
        a, b = int(offsets[i]), int(offsets[i + 1])
        if a == b and self.meta["lidar_T_vehicle_sensor"] is None:
            return None
        T = self.meta["lidar_T_vehicle_sensor"]
        calibration = Calibration("TOP", np.array(T).reshape(4, 4)) if T else None
        return LidarSweep("lidar", stamp_ns, np.array(self._array("points.f32")[a:b]),
                          LIDAR_COLUMNS, np.array(self._array("laser_id.i8")[a:b]),
                          np.array(self._array("return_index.i8")[a:b]), calibration)

    def _boxes(self, i: int) -> Boxes3D:
        offsets = self._array("box_offsets.i64")
        a, b = int(offsets[i]), int(offsets[i + 1])
        motion = np.array(self._array("box_motion.f32")[a:b]).reshape(-1, 4)
        num_points = np.array(self._array("box_num_points.i32")[a:b])
        return Boxes3D(
            boxes=np.array(self._array("boxes.f32")[a:b]).reshape(-1, 7),
            labels=np.array(self._array("box_labels.i32")[a:b]),
            ids=np.array(self._box_ids()[a:b], dtype=str) if b > a else None,
            velocities=motion[:, :2], accelerations=motion[:, 2:],
            num_points=num_points if (num_points >= 0).all() else None,
            difficulty=np.array(self._array("box_difficulty.i8")[a:b]))

    def _cameras(self, i: int) -> dict[str, CameraImage]:
        index = self._array("image_index.i64")[i]
        stamps = self._array("image_stamps.i64")[i]
        shutter = self._array("image_shutter.f64")[i]
        images = self._array("images.jpg")
        out = {}
        for k, name in enumerate(self.meta["camera_order"]):
            offset, length = (int(v) for v in index[k])
            if length == 0:
                continue
            direction = self.meta["cameras"][name]["rolling_shutter_direction"]
            rs = RollingShutter(direction, float(shutter[k]), int(stamps[k, 1]),
                                int(stamps[k, 2])) if direction else None
            out[name] = CameraImage(name, int(stamps[k, 0]), self._calibrations[name],
                                    encoded=images[offset:offset + length].tobytes(),
                                    rolling_shutter=rs)
        return out


def _calibration_from_json(name: str, c: dict) -> Calibration:
    return Calibration(name, np.array(c["T_vehicle_sensor"]).reshape(4, 4),
                       np.array(c["K"]).reshape(3, 3), np.array(c["distortion"]), c["width"],
                       c["height"], CameraConvention(c["camera_convention"]))


def open_converted(root: str | os.PathLike) -> list[ConvertedSegment]:
    """All converted segments under ``root`` in name order."""
    root = Path(root)
    if (root / "meta.json").is_file():
        return [ConvertedSegment(root)]
    return [ConvertedSegment(p.parent) for p in sorted(root.glob("*/meta.json"))]
