"""``perception launch sim.launch.yaml`` in a subprocess, received by a subscriber in this
process over real DDS (loopback profile, private domain): frame ids, stamps, field layouts and
the decoded data equal what the simulator produces."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from tf2_msgs.msg import TFMessage
from vision_msgs.msg import Detection3DArray

from perception.data.sim import Simulator
from perception.types import wrap_heading
from ros_nodes import topics
from ros_nodes.conversions.detections import msg_to_detections
from ros_nodes.conversions.image import image_to_rgb
from ros_nodes.conversions.pointcloud2 import RADAR_COLUMNS, cloud_to_points
from ros_nodes.conversions.stamps import stamp_to_ns
from ros_nodes.conversions.tf import tf_message_to_transforms
from ros_nodes.node_base import latched_qos, reliable_qos, sensor_qos

SEED = 4
NS = 1_000_000_000


def _subscribe(node, msg_type, topic, qos, store):
    node.create_subscription(msg_type, topic, store.append, qos)


def test_sim_launch_cross_process(launch, ros_node, spin):
    received = {"lidar": [], "image": [], "info": [], "radar": [], "tf": [], "truth": []}
    qos = sensor_qos(20)
    _subscribe(ros_node, PointCloud2, topics.LIDAR_POINTS, qos, received["lidar"])
    _subscribe(ros_node, Image, topics.camera_image("FRONT"), qos, received["image"])
    _subscribe(ros_node, CameraInfo, topics.camera_info("FRONT"), qos, received["info"])
    _subscribe(ros_node, PointCloud2, topics.radar_points("RADAR_FRONT"), qos, received["radar"])
    _subscribe(ros_node, TFMessage, topics.TF_STATIC, latched_qos(), received["tf"])
    _subscribe(ros_node, Detection3DArray, topics.GROUND_TRUTH, reliable_qos(),
               received["truth"])

    launched = launch(["sim.launch.yaml", f"seed:={SEED}", "rate_factor:=2.0",
                       "duration_s:=30.0", "wall_clock_stamps:=false"])
    spin(ros_node, lambda: all(len(v) >= 3 for v in received.values() if v is not
                               received["tf"]) and received["tf"], "sim messages", launched)
    assert launched.process.poll() is None
    code = launched.interrupt()  # Ctrl-C stops the node cleanly
    assert code == 0, launched.output
    assert "[launch] stopping all nodes" in launched.output
    assert "[launch] sim exited with code 0" in launched.output

    sim = Simulator("tiny", seed=SEED)
    start = sim.start_stamp_ns

    # lidar: vehicle frame, float32 fields in column order, points equal the simulator's
    for cloud in received["lidar"][:3]:
        assert cloud.header.frame_id == "base_link"
        assert [(f.name, f.offset, f.datatype) for f in cloud.fields] == [
            ("x", 0, PointField.FLOAT32), ("y", 4, PointField.FLOAT32),
            ("z", 8, PointField.FLOAT32), ("intensity", 12, PointField.FLOAT32),
            ("time_offset_s", 16, PointField.FLOAT32)]
        stamp = stamp_to_ns(cloud.header.stamp)
        k, rest = divmod(stamp - start, NS // 10)
        assert rest == 0
        sweep = sim.lidar_scan(k).sweep
        points, columns = cloud_to_points(cloud, topics.LIDAR_POINTS)
        assert columns == sweep.columns
        np.testing.assert_array_equal(points, sweep.points)

    # camera: optical frame, rgb8, pixels and intrinsics equal the simulator's
    for image_msg in received["image"][:3]:
        assert image_msg.header.frame_id == "front_optical" and image_msg.encoding == "rgb8"
        k, rest = divmod(stamp_to_ns(image_msg.header.stamp) - start, NS // 10)
        assert rest == 0
        expected = sim.render_camera("FRONT", k).image
        np.testing.assert_array_equal(image_to_rgb(image_msg), expected.image)
    info = received["info"][0]
    assert info.header.frame_id == "front_optical"
    np.testing.assert_array_equal(np.asarray(info.k).reshape(3, 3), expected.calibration.K)

    # radar: the six standard fields, equal to the simulator's columns
    for cloud in received["radar"][:3]:
        assert cloud.header.frame_id == "base_link"
        assert [f.name for f in cloud.fields] == ["x", "y", "z", "doppler",
                                                  "doppler_compensated", "rcs"]
        stamp = stamp_to_ns(cloud.header.stamp)
        k = round((stamp - start) * 13 / NS)
        scan = sim.radar_scan("RADAR_FRONT", k)
        assert scan.stamp_ns == stamp
        points, _ = cloud_to_points(cloud, "radar")
        index = [scan.columns.index(name) for name in RADAR_COLUMNS]
        np.testing.assert_array_equal(points, scan.points[:, index])

    # tf_static: vehicle -> lidar, radar and camera optical frames
    transforms = tf_message_to_transforms(received["tf"][0], "base_link")
    frame = next(iter(sim.frames(1)))
    assert set(transforms) == {"top", "radar_front", "front_optical"}
    np.testing.assert_allclose(transforms["front_optical"],
                               frame.cameras["FRONT"].calibration.T_vehicle_optical, atol=1e-9)
    np.testing.assert_allclose(transforms["top"], frame.lidar.calibration.T_vehicle_sensor,
                               atol=1e-9)

    # ground truth at the sweep stamps
    truth = received["truth"][0]
    stamp = stamp_to_ns(truth.header.stamp)
    k = (stamp - start) // (NS // 10)
    boxes = sim.ground_truth(stamp, sim.lidar_scan(k).sweep)
    detections = msg_to_detections(truth, topics.GROUND_TRUTH)
    np.testing.assert_array_equal(detections.labels, boxes.labels)
    np.testing.assert_allclose(detections.boxes[:, :6], boxes.boxes[:, :6], atol=1e-4)
    heading_error = wrap_heading(detections.boxes[:, 6].astype(np.float64) - boxes.boxes[:, 6])
    assert np.abs(heading_error).max() < 1e-5  # -pi and +pi are the same heading
    assert [d.id for d in truth.detections] == [str(i) for i in boxes.ids]


def test_node_death_is_reported_with_its_exit_code(launch):
    launched = launch(["sim.launch.yaml", "seed:=-1"])
    assert launched.wait() == 1
    assert "[launch] sim died with exit code 2" in launched.output
    refused = [line for line in launched.lines if "seed: value -1 out of range" in line]
    assert refused and refused[0].startswith("[sim] invalid parameters, not starting: ")
