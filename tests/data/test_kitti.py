"""KITTI reader on the three real object frames."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from perception.data import kitti
from perception.errors import CalibrationError, DataError
from perception.geometry import box_corners, count_points_in_boxes, project_points
from perception.types import ObjectClass


@pytest.fixture(scope="module")
def reader(fixture_file):
    return kitti.KittiReader(fixture_file("kitti_object"))


def test_frames_load(reader):
    assert reader.ids == ["000000", "000001", "000002"]
    frame = reader[1]
    assert frame.source == "kitti" and frame.frame_index == 1
    assert frame.lidar.points.shape[1] == 4 and len(frame.lidar) > 100_000
    camera = frame.cameras["image_2"]
    assert not camera.is_decoded
    assert camera.image.shape == (375, 1242, 3)
    # DontCare dropped: Truck, Car, Cyclist remain.
    assert frame.boxes.labels.tolist() == [ObjectClass.VEHICLE, ObjectClass.VEHICLE,
                                           ObjectClass.CYCLIST]


def test_boxes_project_onto_the_2d_labels(reader):
    for i in range(len(reader)):
        frame = reader[i]
        labels = [lab for lab in reader.labels(i) if lab.type != "DontCare"]
        calib = frame.cameras["image_2"].calibration
        size = np.array([calib.width - 1, calib.height - 1])
        for box, label in zip(frame.boxes.boxes, labels):
            uv, _, _ = project_points(box_corners(box[None])[0], calib)
            rect = np.concatenate([np.clip(uv.min(0), 0, size), np.clip(uv.max(0), 0, size)])
            error = np.abs(rect - np.array(label.bbox_2d))
            # The 2D boxes of rigid objects are the projected 3D boxes; people are drawn
            # tighter than their 3D box.
            tolerance = 3.0 if label.type in ("Car", "Truck", "Van", "Cyclist") else 12.0
            assert error.max() < tolerance, (i, label.type, error)


def test_box_centres_are_mid_height(reader):
    frame = reader[1]
    label = [lab for lab in reader.labels(1) if lab.type == "Car"][0]
    box = frame.boxes.boxes[1]
    assert box[5] == pytest.approx(label.height)
    assert box[3] == pytest.approx(label.length) and box[4] == pytest.approx(label.width)
    # The Velodyne is 1.73 m above the road: a car's centre is about 0.9 m below it.
    assert -1.3 < box[2] < -0.5


def test_points_inside_unoccluded_cars(reader):
    for i in range(len(reader)):
        frame = reader[i]
        labels = [lab for lab in reader.labels(i) if lab.type != "DontCare"]
        counts = count_points_in_boxes(frame.lidar.points, frame.boxes.boxes)
        np.testing.assert_array_equal(counts, frame.boxes.num_points)
        for label, n in zip(labels, counts):
            if label.type in ("Car", "Truck") and label.occluded == 0:
                assert n > 0, (i, label)


def test_bad_inputs(tmp_path, fixture_file):
    root = tmp_path / "training"
    src = fixture_file("kitti_object")
    for sub in ("velodyne", "calib", "label_2"):
        (root / sub).mkdir(parents=True)
        shutil.copy(next((src / sub).glob("000001.*")), root / sub)
    label = root / "label_2" / "000001.txt"
    label.write_text(label.read_text().replace("Truck", "Spaceship", 1))
    with pytest.raises(DataError, match="Spaceship") as err:
        kitti.read_frame(root, "000001")
    assert str(label) in str(err.value)
    calib = root / "calib" / "000001.txt"
    calib.write_text("\n".join(l for l in calib.read_text().splitlines()
                               if not l.startswith("P2")))
    with pytest.raises(CalibrationError, match="P2"):
        kitti.read_frame(root, "000001")
    velo = root / "velodyne" / "000001.bin"
    velo.write_bytes(velo.read_bytes()[:-3])
    with pytest.raises(DataError, match="multiple of 16"):
        kitti.read_points(velo)
    short = root / "label_2" / "000002.txt"
    short.write_text("Car 0 0 1.0 1 2 3\n")
    with pytest.raises(DataError, match=r"\[record 0\].*15 fields"):
        kitti.read_labels(short)
