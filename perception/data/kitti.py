"""KITTI 3D object data (``training/{velodyne,image_2,calib,label_2}``) -> SensorFrame.

Frames:
* The vehicle frame is the Velodyne frame (x forward, y left, z up), so the lidar points keep
  their coordinates and ``T_vehicle_lidar`` is the identity.
* The camera (``image_2``) is in the rectified optical frame of camera 2:
  ``p_cam2 = [I | t2] @ R0_rect @ Tr_velo_to_cam @ p_velo`` with ``t2 = K^-1 P2[:, 3]``. The
  3x3 rotation of ``R0_rect @ Tr_velo_to_cam`` is re-orthonormalised (SVD) because KITTI's
  matrices are rounded; the change is below 1e-5 rad.
* Labels are in the rectified camera-0 frame with the box origin at the bottom centre and
  ``ry`` the yaw about the camera's y (down) axis. They become centre-z vehicle-frame boxes:
  the centre moves up by half the height and the heading is the direction of the object's
  length axis expressed in the vehicle frame.

Classes: Car, Van, Truck, Tram -> VEHICLE; Pedestrian, Person_sitting -> PEDESTRIAN;
Cyclist -> CYCLIST; Misc -> UNKNOWN; DontCare regions are dropped. KITTI object frames have no
time stamps: frame ``k`` gets ``stamp_ns = k * 100 ms``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import CalibrationError, DataError
from ..geometry import count_points_in_boxes
from ..types import (
    Boxes3D,
    Calibration,
    CameraConvention,
    CameraImage,
    LidarSweep,
    ObjectClass,
    SensorFrame,
    wrap_heading,
)

KITTI_CLASSES = {
    "Car": ObjectClass.VEHICLE, "Van": ObjectClass.VEHICLE, "Truck": ObjectClass.VEHICLE,
    "Tram": ObjectClass.VEHICLE, "Pedestrian": ObjectClass.PEDESTRIAN,
    "Person_sitting": ObjectClass.PEDESTRIAN, "Cyclist": ObjectClass.CYCLIST,
    "Misc": ObjectClass.UNKNOWN,
}
FRAME_PERIOD_NS = 100_000_000
LIDAR_COLUMNS = ("x", "y", "z", "intensity")


@dataclass(frozen=True)
class KittiCalibration:
    """The matrices of a KITTI ``calib/*.txt`` file.

    Attributes:
        P2: (3, 4) projection of rectified camera 2.
        R0_rect: (3, 3) rectifying rotation of camera 0.
        Tr_velo_to_cam: (3, 4) Velodyne -> camera 0 (unrectified).
    """

    P2: np.ndarray
    R0_rect: np.ndarray
    Tr_velo_to_cam: np.ndarray

    @property
    def T_rect_velo(self) -> np.ndarray:
        """(4, 4) Velodyne -> rectified camera 0, rotation re-orthonormalised."""
        T = np.eye(4)
        T[:3, :4] = self.R0_rect @ self.Tr_velo_to_cam
        u, _, vt = np.linalg.svd(T[:3, :3])
        T[:3, :3] = u @ vt
        return T

    @property
    def K(self) -> np.ndarray:
        return self.P2[:, :3].copy()

    @property
    def T_cam2_rect(self) -> np.ndarray:
        """(4, 4) rectified camera 0 -> rectified camera 2 (a pure translation)."""
        T = np.eye(4)
        T[:3, 3] = np.linalg.solve(self.K, self.P2[:, 3])
        return T


@dataclass(frozen=True)
class KittiLabel:
    """One line of a ``label_2`` file, as written (camera-0 rectified frame, bottom centre)."""

    type: str
    truncated: float
    occluded: int
    alpha: float
    bbox_2d: tuple[float, float, float, float]       # left, top, right, bottom (pixels)
    height: float
    width: float
    length: float
    location: tuple[float, float, float]              # bottom centre x, y, z (m)
    rotation_y: float


def read_calibration(path: str | os.PathLike) -> KittiCalibration:
    """Parse ``calib/*.txt``. Raises CalibrationError when a matrix is missing or malformed."""
    return parse_calibration(_read_text(path, CalibrationError), str(path))


def _read_text(path: str | os.PathLike, error: type) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        # KITTI text files are ASCII; anything else is a damaged or foreign file.
        message = f"not a text file ({exc.reason} at byte {exc.start})"
    except OSError as exc:
        message = f"cannot read: {exc.strerror or exc}"
    if error is DataError:
        raise DataError(message, source=str(path))
    raise error(f"{path}: {message}")


def parse_calibration(text: str, source: str = "calib") -> KittiCalibration:
    """Parse the text of a ``calib/*.txt`` file (``source`` names it in errors).

    Raises:
        CalibrationError: a matrix missing, malformed or non-finite, a singular ``P2``
            intrinsic block, or rotations that cannot be re-orthonormalised.
    """
    values: dict[str, np.ndarray] = {}
    for line_no, line in enumerate(text.splitlines()):
        if ":" not in line:
            continue
        key, rest = line.split(":", 1)
        try:
            values[key.strip()] = np.array(rest.split(), dtype=np.float64)
        except ValueError:
            raise CalibrationError(f"{source}: line {line_no + 1}: non-numeric values") from None
    shapes = {"P2": (3, 4), "R0_rect": (3, 3), "Tr_velo_to_cam": (3, 4)}
    out = {}
    for key, shape in shapes.items():
        if key not in values or values[key].size != np.prod(shape):
            raise CalibrationError(f"{source}: missing or malformed {key} (expected "
                                   f"{np.prod(shape)} numbers)")
        if not np.isfinite(values[key]).all():
            raise CalibrationError(f"{source}: {key} has non-finite values")
        out[key] = values[key].reshape(shape)
    calib = KittiCalibration(**out)
    # The derived transforms invert K and re-orthonormalise R0_rect @ Tr_velo_to_cam; check
    # both here so that a degenerate file fails as a calibration error, not in LAPACK.
    if abs(np.linalg.det(calib.K)) < 1e-12 or not np.isfinite(np.linalg.cond(calib.K)) \
            or np.linalg.cond(calib.K) > 1e12:
        raise CalibrationError(f"{source}: P2 intrinsic block is singular")
    rotation = (calib.R0_rect @ calib.Tr_velo_to_cam)[:, :3]
    if not np.isfinite(rotation).all() or abs(np.linalg.det(rotation)) < 1e-6:
        raise CalibrationError(f"{source}: R0_rect @ Tr_velo_to_cam is not a rotation "
                               f"(determinant {np.linalg.det(rotation):.3g})")
    return calib


def read_labels(path: str | os.PathLike) -> list[KittiLabel]:
    """Parse ``label_2/*.txt`` (15 fields per line). Raises DataError naming the line."""
    return parse_labels(_read_text(path, DataError), str(path))


def parse_labels(text: str, source: str = "labels") -> list[KittiLabel]:
    """Parse the text of a ``label_2/*.txt`` file (``source`` names it in errors).

    Raises:
        DataError: a line with fewer than 15 fields, a non-numeric field, a non-finite box
            value, or an occlusion state that is not an integer; the error names the line.
    """
    labels = []
    for line_no, line in enumerate(text.splitlines()):
        fields = line.split()
        if not fields:
            continue
        if len(fields) < 15:
            raise DataError(f"expected 15 fields, got {len(fields)}", source=source,
                            index=line_no)
        try:
            v = [float(x) for x in fields[1:15]]
        except ValueError:
            raise DataError("non-numeric label field", source=source, index=line_no) from None
        if not np.isfinite(v).all():
            raise DataError("non-finite label field", source=source, index=line_no)
        if v[1] != int(v[1]):
            raise DataError(f"occluded must be an integer, got {fields[2]!r}", source=source,
                            index=line_no)
        labels.append(KittiLabel(fields[0], v[0], int(v[1]), v[2], tuple(v[3:7]), v[7], v[8],
                                 v[9], tuple(v[10:13]), v[13]))
    return labels


def labels_to_boxes(labels: list[KittiLabel], calib: KittiCalibration) -> Boxes3D:
    """Labels (DontCare dropped) -> centre-z :class:`Boxes3D` in the vehicle (Velodyne) frame.

    Raises:
        DataError: a label type outside :data:`KITTI_CLASSES` (and not DontCare).
    """
    kept = [lab for lab in labels if lab.type != "DontCare"]
    unknown = sorted({lab.type for lab in kept} - set(KITTI_CLASSES))
    if unknown:
        raise DataError(f"unknown KITTI label type(s) {unknown}")
    if not kept:
        return Boxes3D.empty()
    T_velo_rect = np.linalg.inv(calib.T_rect_velo)
    loc = np.array([lab.location for lab in kept])
    h = np.array([lab.height for lab in kept])
    ry = np.array([lab.rotation_y for lab in kept])
    centre_rect = loc - np.stack([np.zeros_like(h), h / 2.0, np.zeros_like(h)], axis=1)
    centre = centre_rect @ T_velo_rect[:3, :3].T + T_velo_rect[:3, 3]
    # The length axis points along (cos ry, 0, -sin ry) in the camera frame (y down).
    forward_rect = np.stack([np.cos(ry), np.zeros_like(ry), -np.sin(ry)], axis=1)
    forward = forward_rect @ T_velo_rect[:3, :3].T
    heading = wrap_heading(np.arctan2(forward[:, 1], forward[:, 0]))
    boxes = np.column_stack([centre, [lab.length for lab in kept], [lab.width for lab in kept],
                             h, heading]).astype(np.float32)
    labels_out = np.array([KITTI_CLASSES[lab.type] for lab in kept], np.int32)
    return Boxes3D(boxes, labels_out)


def camera_calibration(calib: KittiCalibration, width: int, height: int) -> Calibration:
    """Calibration of ``image_2`` (optical convention, rectified: no distortion)."""
    T_cam2_velo = calib.T_cam2_rect @ calib.T_rect_velo
    K = calib.K
    if abs(K[0, 1]) > 1e-9 or abs(K[1, 0]) > 1e-9:
        raise CalibrationError(f"P2 intrinsics are not upper triangular: {K.tolist()}")
    return Calibration("image_2", np.linalg.inv(T_cam2_velo), K, np.zeros(5), width, height,
                       CameraConvention.OPTICAL)


class KittiReader:
    """Frames of a KITTI object ``training`` (or ``testing``) directory.

    ``reader[i]`` reads frame id ``reader.ids[i]`` (e.g. ``"000001"``); the ids are those with
    a Velodyne file. Labels are read when ``label_2`` exists (training split).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        velodyne = self.root / "velodyne"
        if not velodyne.is_dir():
            raise DataError("no velodyne/ directory", source=str(self.root))
        self.ids = sorted(p.stem for p in velodyne.glob("*.bin"))

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> SensorFrame:
        frame_id = self.ids[i]
        return read_frame(self.root, frame_id)

    def labels(self, i: int) -> list[KittiLabel]:
        return read_labels(self.root / "label_2" / f"{self.ids[i]}.txt")

    def calibration(self, i: int) -> KittiCalibration:
        return read_calibration(self.root / "calib" / f"{self.ids[i]}.txt")


def read_points(path: str | os.PathLike) -> np.ndarray:
    """Velodyne ``.bin`` -> (N, 4) float32 x, y, z, reflectance."""
    try:
        data = np.fromfile(path, dtype="<f4")
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    if data.size % 4:
        raise DataError(f"size {data.size * 4} bytes is not a multiple of 16 (x, y, z, r "
                        f"float32)", source=str(path))
    return data.reshape(-1, 4)


def read_frame(root: str | os.PathLike, frame_id: str) -> SensorFrame:
    """One KITTI frame: lidar, ``image_2`` (encoded, decoded lazily), boxes when labelled."""
    from PIL import Image

    root = Path(root)
    calib = read_calibration(root / "calib" / f"{frame_id}.txt")
    stamp_ns = int(frame_id) * FRAME_PERIOD_NS
    points = read_points(root / "velodyne" / f"{frame_id}.bin")
    lidar = LidarSweep("velodyne", stamp_ns, points, LIDAR_COLUMNS,
                       calibration=Calibration("velodyne", np.eye(4)))
    cameras = {}
    image_path = root / "image_2" / f"{frame_id}.png"
    if image_path.is_file():
        encoded = image_path.read_bytes()
        with Image.open(io.BytesIO(encoded)) as img:       # reads the header only
            width, height = img.size
        cameras["image_2"] = CameraImage("image_2", stamp_ns,
                                         camera_calibration(calib, width, height),
                                         encoded=encoded)
    boxes = None
    label_path = root / "label_2" / f"{frame_id}.txt"
    if label_path.is_file():
        try:
            boxes = labels_to_boxes(read_labels(label_path), calib)
        except DataError as exc:
            raise DataError(str(exc), source=str(label_path)) from None
        boxes = Boxes3D(boxes.boxes, boxes.labels,
                        num_points=count_points_in_boxes(points, boxes.boxes))
    return SensorFrame(stamp_ns, "kitti_object", int(frame_id), lidar, cameras, boxes=boxes,
                       source="kitti")
