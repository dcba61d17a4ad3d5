"""SensorFrames -> Waymo Open Dataset v1 ``Frame`` TFRecords, so Waymo tools read our data.

The inverse of :mod:`perception.data.waymo`: lidar points are projected back into range
images (:func:`~perception.data.waymo_range_image.points_to_range_image`) stored as compressed
matrices, cameras and labels keep their Waymo fields. What is lost on the way is listed in
``docs/datasets.md`` (sub-microsecond stamps, extra lidar columns, radars). Only the protobuf
messages of ``waymo_open_dataset`` are used, never TensorFlow.
"""

from __future__ import annotations

import io
import os
import zlib
from collections.abc import Iterable

import numpy as np

from ..errors import ConversionError
from ..types import Boxes3D, CameraConvention, CameraImage, LidarSweep, SensorFrame
from .tfrecord import write_records
from .waymo import CAMERA_IDS, LASER_NAMES, SHUTTER_DIRECTIONS, TOP_LASER_ID
from .waymo_matrix import compress_matrix, encode_zero_matrix_int32
from .waymo_objects import fill_label
from .waymo_range_image import (
    POSE_CHANNELS,
    LaserGeometry,
    points_to_range_image,
    rpy_from_rotation,
    uniform_inclinations,
)


def default_laser_geometries() -> dict[int, LaserGeometry]:
    """A Waymo-like five-laser rig: TOP 64 x 2650 and four 200 x 600 short-range lasers.

    The TOP inclinations are non-uniform (denser near the horizon), as on the real sensor. The
    mounting positions are plausible values, not a real vehicle's calibration.
    """
    from ..geometry import make_transform, rotation_z

    t = np.linspace(0.0, 1.0, 64)
    top_incl = -0.31 + 0.355 * (1.0 - (1.0 - t) ** 1.6)     # ascending, -17.8 .. +2.6 deg
    short_incl = uniform_inclinations(-np.pi / 2, np.pi / 6, 200)
    mounts = {1: (0.0, (1.43, 0.0, 2.18)), 2: (0.0, (4.07, 0.0, 0.69)),
              3: (np.pi / 2, (3.24, 1.03, 0.98)), 4: (-np.pi / 2, (3.24, -1.03, 0.98)),
              5: (np.pi, (-1.15, 0.0, 0.46))}
    out = {}
    for laser_id, (yaw, xyz) in mounts.items():
        top = laser_id == TOP_LASER_ID
        out[laser_id] = LaserGeometry(LASER_NAMES[laser_id], laser_id,
                                      make_transform(rotation_z(yaw), xyz),
                                      top_incl if top else short_incl, 2650 if top else 600)
    return out


def sensor_frame_to_proto(frame: SensorFrame,
                          lasers: dict[int, LaserGeometry] | None = None,
                          zlib_level: int = 6):
    """Build a Waymo ``Frame`` proto from a :class:`SensorFrame`.

    Lidar points go to the laser named by ``laser_id`` (all to TOP when the sweep has no laser
    ids) and are projected into that laser's range images (:func:`points_to_range_image`).
    The TOP per-pixel pose is written as the frame pose at every pixel (no motion within the
    sweep), so the official decoder reproduces the same points. Stamps are truncated to
    microseconds. Cameras must be named as Waymo cameras (``FRONT`` ...).

    Raises:
        ConversionError: a camera that Waymo cannot name, or points of a laser the rig lacks.
    """
    from waymo_open_dataset import dataset_pb2

    lasers = lasers if lasers is not None else default_laser_geometries()
    proto = dataset_pb2.Frame()
    proto.context.name = frame.sequence_id
    proto.timestamp_micros = frame.stamp_ns // 1000
    T_world_vehicle = frame.ego_pose.T_world_vehicle if frame.ego_pose is not None else np.eye(4)
    proto.pose.transform.extend(T_world_vehicle.reshape(-1).tolist())
    for geometry in lasers.values():
        _write_laser_calibration(proto, geometry)
    if frame.lidar is not None:
        _write_lidar(proto, frame.lidar, lasers, T_world_vehicle, zlib_level)
    for camera in frame.cameras.values():
        _write_camera(proto, camera)
    if frame.boxes is not None:
        _write_labels(proto, frame.boxes)
    return proto


def _write_laser_calibration(proto, geometry: LaserGeometry) -> None:
    calib = proto.context.laser_calibrations.add()
    calib.name = geometry.laser_id
    calib.beam_inclinations.extend(geometry.beam_inclinations_rad.tolist())
    calib.beam_inclination_min = float(geometry.beam_inclinations_rad[0])
    calib.beam_inclination_max = float(geometry.beam_inclinations_rad[-1])
    calib.extrinsic.transform.extend(geometry.T_vehicle_sensor.reshape(-1).tolist())


def _write_lidar(proto, lidar: LidarSweep, lasers: dict[int, LaserGeometry],
                 T_world_vehicle: np.ndarray, zlib_level: int) -> None:
    features = np.zeros((len(lidar), 2), np.float32)
    for j, name in enumerate(("intensity", "elongation")):
        if name in lidar.columns:
            features[:, j] = lidar.column(name)
    laser_ids = lidar.laser_id if lidar.laser_id is not None \
        else np.full(len(lidar), TOP_LASER_ID, np.int8)
    unknown = sorted(set(np.unique(laser_ids).tolist()) - set(lasers))
    if unknown:
        raise ConversionError(f"lidar points from laser id(s) {unknown} but the rig has only "
                              f"{sorted(lasers)}")
    for laser_id, geometry in sorted(lasers.items()):
        keep = laser_ids == laser_id
        _write_laser(proto, laser_id, geometry, lidar.xyz[keep], features[keep],
                     T_world_vehicle, zlib_level)


def _write_laser(proto, laser_id: int, geometry: LaserGeometry, xyz: np.ndarray,
                 features: np.ndarray, T_world_vehicle: np.ndarray, zlib_level: int) -> None:
    """Add one laser's two range images (and the TOP pixel pose) to ``proto``.

    Args:
        laser_id: the ``LaserName`` the images are written under.
        xyz: (N, 3) vehicle-frame points of this laser; features: (N, 2) intensity, elongation.
        T_world_vehicle: (4, 4) frame pose, written as the pose of every TOP pixel.
    """
    first, second = points_to_range_image(xyz, features, geometry)
    laser = proto.lasers.add()
    laser.name = laser_id
    # Empty camera projections keep the official parser (which reads them) working.
    no_projection = zlib.compress(
        encode_zero_matrix_int32((geometry.height, geometry.width, 6)), zlib_level)
    for ri, image in ((laser.ri_return1, first), (laser.ri_return2, second)):
        ri.range_image_compressed = compress_matrix(image, zlib_level)
        ri.camera_projection_compressed = no_projection
    if laser_id == TOP_LASER_ID:
        pose = np.empty((geometry.height, geometry.width, POSE_CHANNELS), np.float32)
        pose[..., :3] = rpy_from_rotation(T_world_vehicle[:3, :3])
        pose[..., 3:] = T_world_vehicle[:3, 3]
        laser.ri_return1.range_image_pose_compressed = compress_matrix(pose, zlib_level)


def _write_camera(proto, camera: CameraImage) -> None:
    from ..geometry.camera import T_WAYMO_FROM_OPTICAL
    from ..geometry.transforms import invert_transform

    if camera.name not in CAMERA_IDS:
        raise ConversionError(f"camera {camera.name!r} has no Waymo name; expected one of "
                              f"{sorted(CAMERA_IDS)}")
    calib = camera.calibration
    T = calib.T_vehicle_sensor
    if calib.camera_convention is CameraConvention.OPTICAL:
        T = calib.T_vehicle_optical @ invert_transform(T_WAYMO_FROM_OPTICAL)
    c = proto.context.camera_calibrations.add()
    c.name = CAMERA_IDS[camera.name]
    c.intrinsic.extend([calib.K[0, 0], calib.K[1, 1], calib.K[0, 2], calib.K[1, 2],
                        *calib.distortion.tolist()])
    c.extrinsic.transform.extend(T.reshape(-1).tolist())
    c.width, c.height = calib.width, calib.height
    image = proto.images.add()
    image.name = CAMERA_IDS[camera.name]
    image.image = camera.encoded if camera.encoded is not None else _jpeg(camera.pixels)
    image.pose_timestamp = camera.stamp_ns * 1e-9
    shutter = camera.rolling_shutter
    if shutter is not None:
        c.rolling_shutter_direction = {v: k for k, v in SHUTTER_DIRECTIONS.items()}.get(
            shutter.direction, 0)
        image.shutter = shutter.shutter_s
        image.camera_trigger_time = shutter.trigger_stamp_ns * 1e-9
        image.camera_readout_done_time = shutter.readout_done_stamp_ns * 1e-9


def _jpeg(pixels: np.ndarray, quality: int = 95) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def _write_labels(proto, boxes: Boxes3D) -> None:
    for i in range(len(boxes)):
        label = proto.laser_labels.add()
        fill_label(label, boxes.boxes[i], int(boxes.labels[i]))
        label.id = str(boxes.ids[i]) if boxes.ids is not None else str(i)
        if boxes.velocities is not None:
            label.metadata.speed_x, label.metadata.speed_y = boxes.velocities[i].tolist()
        if boxes.accelerations is not None:
            label.metadata.accel_x, label.metadata.accel_y = boxes.accelerations[i].tolist()
        if boxes.num_points is not None:
            label.num_lidar_points_in_box = int(boxes.num_points[i])
        label.detection_difficulty_level = int(boxes.difficulty[i])


def write_frames(path: str | os.PathLike, frames: Iterable[SensorFrame],
                 lasers: dict[int, LaserGeometry] | None = None, zlib_level: int = 6) -> int:
    """Write SensorFrames as a Waymo segment TFRecord (atomically). Returns the frame count.

    See :func:`sensor_frame_to_proto` for the mapping; ``lasers`` defaults to
    :func:`default_laser_geometries`.
    """
    lasers = lasers if lasers is not None else default_laser_geometries()
    return write_records(path, (sensor_frame_to_proto(f, lasers, zlib_level).SerializeToString()
                                for f in frames))
