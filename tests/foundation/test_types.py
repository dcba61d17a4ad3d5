"""Validation of the typed data contracts: every field, shapes, dtypes, NaN, stamps."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from perception.errors import DataError, PerceptionError, ValidationError
from perception.types import (
    Boxes3D,
    Calibration,
    CameraConvention,
    CameraImage,
    Detections,
    Difficulty,
    EgoPose,
    LidarSweep,
    Modality,
    ObjectClass,
    RadarScan,
    RollingShutter,
    SensorFrame,
    Tracks,
    TrackState,
    finite_points,
)

EYE = np.eye(4)


def camera_calib(width=64, height=48, name="FRONT") -> Calibration:
    K = np.array([[50.0, 0, 32], [0, 50.0, 24], [0, 0, 1]])
    return Calibration(name, EYE, K=K, width=width, height=height)


def boxes(n=3) -> np.ndarray:
    b = np.zeros((n, 7), np.float32)
    b[:, 3:6] = [4.0, 2.0, 1.5]
    b[:, 0] = np.arange(n) * 10
    return b


def test_errors_are_typed_and_catchable_as_value_error():
    assert issubclass(ValidationError, PerceptionError)
    assert issubclass(ValidationError, ValueError)


# ---- stamps ------------------------------------------------------------------------------------

@pytest.mark.parametrize("stamp", [1.5, np.float64(2.0), "123", None, True, -1, 2**63])
def test_bad_stamps_are_refused(stamp):
    with pytest.raises(ValidationError, match="LidarSweep.stamp_ns"):
        LidarSweep("TOP", stamp, np.zeros((1, 4), np.float32))


def test_float_stamp_message_suggests_conversion():
    with pytest.raises(ValidationError, match=r"int\(round\(t_s \* 1e9\)\)"):
        EgoPose(1.0, EYE)


def test_numpy_integer_stamp_becomes_python_int():
    sweep = LidarSweep("TOP", np.int64(1_500_000_000_000_000_000), np.zeros((0, 4), np.float32))
    assert type(sweep.stamp_ns) is int and sweep.stamp_ns == 1_500_000_000_000_000_000


# ---- lidar and radar ----------------------------------------------------------------------------

def test_lidar_sweep_accepts_float64_and_converts():
    pts = np.random.default_rng(0).normal(size=(10, 4))
    sweep = LidarSweep("TOP", 0, pts)
    assert sweep.points.dtype == np.float32 and len(sweep) == 10
    np.testing.assert_allclose(sweep.column("intensity"), pts[:, 3].astype(np.float32))
    assert sweep.xyz.shape == (10, 3)


@pytest.mark.parametrize("points, match", [
    (np.zeros((5,), np.float32), "expected 2 dimensions"),
    (np.zeros((5, 3), np.float32), "3 names for|4 names for|names for 3"),
    (np.zeros((5, 4), np.complex64), "floating dtype"),
    (np.zeros((5, 4), object), "floating dtype"),
    ("points", "expected a numpy array"),
])
def test_lidar_sweep_bad_points(points, match):
    with pytest.raises(ValidationError, match=match):
        LidarSweep("TOP", 0, points)


def test_lidar_sweep_nan_points_refused_with_count():
    pts = np.zeros((4, 4), np.float32)
    pts[1, 0] = np.nan
    pts[2, 2] = np.inf
    with pytest.raises(ValidationError, match="LidarSweep.points: 2 non-finite"):
        LidarSweep("TOP", 0, pts)
    clean, dropped = finite_points(pts)
    assert dropped == 2 and clean.shape == (2, 4)
    assert len(LidarSweep("TOP", 0, clean)) == 2


def test_lidar_columns_validated():
    pts = np.zeros((2, 4), np.float32)
    with pytest.raises(ValidationError, match="must start with"):
        LidarSweep("TOP", 0, pts, columns=("y", "x", "z", "i"))
    with pytest.raises(ValidationError, match="duplicate"):
        LidarSweep("TOP", 0, pts, columns=("x", "y", "z", "z"))
    with pytest.raises(KeyError, match="no column 'elongation'"):
        LidarSweep("TOP", 0, pts).column("elongation")


def test_lidar_per_point_arrays_must_match_n():
    pts = np.zeros((3, 4), np.float32)
    with pytest.raises(ValidationError, match="laser_id: dimension N=2 disagrees"):
        LidarSweep("TOP", 0, pts, laser_id=np.zeros(2, np.int8))
    with pytest.raises(ValidationError, match="return_index: expected an integer dtype"):
        LidarSweep("TOP", 0, pts, return_index=np.zeros(3, np.float32))
    with pytest.raises(ValidationError, match="outside the range of int8"):
        LidarSweep("TOP", 0, pts, laser_id=np.array([0, 1, 300]))


def test_empty_sweep_is_valid():
    assert len(LidarSweep("TOP", 0, np.zeros((0, 4), np.float32))) == 0


def test_radar_scan_defaults_and_errors():
    scan = RadarScan("RADAR_FRONT", 5, np.zeros((2, 6), np.float32))
    assert scan.column("doppler_mps").shape == (2,)
    with pytest.raises(ValidationError, match="RadarScan.sensor_name"):
        RadarScan("", 5, np.zeros((2, 6), np.float32))
    with pytest.raises(ValidationError, match="RadarScan.calibration"):
        RadarScan("R", 5, np.zeros((2, 6), np.float32), calibration="front")


# ---- calibration, pose, cameras -----------------------------------------------------------------

def test_calibration_rejects_non_rigid_and_bad_intrinsics():
    T = np.eye(4)
    T[0, 0] = 2.0
    with pytest.raises(ValidationError, match="not a rotation"):
        Calibration("TOP", T)
    T = np.eye(4)
    T[3, 0] = 1.0
    with pytest.raises(ValidationError, match="last row"):
        Calibration("TOP", T)
    with pytest.raises(ValidationError, match="Calibration.K"):
        Calibration("CAM", EYE, K=np.eye(3) * -1, width=10, height=10)
    with pytest.raises(ValidationError, match="Calibration.width"):
        Calibration("CAM", EYE, K=np.eye(3), width=0, height=10)
    with pytest.raises(ValidationError, match="Calibration.distortion"):
        Calibration("CAM", EYE, K=np.eye(3), distortion=np.zeros(4), width=1, height=1)
    with pytest.raises(ValidationError, match="K: required"):
        Calibration("CAM", EYE, width=10, height=10)


def test_calibration_optical_frame_from_waymo_convention():
    calib = Calibration("FRONT", EYE, K=np.eye(3), width=2, height=2,
                        camera_convention=CameraConvention.WAYMO)
    T = calib.T_vehicle_optical
    # The optical z axis (forward) is the Waymo x axis (forward) = vehicle +x here.
    np.testing.assert_allclose(T[:3, 2], [1, 0, 0])
    np.testing.assert_allclose(T[:3, 0], [0, -1, 0])  # optical x (right) = -y (left)
    np.testing.assert_allclose(T[:3, 1], [0, 0, -1])  # optical y (down) = -z (up)


def test_ego_pose_validation():
    EgoPose(0, EYE, linear_velocity=np.zeros(3))
    with pytest.raises(ValidationError, match="EgoPose.linear_velocity"):
        EgoPose(0, EYE, linear_velocity=np.zeros(2))
    with pytest.raises(ValidationError, match="EgoPose.T_world_vehicle: 1 non-finite"):
        T = np.eye(4)
        T[0, 3] = np.nan
        EgoPose(0, T)


def test_camera_image_pixels_must_match_calibration():
    calib = camera_calib()
    img = CameraImage("FRONT", 1, calib, pixels=np.zeros((48, 64, 3), np.uint8))
    assert img.image.shape == (48, 64, 3) and img.is_decoded
    with pytest.raises(ValidationError, match="is 48x64 .*calibration says 64x48"):
        CameraImage("FRONT", 1, calib, pixels=np.zeros((64, 48, 3), np.uint8))
    with pytest.raises(ValidationError, match="dtype must be uint8"):
        CameraImage("FRONT", 1, calib, pixels=np.zeros((48, 64, 3), np.float32))
    with pytest.raises(ValidationError, match="exactly one of pixels or encoded"):
        CameraImage("FRONT", 1, calib)
    with pytest.raises(ValidationError, match="a camera calibration"):
        CameraImage("FRONT", 1, Calibration("FRONT", EYE), pixels=np.zeros((1, 1, 3), np.uint8))


def test_camera_image_decodes_lazily_and_checks_size():
    import io

    from PIL import Image

    rgb = np.random.default_rng(1).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    img = CameraImage("FRONT", 1, camera_calib(), encoded=buf.getvalue())
    assert not img.is_decoded
    np.testing.assert_array_equal(img.image, rgb)
    assert img.is_decoded and img.image is img.image
    wrong = CameraImage("FRONT", 1, camera_calib(width=32), encoded=buf.getvalue())
    with pytest.raises(ValidationError, match="calibration says 32x48"):
        _ = wrong.image
    corrupt = CameraImage("FRONT", 1, camera_calib(), encoded=b"\xff\xd8 not a jpeg")
    with pytest.raises(DataError, match="FRONT: cannot decode"):
        _ = corrupt.image


def test_rolling_shutter_validation():
    RollingShutter("LEFT_TO_RIGHT", 0.001, 10, 20)
    with pytest.raises(ValidationError, match="shutter_s"):
        RollingShutter("LEFT_TO_RIGHT", -1.0, 10, 20)
    with pytest.raises(ValidationError, match="trigger_stamp_ns"):
        RollingShutter("LEFT_TO_RIGHT", 0.0, 1.0, 20)


# ---- boxes, detections, tracks ------------------------------------------------------------------

def test_boxes3d_fields_and_levels():
    b = Boxes3D(boxes(4), np.array([1, 2, 4, 1]), ids=["a", "b", "c", "d"],
                num_points=np.array([0, 5, 6, 100]),
                difficulty=np.array([0, 0, 0, Difficulty.LEVEL_2]))
    assert b.boxes.dtype == np.float32 and b.labels.dtype == np.int32
    assert b.ids.dtype.kind == "U"
    np.testing.assert_array_equal(b.levels(), [2, 2, 1, 2])
    sub = b.select(np.array([False, True, True, False]))
    assert len(sub) == 2 and list(sub.ids) == ["b", "c"]
    np.testing.assert_array_equal(sub.num_points, [5, 6])


def test_boxes3d_heading_wrapped_without_touching_input():
    raw = boxes(2)
    raw[:, 6] = [np.pi, 3 * np.pi / 2]
    b = Boxes3D(raw, np.ones(2, np.int32))
    np.testing.assert_allclose(b.boxes[:, 6], [-np.pi, -np.pi / 2], atol=1e-6)
    assert raw[0, 6] == np.float32(np.pi)  # the caller's array is unchanged
    assert np.all(b.boxes[:, 6] >= -np.pi) and np.all(b.boxes[:, 6] < np.pi)


@pytest.mark.parametrize("kwargs, match", [
    (dict(boxes=np.zeros((2, 6))), r"expected shape \(N, 7\)"),
    (dict(labels=np.ones(2, np.float32)), "labels: expected an integer dtype"),
    (dict(labels=np.array([1, 9])), r"labels: unknown class value\(s\) \[9\]"),
    (dict(labels=np.ones(3, np.int32)), "labels: dimension N=3 disagrees"),
    (dict(velocities=np.zeros((2, 3))), r"velocities: expected shape \(N, 2\)"),
    (dict(num_points=np.array([-1, 0])), "num_points: counts must be >= 0"),
    (dict(difficulty=np.array([0, 3])), "difficulty: values must be"),
    (dict(accelerations=np.full((2, 2), np.nan)), "accelerations: 4 non-finite"),
])
def test_boxes3d_bad_fields(kwargs, match):
    args = dict(boxes=boxes(2), labels=np.ones(2, np.int32))
    args.update(kwargs)
    with pytest.raises(ValidationError, match=match):
        Boxes3D(**args)


def test_boxes3d_non_positive_size_and_nan():
    b = boxes(2)
    b[1, 4] = 0.0
    with pytest.raises(ValidationError, match="non-positive size in row 1"):
        Boxes3D(b, np.ones(2, np.int32))
    b = boxes(2)
    b[0, 0] = np.nan
    with pytest.raises(ValidationError, match="Boxes3D.boxes: 1 non-finite"):
        Boxes3D(b, np.ones(2, np.int32))


def test_detections_validation_and_empty():
    det = Detections(5, boxes(2), np.array([0.9, 0.1]), np.array([1, 2]),
                     modalities={"lidar", Modality.CAMERA})
    assert det.modalities == {Modality.LIDAR, Modality.CAMERA}
    assert len(det.select(det.scores > 0.5)) == 1
    with pytest.raises(ValidationError, match="scores: values must lie in"):
        Detections(5, boxes(2), np.array([1.5, 0.1]), np.array([1, 2]))
    with pytest.raises(ValidationError, match="scores: dimension N=3 disagrees"):
        Detections(5, boxes(2), np.array([0.5, 0.1, 0.2]), np.array([1, 2]))
    with pytest.raises(ValidationError, match="modalities"):
        Detections(5, boxes(2), np.array([0.5, 0.1]), np.array([1, 2]), modalities={"sonar"})
    assert len(Detections.empty(7)) == 0


def test_tracks_validation():
    n = 2
    kwargs = dict(stamp_ns=1, boxes=boxes(n), labels=np.ones(n, np.int32),
                  ids=np.array([3, 4]), velocities=np.zeros((n, 2)), scores=np.ones(n),
                  ages=np.ones(n, np.int32), hits=np.ones(n, np.int32),
                  states=np.array([TrackState.CONFIRMED, TrackState.TENTATIVE]),
                  covariances=np.stack([np.eye(9)] * n))
    tracks = Tracks(**kwargs)
    assert tracks.covariances.shape == (2, 9, 9) and tracks.ids.dtype == np.int64
    with pytest.raises(ValidationError, match="ids must be unique"):
        Tracks(**{**kwargs, "ids": np.array([3, 3])})
    with pytest.raises(ValidationError, match="states: values must be TrackState"):
        Tracks(**{**kwargs, "states": np.array([0, 7])})
    with pytest.raises(ValidationError, match="covariances: dimension S=8 disagrees"):
        Tracks(**{**kwargs, "covariances": np.zeros((2, 9, 8))})
    assert len(Tracks.empty(3)) == 0


def test_replace_revalidates():
    b = Boxes3D(boxes(2), np.ones(2, np.int32))
    with pytest.raises(ValidationError):
        dataclasses.replace(b, labels=np.array([1, 99]))


def test_frozen():
    b = Boxes3D(boxes(1), np.ones(1, np.int32))
    with pytest.raises(dataclasses.FrozenInstanceError):
        b.labels = np.zeros(1)


# ---- frame --------------------------------------------------------------------------------------

def test_sensor_frame_modalities_and_maps():
    lidar = LidarSweep("TOP", 10, np.zeros((3, 4), np.float32))
    cam = CameraImage("FRONT", 11, camera_calib(), pixels=np.zeros((48, 64, 3), np.uint8))
    frame = SensorFrame(10, "seq", 0, lidar=lidar, cameras={"FRONT": cam},
                        boxes=Boxes3D.empty(), source="test")
    assert frame.modalities == {Modality.LIDAR, Modality.CAMERA}
    assert SensorFrame(0).modalities == frozenset()
    with pytest.raises(ValidationError, match="key 'BACK' differs"):
        SensorFrame(10, cameras={"BACK": cam})
    with pytest.raises(ValidationError, match=r"radars\['R'\]: expected RadarScan"):
        SensorFrame(10, radars={"R": lidar})
    with pytest.raises(ValidationError, match="SensorFrame.lidar"):
        SensorFrame(10, lidar=np.zeros((3, 4)))
    with pytest.raises(ValidationError, match="frame_index"):
        SensorFrame(10, frame_index=-1)


def test_object_class_values_are_waymo_label_types():
    assert (ObjectClass.VEHICLE, ObjectClass.PEDESTRIAN, ObjectClass.SIGN,
            ObjectClass.CYCLIST) == (1, 2, 3, 4)
