"""Real recordings: the Ouster OS1-64 MCAP (ROS 1 profile) replayed with a topic map, and the
real Waymo frame through a bag and through the segment itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from perception.replay import ReplayOptions, bag_frames, replay, waymo_to_bag

OUSTER_POINTS = "/os1_cloud_node/points"


def _direct_ouster_counts(path: Path) -> list[int]:
    """Points with a return per cloud, read with the mcap library and rosbags' ROS 1
    deserialiser alone (no project code)."""
    from mcap.reader import make_reader
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS1_NOETIC)
    counts = []
    with path.open("rb") as f:
        for schema, _, message in make_reader(f).iter_messages(topics=[OUSTER_POINTS]):
            name = schema.name.replace("/", "/msg/", 1)
            store.register(get_types_from_msg(schema.data.decode(), name))
            cloud = store.deserialize_ros1(message.data, name)
            xyz = np.frombuffer(cloud.data.tobytes(), np.uint8).reshape(-1, cloud.point_step)
            xyz = xyz[:, :12].copy().view("<f4").reshape(-1, 3)
            counts.append(int((np.isfinite(xyz).all(axis=1) & xyz.any(axis=1)).sum()))
    return counts


def test_ouster_mcap_replays_with_a_topic_map(fixture_file, tmp_path):
    path = fixture_file("ouster_mcap")
    summary = replay(path, tmp_path, ReplayOptions(
        topic_map={"lidar": OUSTER_POINTS}, vehicle_frame="os1_sensor", with_input=True,
        progress=False, video=False))
    expected = _direct_ouster_counts(path)
    assert summary.frames == len(expected) == 2
    assert summary.notes == ["no ego pose in the log: motion compensation and world-frame "
                             "tracking are off"]
    frames = list(bag_frames(path, {"lidar": OUSTER_POINTS}, vehicle_frame="os1_sensor",
                             drop_origin=True))
    assert [len(f.lidar) for f in frames] == expected
    assert frames[0].lidar.columns[:3] == ("x", "y", "z")
    assert "time_offset_s" in frames[0].lidar.columns and "ring" in frames[0].lidar.columns

    from mcap.reader import make_reader
    from rosbags.highlevel import AnyReader

    bag = tmp_path / "bag"
    with AnyReader([bag]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        clouds = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(
            [c for c in reader.connections if c.topic == OUSTER_POINTS])]
    assert counts["/perception/detections"] == 2 and counts[OUSTER_POINTS] == 2
    assert clouds[0].width * clouds[0].height == 64 * 2048  # copied as recorded
    with (bag / "bag.mcap").open("rb") as f:
        summary_record = make_reader(f).get_summary()
    assert summary_record.statistics.message_count == sum(counts.values())


def test_waymo_frame_to_bag_to_replay(fixture_file, tmp_path):
    from perception.data.waymo import WaymoReader

    segment = fixture_file("waymo_camera_frame")
    original = WaymoReader(segment)[0]
    result = waymo_to_bag(segment, tmp_path / "waymo.mcap", progress=False)
    assert result.frames == 1
    back = list(bag_frames(tmp_path / "waymo.mcap"))
    assert len(back) == 1 and back[0].stamp_ns == original.stamp_ns
    # the fixture's range images are empty: an empty cloud clocks the frame
    assert len(back[0].lidar) == 0
    for name, image in original.cameras.items():
        assert back[0].cameras[name].encoded == image.encoded      # never re-encoded
        assert back[0].cameras[name].stamp_ns == image.stamp_ns
        np.testing.assert_allclose(back[0].cameras[name].calibration.T_vehicle_optical,
                                   image.calibration.T_vehicle_optical, atol=1e-12)
    np.testing.assert_array_equal(back[0].boxes.boxes, original.boxes.boxes)
    np.testing.assert_array_equal(back[0].boxes.ids, original.boxes.ids)
    np.testing.assert_allclose(back[0].ego_pose.T_world_vehicle,
                               original.ego_pose.T_world_vehicle, atol=1e-9)

    summary = replay(tmp_path / "waymo.mcap", tmp_path / "out",
                     ReplayOptions(progress=False, video=False))
    assert summary.frames == 1 and summary.rows[0].present == "camera+lidar"
    assert (tmp_path / "out" / "metrics.json").is_file()


def test_waymo_segment_replays_as_frames(fixture_file, tmp_path):
    summary = replay(fixture_file("waymo_camera_frame"), tmp_path,
                     ReplayOptions(progress=False, video=True, with_input=True))
    assert summary.kind == "waymo_segment" and summary.frames == 1
    assert (tmp_path / "metrics.json").is_file() and (tmp_path / "replay.gif").is_file()
    frames = list(bag_frames(tmp_path / "bag"))
    assert len(frames) == 1 and sorted(frames[0].cameras) == sorted(
        ["FRONT", "FRONT_LEFT", "FRONT_RIGHT", "SIDE_LEFT", "SIDE_RIGHT"])


def test_per_laser_clouds(tmp_path):
    from perception.replay.bag import open_bag
    from perception.replay.convert import write_frames
    from perception.replay.frames_to_bag import BagLayout
    from perception.types import LidarSweep, SensorFrame

    rng = np.random.default_rng(0)
    sweep = LidarSweep("lidar", 10**18, rng.normal(size=(30, 4)).astype(np.float32),
                       laser_id=np.repeat(np.arange(1, 4), 10).astype(np.int8))
    write_frames(tmp_path / "b.mcap", [(SensorFrame(10**18, lidar=sweep), None)],
                 BagLayout(per_laser=True), progress=False)
    with open_bag(tmp_path / "b.mcap") as bag:
        assert {t for t in bag.topics if t.startswith("/sensors/lidar/")} == {
            "/sensors/lidar/top/points", "/sensors/lidar/front/points",
            "/sensors/lidar/side_left/points"}
    top = list(bag_frames(tmp_path / "b.mcap", {"lidar": "/sensors/lidar/top/points"}))
    np.testing.assert_array_equal(top[0].lidar.points, sweep.points[:10])
