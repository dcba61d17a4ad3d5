"""Ground-truth sampling: database build / storage, collision-free pasting, config checks and
the trainer hook."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import numpy as np
import pytest

from perception.errors import ConfigError, DataError
from perception.geometry import count_points_in_boxes, points_in_boxes
from perception.models.config import PaintingConfig
from perception.train.config import GtSamplingConfig, check_gt_sampling, load_experiment
from perception.train.gt_sampling import GroundTruthDatabase, database_path
from perception.train.trainer import training_database
from perception.types import (
    DETECTION_CLASSES,
    Boxes3D,
    LidarSweep,
    ObjectClass,
    SensorFrame,
)

from ..models._helpers import small_model_config

MARK = -7.0
"""Intensity given to a frame's own points, so pasted points can be told apart."""


@pytest.fixture(scope="module")
def database(tiny_frames):
    return GroundTruthDatabase.build(tiny_frames, min_points=5, progress=False)


# --------------------------------------------------------------------------------------------
# Independent geometry for the checks
# --------------------------------------------------------------------------------------------

def _rectangle(box: np.ndarray) -> np.ndarray:
    """(4, 2) BEV corners of one box."""
    c, s = np.cos(box[6]), np.sin(box[6])
    half = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]]) * 0.5 * box[3:5]
    return half @ np.array([[c, s], [-s, c]]) + box[:2]


def _bev_overlap(a: np.ndarray, b: np.ndarray, slack: float = 1e-6) -> bool:
    """Separating-axis test: do two rotated rectangles share interior area?"""
    ra, rb = _rectangle(a.astype(np.float64)), _rectangle(b.astype(np.float64))
    for rect in (ra, rb):
        for k in range(2):
            axis = rect[k + 1] - rect[k]
            axis = np.array([-axis[1], axis[0]]) / np.linalg.norm(axis)
            pa, pb = ra @ axis, rb @ axis
            if pa.max() <= pb.min() + slack or pb.max() <= pa.min() + slack:
                return False
    return True


def _marked(frame: SensorFrame, keep: list[int]) -> SensorFrame:
    """``frame`` labelled with the boxes ``keep`` only (the others become free to paste) and
    its points marked through the intensity column."""
    points = frame.lidar.points.copy()
    points[:, frame.lidar.columns.index("intensity")] = MARK
    return dataclasses.replace(frame, lidar=dataclasses.replace(frame.lidar, points=points),
                               boxes=frame.boxes.select(np.asarray(keep)))


def _toy_frame(boxes: np.ndarray, labels: list[int], ids=None, seed: int = 0) -> SensorFrame:
    """Background points on a 40 m square plus 30 points inside each box."""
    rng = np.random.default_rng(seed)
    parts = [np.c_[rng.uniform(-20, 20, (500, 2)), np.zeros(500)]]
    for box in boxes:
        local = rng.uniform(-0.45, 0.45, (30, 3)) * box[3:6]
        c, s = np.cos(box[6]), np.sin(box[6])
        parts.append(local @ np.array([[c, s, 0], [-s, c, 0], [0, 0, 1]]) + box[:3])
    xyz = np.concatenate(parts)
    points = np.c_[xyz, rng.uniform(0, 1, len(xyz))].astype(np.float32)
    return SensorFrame(stamp_ns=10**9, sequence_id=f"toy{seed}", lidar=LidarSweep(
        "lidar", 10**9, points, ("x", "y", "z", "intensity")),
        boxes=Boxes3D(np.asarray(boxes, np.float32), np.asarray(labels, np.int32), ids=ids),
        source="sim")


def _row_set(points: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in np.ascontiguousarray(points, np.float32)}


# --------------------------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------------------------

def test_build_keeps_objects_with_enough_points(tiny_frames):
    min_points = 20
    db = GroundTruthDatabase.build(tiny_frames, min_points=min_points, progress=False)
    boxes, counts, firsts = [], [], []
    detection = [c.value for c in DETECTION_CLASSES]
    for frame in tiny_frames:
        n = count_points_in_boxes(frame.lidar.points, frame.boxes.boxes)
        keep = (n >= min_points) & np.isin(frame.boxes.labels, detection)
        assert (~keep).any()  # the threshold does drop something here
        boxes.append(frame.boxes.boxes[keep])
        counts.append(n[keep])
        inside = points_in_boxes(frame.lidar.points, frame.boxes.boxes[keep])
        firsts += [frame.lidar.points[inside[:, j]] for j in range(keep.sum())]
    assert np.array_equal(db.boxes, np.concatenate(boxes))
    assert np.array_equal(db.num_points, np.concatenate(counts))
    assert db.columns == tiny_frames[0].lidar.columns
    for i, expected in enumerate(firsts):  # all columns kept, xyz back at the stored pose
        got = db.object_points(i)
        assert np.allclose(got[:, :3], expected[:, :3], atol=1e-5)
        assert np.array_equal(got[:, 3:], expected[:, 3:])
    assert np.isfinite(db.velocities).all()  # the simulator labels velocities


def test_save_load_round_trip(database, tmp_path):
    path = database.save(tmp_path / "db.npz")
    loaded = GroundTruthDatabase.load(path)
    assert loaded.columns == database.columns and len(loaded) == len(database) > 0
    for f in dataclasses.fields(GroundTruthDatabase):
        a, b = getattr(database, f.name), getattr(loaded, f.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True), f.name
    with np.load(path, allow_pickle=False) as z:  # plain arrays only
        assert "points" in z.files


@pytest.mark.parametrize("content", [None, b"not a zip file", b"PK\x03\x04broken", "npz"])
def test_load_bad_file_is_data_error(tmp_path, content):
    path = tmp_path / "db.npz"
    if content == "npz":  # a readable .npz, but not a database
        np.savez(path, x=np.zeros(3))
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(DataError, match="db.npz"):
        GroundTruthDatabase.load(path)


# --------------------------------------------------------------------------------------------
# Paste
# --------------------------------------------------------------------------------------------

def test_paste_adds_objects_without_overlap(tiny_frames, database):
    frame = _marked(tiny_frames[0], keep=[0, 3])
    before = {name: getattr(frame.boxes, name).copy() for name in ("boxes", "labels", "ids")}
    points_before = frame.lidar.points.copy()
    config = GtSamplingConfig(enabled=True)
    out = database.paste(frame, np.random.default_rng(0), config)

    n0 = len(frame.boxes)
    pasted = out.boxes.boxes[n0:]
    assert len(pasted) >= 2
    for name, limit in config.max_per_class.items():
        assert (out.boxes.labels[n0:] == ObjectClass[name].value).sum() <= limit
    # Never overlapping in BEV: pasted vs existing and pasted vs pasted.
    for k, box in enumerate(pasted):
        for other in np.concatenate([frame.boxes.boxes, pasted[:k]]):
            assert not _bev_overlap(box, other)
    # Every per-box array grew together; ids are unique.
    n = len(out.boxes)
    for f in dataclasses.fields(Boxes3D):
        value = getattr(out.boxes, f.name)
        if isinstance(value, np.ndarray):
            assert value.shape[0] == n, f.name
    assert out.boxes.velocities is not None and out.boxes.num_points is not None
    assert len(np.unique(out.boxes.ids)) == n
    # The old points inside pasted boxes are gone, the rest stay.
    old_inside = points_in_boxes(points_before, pasted).any(axis=1)
    assert old_inside.any()
    is_old = out.lidar.column("intensity") == MARK
    assert not points_in_boxes(out.lidar.points[is_old], pasted).any()
    assert _row_set(out.lidar.points[is_old]) == _row_set(points_before[~old_inside])
    # Each pasted box holds exactly its stored points (slack for the centre round trip).
    new_points = out.lidar.points[~is_old]
    assert len(new_points) == out.boxes.num_points[n0:].sum()
    inside_new = points_in_boxes(new_points, pasted, tolerance_m=1e-4)
    assert inside_new.any(axis=1).all()
    assert np.array_equal(inside_new.sum(axis=0), out.boxes.num_points[n0:])
    # The input frame is untouched.
    for name, value in before.items():
        assert np.array_equal(getattr(frame.boxes, name), value)
    assert np.array_equal(frame.lidar.points, points_before)


def test_paste_respects_class_limits():
    vehicles = np.array([[x, y, 0.8, 4.0, 2.0, 1.6, 0.3] for x in (-10, 0, 10)
                         for y in (-8, 8)], np.float32)
    walkers = np.array([[x, 0.0, 0.9, 0.8, 0.8, 1.8, 0.0] for x in (-10, 0, 10)], np.float32)
    source = _toy_frame(np.concatenate([vehicles, walkers]), [1] * 6 + [2] * 3)
    db = GroundTruthDatabase.build([source], min_points=5, progress=False)
    assert len(db) == 9
    target = _toy_frame(np.zeros((0, 7)), [], seed=1)
    config = GtSamplingConfig(max_per_class={"VEHICLE": 4, "PEDESTRIAN": 0})
    for seed in range(5):
        out = db.paste(target, np.random.default_rng(seed), config)
        assert np.array_equal(out.boxes.labels, [1, 1, 1, 1])
    free = GtSamplingConfig(max_per_class={"VEHICLE": 50, "PEDESTRIAN": 50})
    assert len(db.paste(target, np.random.default_rng(0), free).boxes) == 9


def test_paste_ids_and_optional_arrays():
    box = np.array([[5.0, 5.0, 0.8, 4.0, 2.0, 1.6, 0.0]], np.float32)
    db = GroundTruthDatabase.build([_toy_frame(box, [1])], min_points=5, progress=False)
    far = np.array([[-5.0, -5.0, 0.8, 4.0, 2.0, 1.6, 0.0]], np.float32)
    for ids in (np.array(["gt_sample_0"]), np.array([np.iinfo(np.int64).max])):
        out = db.paste(_toy_frame(far, [1], ids=ids), np.random.default_rng(0),
                       GtSamplingConfig())
        assert len(out.boxes) == 2 and len(set(out.boxes.ids.tolist())) == 2
        assert out.boxes.velocities is None  # none labelled, none invented
    # Labels with velocities cannot take objects stored without them.
    labelled = _toy_frame(far, [1])
    labelled = dataclasses.replace(labelled, boxes=dataclasses.replace(
        labelled.boxes, velocities=np.zeros((1, 2), np.float32)))
    assert db.paste(labelled, np.random.default_rng(0), GtSamplingConfig()) is labelled


def test_frames_without_lidar_or_labels_are_unchanged(tiny_frames, database):
    rng = np.random.default_rng(0)
    no_labels = dataclasses.replace(tiny_frames[0], boxes=None)
    no_lidar = dataclasses.replace(tiny_frames[0], lidar=None,
                                   boxes=tiny_frames[0].boxes.select(np.array([0])))
    assert database.paste(no_labels, rng, GtSamplingConfig()) is no_labels
    assert database.paste(no_lidar, rng, GtSamplingConfig()) is no_lidar


# --------------------------------------------------------------------------------------------
# Configuration and trainer
# --------------------------------------------------------------------------------------------

def test_camera_models_are_refused():
    with pytest.raises(ConfigError, match="model.camera"):
        check_gt_sampling(small_model_config())
    painting = dataclasses.replace(small_model_config(), camera=None, radar=None,
                                   fusion="early", painting=PaintingConfig())
    with pytest.raises(ConfigError, match="model.painting"):
        check_gt_sampling(painting)
    check_gt_sampling(dataclasses.replace(small_model_config(), camera=None))


def test_unknown_class_in_yaml_is_config_error(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("model: {lidar: {}}\n"
                    "augment: {gt_sampling: {enabled: true, max_per_class: {BOGUS: 3}}}\n")
    with pytest.raises(ConfigError) as err:
        load_experiment(path)
    message = str(err.value)
    assert str(path) in message and "augment.gt_sampling" in message
    assert "max_per_class" in message and "BOGUS" in message


def _experiment(tmp_path, cache, camera: bool = False):
    path = tmp_path / "exp.yaml"
    camera_line = ("  camera: {image_size_hw: [64, 96], backbone_channels: [8, 16, 32],"
                   " fpn_channels: 16, depth_m: [1.0, 33.0, 2.0], out_channels: 16}\n"
                   if camera else "")
    path.write_text(
        "model:\n"
        "  grid: {point_range_m: [-25.6, -25.6, -3.0, 25.6, 25.6, 3.0], cell_size_m: [0.8, 0.8]}\n"
        "  lidar: {pillar_channels: [16]}\n"
        f"{camera_line}"
        "  fuser: {out_channels: 16}\n"
        "  backbone: {layer_nums: [1, 1], layer_strides: [1, 2], channels: [16, 32],"
        " upsample_channels: [16, 16]}\n"
        "  head: {head_channels: 16}\n"
        "augment: {gt_sampling: {enabled: true, max_per_class: {VEHICLE: 4, PEDESTRIAN: 4}}}\n"
        f"data: {{sim_preset: tiny, train_seeds: [0, 1], val_seeds: [9], frames_per_seed: 1,"
        f" cache_dir: {cache}}}\n"
        f"train: {{out_dir: {tmp_path / 'run'}, epochs: 1, batch_size: 2, amp: false,"
        f" eval_every_epochs: 0, tensorboard: false, progress: false}}\n")
    return load_experiment(path)


def test_trainer_with_gt_sampling_runs_a_step(tmp_path):
    from perception.train.trainer import Trainer

    cache = tmp_path / "cache"
    config = _experiment(tmp_path, cache)
    trainer = Trainer(config)
    path = database_path(config.data, config.augment.gt_sampling)
    assert path is not None and path.parent == cache and path.is_file()
    augment = trainer.train_set.transform
    assert len(augment.database) > 0
    # DataLoader workers receive a pickled copy: it must serialise, and a copy made through
    # the same reduce protocol (no unpickling of bytes) must carry the whole database.
    assert len(pickle.dumps(augment)) > augment.database.points.nbytes
    assert len(copy.deepcopy(augment).database) == len(augment.database)
    stats = trainer.train_epoch()
    assert stats.steps == 1 and np.isfinite(stats.mean_loss)
    # Objects of one seed's scene land in the other's frames.
    raw = [trainer.train_set.load(i) for i in range(len(trainer.train_set))]
    assert any(len(augment.database.paste(f, np.random.default_rng(0),
                                          config.augment.gt_sampling).boxes) > len(f.boxes)
               for f in raw)
    # Built once: the cached file is read back, not rewritten.
    stamp = path.stat().st_mtime_ns
    again = training_database(config.augment.gt_sampling, config.model, config.data,
                              progress=False)
    assert len(again) == len(augment.database) and path.stat().st_mtime_ns == stamp


def test_camera_models_with_gt_sampling_are_refused_at_load_time(tmp_path):
    with pytest.raises(ConfigError, match="model.camera") as err:
        _experiment(tmp_path, tmp_path / "cache", camera=True)
    assert str(tmp_path / "exp.yaml") in str(err.value)
