"""Round trips and malformed input for stamps, images, CameraInfo, tf, detections, tracks,
markers."""

from __future__ import annotations

import array

import numpy as np
import pytest
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CompressedImage, Image
from visualization_msgs.msg import Marker

from perception.errors import ConversionError, TimestampError
from perception.geometry import make_transform, rotation_z
from perception.types import (
    Boxes3D,
    Calibration,
    CameraImage,
    Detections,
    EgoPose,
    Modality,
    ObjectClass,
    Tracks,
)
from ros_nodes.conversions.detections import (
    boxes_to_msg,
    detections_to_msg,
    msg_to_detections,
    msg_to_tracks,
    tracks_to_msg,
)
from ros_nodes.conversions.image import (
    calibration_to_camera_info,
    camera_image_to_compressed,
    camera_image_to_image,
    camera_info_to_calibration,
    compressed_to_camera_image,
    image_to_camera_image,
    image_to_rgb,
    rgb_to_image,
)
from ros_nodes.conversions.markers import ground_truth_markers, track_markers
from ros_nodes.conversions.stamps import ns_to_stamp, stamp_to_ns
from ros_nodes.conversions.tf import (
    ego_pose_to_pose_stamped,
    matrix_to_transform,
    pose_stamped_to_ego_pose,
    sensor_mounting,
    tf_message_to_transforms,
    transform_to_matrix,
    transforms_to_tf_message,
)

STAMP_NS = 1_600_000_000_987_654_321
TOPIC = "/sensors/camera/front/image_raw"


# ------------------------------------------------------------------------------------------
# Stamps
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stamp_ns", [0, 1, 999_999_999, 1_000_000_000, STAMP_NS, -1,
                                      -1_500_000_000, (2**31 - 1) * 10**9 + 999_999_999])
def test_stamps_are_exact(stamp_ns):
    stamp = ns_to_stamp(stamp_ns)
    assert 0 <= stamp.nanosec < 10**9
    assert stamp_to_ns(stamp) == stamp_ns


def test_stamp_out_of_range_and_wrong_type():
    with pytest.raises(TimestampError, match="int32"):
        ns_to_stamp(2**31 * 10**9)
    with pytest.raises(TimestampError, match="integer"):
        ns_to_stamp(1.5)
    assert stamp_to_ns(Time(sec=1_600_000_000, nanosec=987_654_321)) == STAMP_NS


# ------------------------------------------------------------------------------------------
# Images and CameraInfo
# ------------------------------------------------------------------------------------------

def _calibration(width: int = 64, height: int = 48) -> Calibration:
    K = np.array([[50.0, 0.0, 32.0], [0.0, 52.0, 24.0], [0.0, 0.0, 1.0]])
    T = make_transform(rotation_z(0.3) @ np.array([[0, 0, 1], [-1, 0, 0], [0, -1, 0.0]]),
                       [1.5, 0.2, 2.0])
    return Calibration("FRONT", T, K=K, distortion=np.array([0.1, -0.02, 0.001, 0.002, 0.0]),
                       width=width, height=height)


def _pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (48, 64, 3), dtype=np.uint8)


def test_raw_image_round_trip_zero_copy():
    calib = _calibration()
    image = CameraImage("FRONT", STAMP_NS, calib, pixels=_pixels())
    msg = camera_image_to_image(image, "front_optical")
    assert (msg.encoding, msg.step, msg.header.frame_id) == ("rgb8", 192, "front_optical")
    back = image_to_camera_image(msg, calib, TOPIC)
    assert back.stamp_ns == STAMP_NS
    np.testing.assert_array_equal(back.pixels, image.pixels)
    assert np.shares_memory(back.pixels, np.frombuffer(msg.data, np.uint8))


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "bgra8", "mono8"])
def test_other_encodings_and_row_padding(encoding):
    rgb = _pixels(1)
    if encoding == "mono8":
        rgb = np.repeat(rgb[:, :, :1], 3, axis=2)
        raw = rgb[:, :, :1]
    elif encoding == "bgr8":
        raw = rgb[:, :, ::-1]
    else:
        alpha = np.full((48, 64, 1), 255, np.uint8)
        raw = np.concatenate([rgb[:, :, ::-1] if encoding == "bgra8" else rgb, alpha], axis=2)
    row = raw.reshape(48, -1)
    padded = np.zeros((48, row.shape[1] + 8), np.uint8)  # 8 bytes of padding per row
    padded[:, :row.shape[1]] = row
    msg = Image(height=48, width=64, encoding=encoding, step=padded.shape[1],
                data=array.array("B", padded.tobytes()))
    np.testing.assert_array_equal(image_to_rgb(msg, TOPIC), rgb)


def test_compressed_round_trip_jpeg_and_png():
    calib = _calibration()
    image = CameraImage("FRONT", STAMP_NS, calib, pixels=_pixels(2))
    png = camera_image_to_compressed(image, "front_optical", fmt="png")
    assert png.format == "png"
    back = compressed_to_camera_image(png, calib, TOPIC)
    assert not back.is_decoded and back.stamp_ns == STAMP_NS
    np.testing.assert_array_equal(back.image, image.pixels)  # PNG is lossless
    # encoded JPEG bytes pass through unchanged
    jpeg = camera_image_to_compressed(image, "front_optical", fmt="jpeg")
    again = camera_image_to_compressed(compressed_to_camera_image(jpeg, calib), "f", "jpeg")
    assert bytes(again.data) == bytes(jpeg.data)
    # JPEG is lossy: check a smooth image decodes close to the original
    ramp = np.broadcast_to(np.linspace(0, 255, 64, dtype=np.uint8)[None, :, None], (48, 64, 3))
    smooth = CameraImage("FRONT", STAMP_NS, calib, pixels=np.ascontiguousarray(ramp))
    decoded = compressed_to_camera_image(camera_image_to_compressed(smooth, "f"), calib).image
    assert np.abs(decoded.astype(int) - ramp).max() < 8


def test_camera_info_round_trip():
    calib = _calibration()
    info = calibration_to_camera_info(calib, STAMP_NS, "front_optical")
    assert info.distortion_model == "plumb_bob" and list(info.p[:3]) == [50.0, 0.0, 32.0]
    back = camera_info_to_calibration(info, "FRONT", calib.T_vehicle_sensor, "/info")
    np.testing.assert_array_equal(back.K, calib.K)
    np.testing.assert_array_equal(back.distortion, calib.distortion)
    assert (back.width, back.height) == (64, 48)
    np.testing.assert_array_equal(back.T_vehicle_optical, calib.T_vehicle_sensor)


def test_malformed_image_step_and_encoding():
    msg = rgb_to_image(_pixels(), STAMP_NS, "front_optical")
    msg.step = 64 * 3 + 4  # encoding/step no longer match the data length
    with pytest.raises(ConversionError, match="data length 9216 != step 196 x height 48") as exc:
        image_to_rgb(msg, TOPIC)
    assert TOPIC in str(exc.value) and str(STAMP_NS) in str(exc.value)
    msg = rgb_to_image(_pixels(), STAMP_NS, "front_optical")
    msg.encoding = "rgba8"  # 4 bytes per pixel need a longer step
    with pytest.raises(ConversionError, match="shorter than a row"):
        image_to_rgb(msg, TOPIC)
    msg.encoding = "16UC1"
    with pytest.raises(ConversionError, match="unsupported image encoding") as exc:
        image_to_rgb(msg, TOPIC)
    assert str(STAMP_NS) in str(exc.value)


def test_malformed_image_size_against_calibration_and_bad_compressed():
    msg = rgb_to_image(_pixels(), STAMP_NS, "front_optical")
    with pytest.raises(ConversionError, match="calibration says 32x48"):
        image_to_camera_image(msg, _calibration(width=32), TOPIC)
    bad = CompressedImage(format="jpeg", data=array.array("B", b"not an image"))
    bad.header.stamp = ns_to_stamp(STAMP_NS)
    with pytest.raises(ConversionError, match="neither JPEG nor PNG") as exc:
        compressed_to_camera_image(bad, _calibration(), TOPIC)
    assert str(STAMP_NS) in str(exc.value)
    info = calibration_to_camera_info(_calibration(), STAMP_NS, "f")
    info.distortion_model = "equidistant"
    with pytest.raises(ConversionError, match="unsupported distortion model"):
        camera_info_to_calibration(info, "FRONT", np.eye(4), "/info")


# ------------------------------------------------------------------------------------------
# tf and poses
# ------------------------------------------------------------------------------------------

def test_transform_round_trip_and_tf_chain():
    T_vehicle_lidar = make_transform(rotation_z(0.7), [0.5, -0.1, 2.1])
    T_lidar_extra = make_transform(rotation_z(-1.2), [1.0, 2.0, 3.0])
    msg = matrix_to_transform(T_vehicle_lidar, "base_link", "top", STAMP_NS)
    np.testing.assert_allclose(transform_to_matrix(msg), T_vehicle_lidar, atol=1e-12)
    assert stamp_to_ns(msg.header.stamp) == STAMP_NS

    tf = transforms_to_tf_message({"top": T_vehicle_lidar}, "base_link", STAMP_NS)
    tf.transforms.append(matrix_to_transform(T_lidar_extra, "top", "top_extra", STAMP_NS))
    tf.transforms.append(matrix_to_transform(np.eye(4), "map", "odom", STAMP_NS))
    resolved = tf_message_to_transforms(tf, "base_link", "/tf_static")
    assert set(resolved) == {"top", "top_extra"}
    np.testing.assert_allclose(resolved["top_extra"], T_vehicle_lidar @ T_lidar_extra,
                               atol=1e-12)


def test_sensor_mounting_of_a_cloud_in_the_vehicle_frame():
    """A radar cloud already in the vehicle frame keeps its sensor's mounting (its Doppler is
    radial from there) when /tf_static has the sensor's frame; else the cloud's frame."""
    T_vehicle_radar = make_transform(rotation_z(0.3), [3.8, 0.2, 0.6])
    T_vehicle_top = make_transform(rotation_z(-0.1), [1.0, 0.0, 1.8])
    resolved = tf_message_to_transforms(transforms_to_tf_message(
        {"radar_front": T_vehicle_radar, "top": T_vehicle_top}, "base_link", STAMP_NS),
        "base_link")
    np.testing.assert_allclose(sensor_mounting("RADAR_FRONT", "base_link", resolved,
                                               "base_link"), T_vehicle_radar, atol=1e-12)
    np.testing.assert_allclose(sensor_mounting("RADAR_REAR", "top", resolved, "base_link"),
                               T_vehicle_top, atol=1e-12)
    np.testing.assert_array_equal(sensor_mounting("RADAR_REAR", "base_link", resolved,
                                                  "base_link"), np.eye(4))


def test_malformed_transform():
    msg = matrix_to_transform(np.eye(4), "base_link", "top", STAMP_NS)
    msg.transform.rotation.w = 0.0
    with pytest.raises(ConversionError, match="quaternion") as exc:
        transform_to_matrix(msg, "/tf_static")
    assert "/tf_static" in str(exc.value) and str(STAMP_NS) in str(exc.value)


def test_pose_round_trip():
    pose = EgoPose(STAMP_NS, make_transform(rotation_z(2.5), [100.0, -20.0, 0.3]))
    back = pose_stamped_to_ego_pose(ego_pose_to_pose_stamped(pose, "map"), "/ego/pose")
    assert back.stamp_ns == STAMP_NS
    np.testing.assert_allclose(back.T_world_vehicle, pose.T_world_vehicle, atol=1e-12)


# ------------------------------------------------------------------------------------------
# Detections, tracks, markers
# ------------------------------------------------------------------------------------------

def _boxes(n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(3)
    boxes = np.column_stack([rng.uniform(-40, 40, (n, 3)), rng.uniform(0.5, 5, (n, 3)),
                             rng.uniform(-np.pi, np.pi, n)])
    return boxes.astype(np.float32)


LABELS = np.array([1, 2, 4, 1, 2], np.int32)


def test_detections_round_trip():
    detections = Detections(STAMP_NS, _boxes(), np.linspace(0.1, 0.9, 5).astype(np.float32),
                            LABELS, modalities=frozenset({Modality.LIDAR}))
    msg = detections_to_msg(detections, "base_link")
    assert len(msg.detections) == 5 and msg.header.frame_id == "base_link"
    assert msg.detections[1].results[0].hypothesis.class_id == "pedestrian"
    back = msg_to_detections(msg, "/perception/detections")
    assert back.stamp_ns == STAMP_NS
    np.testing.assert_array_equal(back.labels, LABELS)
    np.testing.assert_allclose(back.boxes, detections.boxes, atol=1e-5)
    np.testing.assert_array_equal(back.scores, detections.scores)


def test_ground_truth_ids_and_malformed_detections():
    boxes = Boxes3D(_boxes(), LABELS, ids=np.arange(10, 15))
    msg = boxes_to_msg(boxes, STAMP_NS, "base_link")
    assert [d.id for d in msg.detections] == ["10", "11", "12", "13", "14"]
    msg.detections[2].results[0].hypothesis.class_id = "tram"
    with pytest.raises(ConversionError, match="unknown class_id 'tram'") as exc:
        msg_to_detections(msg, "/sim/ground_truth")
    assert str(STAMP_NS) in str(exc.value)
    msg.detections[2].results = []
    with pytest.raises(ConversionError, match="no hypothesis"):
        msg_to_detections(msg, "/sim/ground_truth")


def _tracks(with_covariance: bool) -> Tracks:
    n = 5
    covariances = None
    if with_covariance:
        covariances = np.stack([np.eye(4, dtype=np.float32) * (i + 1) for i in range(n)])
    return Tracks(STAMP_NS, _boxes(), LABELS, np.array([3, 7, 9, 11, 2**40]),
                  np.random.default_rng(4).normal(size=(n, 2)).astype(np.float32),
                  np.full(n, 0.8, np.float32), np.arange(n, dtype=np.int32),
                  np.arange(n, dtype=np.int32), np.array([0, 1, 2, 1, 1], np.int8),
                  covariances=covariances)


@pytest.mark.parametrize("with_covariance", [True, False])
def test_tracks_round_trip(with_covariance):
    tracks = _tracks(with_covariance)
    back = msg_to_tracks(tracks_to_msg(tracks, "base_link"), "/perception/tracks")
    for name in ("labels", "ids", "velocities", "scores", "ages", "hits", "states"):
        np.testing.assert_array_equal(getattr(back, name), getattr(tracks, name))
    np.testing.assert_allclose(back.boxes, tracks.boxes, atol=1e-5)
    if with_covariance:
        np.testing.assert_array_equal(back.covariances, tracks.covariances)
    else:
        assert back.covariances is None


def test_malformed_track_covariance():
    msg = tracks_to_msg(_tracks(True), "base_link")
    msg.objects[1].covariance = msg.objects[1].covariance[:-1]
    with pytest.raises(ConversionError, match="object 1: covariance has 15 values"):
        msg_to_tracks(msg, "/perception/tracks")


def test_markers():
    boxes = Boxes3D(_boxes(), LABELS, ids=np.arange(5))
    markers = ground_truth_markers(boxes, STAMP_NS, "base_link").markers
    assert markers[0].action == Marker.DELETEALL
    cubes = [m for m in markers if m.type == Marker.CUBE]
    assert len(cubes) == 5 and len(markers) == 11
    for cube, box in zip(cubes, boxes.boxes):
        assert cube.pose.position.x == pytest.approx(box[0], abs=1e-5)
        assert (cube.scale.x, cube.scale.y, cube.scale.z) == pytest.approx(tuple(box[3:6]))
        assert 2 * np.arctan2(cube.pose.orientation.z, cube.pose.orientation.w) \
            == pytest.approx(box[6], abs=1e-5)
    texts = [m.text for m in track_markers(_tracks(False), "base_link").markers if m.text]
    assert texts[0] == f"{ObjectClass.VEHICLE.name.lower()} #3"
