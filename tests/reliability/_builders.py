"""Small valid inputs that the fuzz targets start from and mutate.

Everything is built here from code (no real data), so the fuzz targets run where the
fixtures are absent: a Waymo ``Frame`` with two lasers (TOP with explicit inclinations and a
per-pixel pose, FRONT with uniform ones), one camera and three labels; KITTI label and
calibration text; a nuScenes radar ``.pcd``; a nuScenes devkit release with one sample.
"""

from __future__ import annotations

import io
import json
import zlib
from pathlib import Path

import numpy as np

from perception.data.waymo_matrix import compress_matrix, encode_zero_matrix_int32

# (laser id, rows, columns, explicit inclinations)
LASERS = ((1, 8, 24, True), (2, 4, 12, False))


def tiny_jpeg(width: int = 16, height: int = 12) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    pixels = (np.arange(width * height * 3) % 251).astype(np.uint8).reshape(height, width, 3)
    Image.fromarray(pixels).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def waymo_frame(seed: int = 0):
    """A small valid ``dataset_pb2.Frame`` (see the module docstring)."""
    from waymo_open_dataset import dataset_pb2

    rng = np.random.default_rng(seed)
    frame = dataset_pb2.Frame()
    frame.context.name = f"fuzz_{seed}"
    frame.timestamp_micros = 1_600_000_000_000_000 + seed
    pose = np.eye(4)
    pose[:3, 3] = (10.0, -5.0, 1.0)
    frame.pose.transform.extend(pose.ravel().tolist())
    for laser_id, h, w, explicit in LASERS:
        calib = frame.context.laser_calibrations.add()
        calib.name = laser_id
        extrinsic = np.eye(4)
        extrinsic[:3, 3] = (1.0, 0.0, 2.0)
        calib.extrinsic.transform.extend(extrinsic.ravel().tolist())
        if explicit:
            calib.beam_inclinations.extend(np.linspace(-0.3, 0.05, h).tolist())
        calib.beam_inclination_min, calib.beam_inclination_max = -0.5, 0.2
        laser = frame.lasers.add()
        laser.name = laser_id
        for ri in (laser.ri_return1, laser.ri_return2):
            image = np.zeros((h, w, 4), np.float32)
            image[..., 0] = rng.uniform(-1.0, 60.0, (h, w))
            image[..., 1:3] = rng.uniform(0.0, 1.0, (h, w, 2))
            ri.range_image_compressed = compress_matrix(image)
            ri.camera_projection_compressed = zlib.compress(
                encode_zero_matrix_int32((h, w, 6)))
        if laser_id == 1:
            pixel_pose = np.zeros((h, w, 6), np.float32)
            pixel_pose[..., 2] = np.linspace(0.0, 0.02, w)[None, :]
            pixel_pose[..., 3:] = pose[:3, 3]
            laser.ri_return1.range_image_pose_compressed = compress_matrix(pixel_pose)
    calib = frame.context.camera_calibrations.add()
    calib.name = 1
    calib.intrinsic.extend([500.0, 500.0, 8.0, 6.0, 0.01, -0.02, 0.0, 0.0, 0.0])
    calib.extrinsic.transform.extend(np.eye(4).ravel().tolist())
    calib.width, calib.height = 16, 12
    calib.rolling_shutter_direction = 2
    image = frame.images.add()
    image.name = 1
    image.image = tiny_jpeg()
    image.pose_timestamp = frame.timestamp_micros * 1e-6
    image.shutter = 0.01
    image.camera_trigger_time = image.pose_timestamp - 0.02
    image.camera_readout_done_time = image.pose_timestamp + 0.02
    for k, kind in enumerate((1, 2, 4)):
        label = frame.laser_labels.add()
        label.id = f"obj{k}"
        label.type = kind
        label.box.center_x, label.box.center_y, label.box.center_z = 5.0 * k, 1.0, 0.5
        label.box.length, label.box.width, label.box.height = 4.0, 2.0, 1.5
        label.box.heading = 0.1 * k
        label.num_lidar_points_in_box = 10
    return frame


KITTI_CALIB = """\
P0: 7.215377e+02 0.000000e+00 6.095593e+02 0.000000e+00 0.000000e+00 7.215377e+02 1.728540e+02 0.000000e+00 0.000000e+00 0.000000e+00 1.000000e+00 0.000000e+00
P2: 7.215377e+02 0.000000e+00 6.095593e+02 4.485728e+01 0.000000e+00 7.215377e+02 1.728540e+02 2.163791e-01 0.000000e+00 0.000000e+00 1.000000e+00 2.745884e-03
R0_rect: 9.999239e-01 9.837760e-03 -7.445048e-03 -9.869795e-03 9.999421e-01 -4.278459e-03 7.402527e-03 4.351614e-03 9.999631e-01
Tr_velo_to_cam: 7.533745e-03 -9.999714e-01 -6.166020e-04 -4.069766e-03 1.480249e-02 7.280733e-04 -9.998902e-01 -7.631618e-02 9.998621e-01 7.523790e-03 1.480755e-02 -2.717806e-01
"""

KITTI_LABELS = """\
Pedestrian 0.00 0 -0.20 712.40 143.00 810.73 307.92 1.89 0.48 1.20 1.84 1.47 8.41 0.01
Car 0.00 0 1.85 387.63 181.54 423.81 203.12 1.67 1.87 3.69 -16.53 2.39 58.49 1.57
Cyclist 0.50 1 -1.65 676.60 163.95 688.98 193.93 1.86 0.60 2.02 4.59 1.32 45.84 -1.55
DontCare -1 -1 -10 503.89 169.71 590.61 190.13 -1 -1 -1 -1000 -1000 -1000 -10
"""

PCD_HEADER = (
    "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\n"
    "FIELDS x y z dyn_prop id rcs vx vy vx_comp vy_comp is_quality_valid ambig_state x_rms "
    "y_rms invalid_state pdh0 vx_rms vy_rms\n"
    "SIZE 4 4 4 1 2 4 4 4 4 4 1 1 1 1 1 1 1 1\n"
    "TYPE F F F I I F F F F F I I I I I I I I\n"
    "COUNT 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1\n"
    "WIDTH {n}\nHEIGHT 1\nVIEWPOINT 0 0 0 1 0 0 0\nPOINTS {n}\nDATA binary\n")


def radar_pcd(n: int = 6, seed: int = 0) -> bytes:
    """A nuScenes radar ``.pcd`` (binary, the 18 ARS408 fields) with ``n`` points."""
    from perception.data.nuscenes import RADAR_FIELDS

    rng = np.random.default_rng(seed)
    dtype = np.dtype([(name, t) for name, t in zip(
        RADAR_FIELDS, ["<f4", "<f4", "<f4", "i1", "<i2", "<f4", "<f4", "<f4", "<f4", "<f4",
                       "i1", "i1", "i1", "i1", "i1", "i1", "i1", "i1"])])
    rec = np.zeros(n, dtype)
    rec["x"] = rng.uniform(1, 80, n)
    rec["y"] = rng.uniform(-20, 20, n)
    rec["vx"], rec["vy"] = rng.normal(0, 5, n), rng.normal(0, 5, n)
    rec["vx_comp"], rec["vy_comp"] = rng.normal(0, 2, n), rng.normal(0, 2, n)
    rec["rcs"] = rng.uniform(-5, 20, n)
    return PCD_HEADER.format(n=n).encode() + rec.tobytes()


def quaternion_yaw(yaw: float) -> list[float]:
    return [float(np.cos(yaw / 2)), 0.0, 0.0, float(np.sin(yaw / 2))]


def devkit_tables() -> dict[str, list[dict]]:
    """The eight JSON tables of a one-sample nuScenes release (LIDAR_TOP only, two sweeps,
    two annotations of one instance over two samples)."""
    sensors = [{"token": "s_lidar", "channel": "LIDAR_TOP", "modality": "lidar"}]
    calibrated = [{"token": "cs_lidar", "sensor_token": "s_lidar",
                   "translation": [0.9, 0.0, 1.8], "rotation": quaternion_yaw(0.01),
                   "camera_intrinsic": []}]
    poses = [{"token": f"ep{k}", "timestamp": 1_532_402_927_000_000 + k * 50_000,
              "translation": [100.0 + k, 50.0, 0.0], "rotation": quaternion_yaw(0.2)}
             for k in range(2)]
    samples = [{"token": f"smp{k}", "timestamp": 1_532_402_927_000_000 + k * 50_000,
                "scene_token": "scene0", "prev": f"smp{k - 1}" if k else "",
                "next": "smp1" if k == 0 else ""} for k in range(2)]
    sample_data = [{"token": f"sd{k}", "sample_token": f"smp{k}", "ego_pose_token": f"ep{k}",
                    "calibrated_sensor_token": "cs_lidar",
                    "timestamp": 1_532_402_927_000_000 + k * 50_000,
                    "filename": f"samples/LIDAR_TOP/sweep{k}.pcd.bin", "is_key_frame": True,
                    "prev": f"sd{k - 1}" if k else "", "next": "sd1" if k == 0 else "",
                    "width": 0, "height": 0} for k in range(2)]
    categories = [{"token": "cat_car", "name": "vehicle.car"}]
    instances = [{"token": "inst0", "category_token": "cat_car", "nbr_annotations": 2}]
    annotations = [{"token": f"ann{k}", "sample_token": f"smp{k}", "instance_token": "inst0",
                    "translation": [110.0 + k, 52.0, 0.8], "size": [1.9, 4.5, 1.6],
                    "rotation": quaternion_yaw(0.3), "num_lidar_pts": 40,
                    "prev": f"ann{k - 1}" if k else "", "next": "ann1" if k == 0 else ""}
                   for k in range(2)]
    return {"sample": samples, "sample_data": sample_data, "calibrated_sensor": calibrated,
            "ego_pose": poses, "sample_annotation": annotations, "instance": instances,
            "category": categories, "sensor": sensors}


def write_devkit(root: Path, tables: dict, version: str = "v1.0-mini") -> None:
    """Write ``tables`` (any JSON values) and the lidar files they name under ``root``."""
    (root / version).mkdir(parents=True, exist_ok=True)
    lidar_dir = root / "samples" / "LIDAR_TOP"
    lidar_dir.mkdir(parents=True, exist_ok=True)
    points = np.zeros((20, 5), np.float32)
    points[:, 0] = np.linspace(1, 20, 20)
    for k in range(2):
        points.tofile(lidar_dir / f"sweep{k}.pcd.bin")
    for name, rows in tables.items():
        (root / version / f"{name}.json").write_text(json.dumps(rows, allow_nan=True))


# ------------------------------------------------------------------------------------------
# rosbag2 bags with our topic names (replay inputs)
# ------------------------------------------------------------------------------------------

BAG_START_NS = 1_700_000_000_000_000_000
BAG_PERIOD_NS = 100_000_000
BAG_SWEEPS = 3


def bag_messages(sweeps: int = BAG_SWEEPS, points: int = 48) -> list[tuple[str, int, object]]:
    """``(topic, log time ns, rosbags message)`` of a small valid log in log-time order, on
    our topic names: ``/tf_static`` (vehicle -> lidar, camera, radar), and per sweep a lidar
    ``PointCloud2`` (x, y, z, intensity, time_offset_s), a JPEG ``CompressedImage`` with its
    ``CameraInfo``, a radar ``PointCloud2``, an ego ``PoseStamped`` and a ground-truth
    ``Detection3DArray`` of one box."""
    from perception.replay.typestore import RosbagsFactory
    from perception.rosmsg import topics
    from perception.rosmsg.detections import boxes_to_msg
    from perception.rosmsg.image import calibration_to_camera_info
    from perception.rosmsg.pointcloud2 import points_to_cloud, radar_scan_to_cloud
    from perception.rosmsg.tf import ego_pose_to_pose_stamped, transforms_to_tf_message
    from perception.types import Boxes3D, Calibration, CameraConvention, EgoPose, RadarScan

    factory = RosbagsFactory()
    lidar_T = np.eye(4)
    lidar_T[:3, 3] = (1.0, 0.0, 1.8)
    camera_T = np.array([[0.0, 0.0, 1.0, 1.5], [-1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 1.4],
                         [0.0, 0.0, 0.0, 1.0]])              # vehicle <- optical
    radar_T = np.eye(4)
    radar_T[:3, 3] = (3.5, 0.0, 0.5)
    out: list[tuple[str, int, object]] = [(topics.TF_STATIC, BAG_START_NS, transforms_to_tf_message(
        factory, {"top": lidar_T, "front_optical": camera_T, "radar_front": radar_T},
        "base_link", BAG_START_NS))]
    calibration = Calibration("FRONT", camera_T, K=np.array([[20.0, 0, 8], [0, 20.0, 6],
                                                             [0, 0, 1]]),
                              distortion=np.zeros(5), width=16, height=12,
                              camera_convention=CameraConvention.OPTICAL)
    jpeg = tiny_jpeg()
    rng = np.random.default_rng(7)
    for k in range(sweeps):
        t = BAG_START_NS + k * BAG_PERIOD_NS
        cloud = np.zeros((points, 5), np.float32)
        cloud[:, 0] = rng.uniform(2.0, 30.0, points)
        cloud[:, 1] = rng.uniform(-10.0, 10.0, points)
        cloud[:, 2] = rng.uniform(-1.5, 1.0, points)
        cloud[:, 3] = rng.uniform(0.0, 1.0, points)
        cloud[:, 4] = np.linspace(-0.09, 0.0, points)
        radar = np.zeros((4, 6), np.float32)
        radar[:, 0] = rng.uniform(5.0, 40.0, 4)
        radar[:, 3:] = rng.normal(0.0, 2.0, (4, 3))
        pose = np.eye(4)
        pose[0, 3] = 0.5 * k
        boxes = Boxes3D(np.array([[10.0, 1.0, 0.0, 4.0, 2.0, 1.5, 0.1]], np.float32),
                        np.zeros(1, np.int64), ids=np.array([1]))
        compressed = factory.new(
            "sensor_msgs/msg/CompressedImage", format="jpeg",
            header=factory.new("std_msgs/msg/Header", frame_id="front_optical",
                               stamp=_stamp(factory, t + 5_000_000)),
            data=np.frombuffer(jpeg, np.uint8))
        out += [
            (topics.EGO_POSE, t - 1_000_000,
             ego_pose_to_pose_stamped(factory, EgoPose(t - 1_000_000, pose), "map")),
            (topics.camera_info("FRONT"), t + 4_000_000,
             calibration_to_camera_info(factory, calibration, t + 4_000_000, "front_optical")),
            (topics.camera_compressed("FRONT"), t + 5_000_000, compressed),
            (topics.radar_points("RADAR_FRONT"), t + 6_000_000, radar_scan_to_cloud(
                factory, RadarScan("RADAR_FRONT", t + 6_000_000, radar), "radar_front")),
            (topics.LIDAR_POINTS, t + 10_000_000, points_to_cloud(
                factory, cloud, ("x", "y", "z", "intensity", "time_offset_s"), t, "top")),
            ("/ground_truth", t + 9_000_000, boxes_to_msg(factory, boxes, t, "base_link")),
        ]
    out.sort(key=lambda m: m[1])
    return out


def _stamp(factory, stamp_ns: int):
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return factory.new("builtin_interfaces/msg/Time", sec=sec, nanosec=nanosec)


def write_bag(path: Path, messages, storage: str = "mcap") -> None:
    """Write ``(topic, log time ns, message or CDR bytes)`` into a rosbag2 directory with the
    ``rosbags`` writer (``mcap`` or ``sqlite3`` storage). A topic's type is taken from its
    first message object; CDR bytes are written as they are (malformed ones included)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from perception.replay.typestore import typestore

    store = typestore()
    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    types = {topic: msg.__msgtype__ for topic, _, msg in messages
             if not isinstance(msg, (bytes, bytearray, memoryview))}
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        connections = {topic: writer.add_connection(topic, msgtype, typestore=store)
                       for topic, msgtype in sorted(types.items())}
        for topic, log_time, msg in messages:
            raw = msg if isinstance(msg, (bytes, bytearray, memoryview)) else \
                store.serialize_cdr(msg, msg.__msgtype__)
            writer.write(connections[topic], int(log_time), bytes(raw))
