"""Bags written with ``rosbags`` directly (not with our converter), as other recorders write
them: a Velodyne-style cloud layout, odometry, no ``/tf_static``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

VELODYNE = np.dtype({"names": ["x", "y", "z", "intensity", "ring", "time"],
                     "formats": ["<f4", "<f4", "<f4", "<f4", "<u2", "<f4"],
                     "offsets": [0, 4, 8, 16, 20, 24], "itemsize": 32})
"""x, y, z, 4 bytes of padding, intensity, ring, 2 bytes of padding, time (s), as
velodyne_pointcloud writes them."""
START_NS = 1_700_000_000_000_000_000
PERIOD_NS = 100_000_000
BLOB_DEFINITION = "uint8[] payload\nstring note\n"


def velodyne_points(k: int, n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(k)
    points = np.zeros(n, VELODYNE)
    points["x"] = rng.uniform(-30, 30, n)
    points["y"] = rng.uniform(-30, 30, n)
    points["z"] = rng.uniform(-2, 2, n)
    points["intensity"] = rng.uniform(0, 100, n)
    points["ring"] = rng.integers(0, 32, n)
    points["time"] = np.linspace(-0.1, 0.0, n)
    return points


def _cloud(store, points: np.ndarray, stamp_ns: int, frame_id: str):
    t = store.types
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    fields = [t["sensor_msgs/msg/PointField"](name=name, offset=VELODYNE.fields[name][1],
                                             datatype={"<f4": 7, "<u2": 4}[
                                                 VELODYNE.fields[name][0].str], count=1)
              for name in VELODYNE.names]
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](
        sec=sec, nanosec=nanosec), frame_id=frame_id)
    return t["sensor_msgs/msg/PointCloud2"](
        header=header, height=1, width=len(points), fields=fields, is_bigendian=False,
        point_step=VELODYNE.itemsize, row_step=VELODYNE.itemsize * len(points),
        data=points.view(np.uint8), is_dense=True)


def _odometry(store, stamp_ns: int, x_m: float):
    t = store.types
    sec, nanosec = divmod(stamp_ns, 1_000_000_000)
    header = t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](
        sec=sec, nanosec=nanosec), frame_id="map")
    pose = t["geometry_msgs/msg/Pose"](
        position=t["geometry_msgs/msg/Point"](x=x_m, y=0.0, z=0.0),
        orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0))
    covariance = np.zeros(36)
    twist = t["geometry_msgs/msg/Twist"](linear=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0,
                                                                                z=0.0),
                                         angular=t["geometry_msgs/msg/Vector3"](x=0.0, y=0.0,
                                                                                 z=0.0))
    return t["nav_msgs/msg/Odometry"](
        header=header, child_frame_id="base_link",
        pose=t["geometry_msgs/msg/PoseWithCovariance"](pose=pose, covariance=covariance),
        twist=t["geometry_msgs/msg/TwistWithCovariance"](twist=twist, covariance=covariance))


def write_velodyne_bag(path: Path, storage: str = "sqlite3", sweeps: int = 3,
                       garbage_sweep: int | None = None, blob: bool = False) -> list[np.ndarray]:
    """Sweeps on ``/velodyne_points`` (frame ``velodyne``), odometry on ``/odom`` every
    50 ms; ``garbage_sweep``: that sweep's bytes are cut short; ``blob``: a topic of a custom
    type ``acme_msgs/msg/Blob``. Returns the points written."""
    from rosbags.rosbag2 import StoragePlugin, Writer
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_JAZZY)
    if blob:
        store.register(get_types_from_msg(BLOB_DEFINITION, "acme_msgs/msg/Blob"))
    plugin = StoragePlugin.SQLITE3 if storage == "sqlite3" else StoragePlugin.MCAP
    written = []
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        lidar = writer.add_connection("/velodyne_points", "sensor_msgs/msg/PointCloud2",
                                      typestore=store)
        odom = writer.add_connection("/odom", "nav_msgs/msg/Odometry", typestore=store)
        blobs = writer.add_connection("/blob", "acme_msgs/msg/Blob", typestore=store) \
            if blob else None
        for k in range(2 * sweeps + 2):
            stamp = START_NS + (k - 1) * PERIOD_NS // 2
            writer.write(odom, stamp, store.serialize_cdr(_odometry(store, stamp, 0.5 * k),
                                                          "nav_msgs/msg/Odometry"))
            if k % 2 or k // 2 >= sweeps:
                continue
            points = velodyne_points(k // 2)
            raw = store.serialize_cdr(_cloud(store, points, stamp, "velodyne"),
                                      "sensor_msgs/msg/PointCloud2")
            if garbage_sweep == k // 2:
                raw = raw[:len(raw) // 3]
            else:
                written.append(points)
            writer.write(lidar, stamp, raw)
            if blobs is not None:
                msg = store.types["acme_msgs/msg/Blob"](payload=np.zeros(4, np.uint8), note="x")
                writer.write(blobs, stamp, store.serialize_cdr(msg, "acme_msgs/msg/Blob"))
    return written
