"""Parameter schemas of the nodes: types, ranges and defaults.

Each node validates its ROS parameters (from ``config/<node>.param.yaml``, launch files and
``-p`` overrides) into one of these dataclasses with :func:`perception.config.from_dict`; an
unknown name, a wrong type or an out-of-range value stops the node before it does anything,
with a message naming the parameter (see :func:`ros_nodes.node_base.load_parameters`).
docs/ros.md has the same tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perception.align import SyncConfig

IMAGE_TRANSPORTS = ("raw", "jpeg", "png")


@dataclass(frozen=True)
class SimNodeParams:
    """``sim_node``: publishes the built-in simulator on the sensor topics.

    Attributes:
        preset: simulator preset (``tiny``, ``vlp16``, ``nuscenes_like``, ``waymo_like``) or a
            path to a simulator YAML file.
        seed: scenario and noise seed.
        rate_factor: playback speed; 1 is real time, 2 twice as fast, 0 as fast as possible.
        duration_s: scenario length; the node exits when it has published it all.
        start_delay_s: wait before the first message so subscribers can be discovered.
        image_transport: ``raw`` (``sensor_msgs/Image``) or ``jpeg`` / ``png``
            (``sensor_msgs/CompressedImage`` on ``.../image_raw/compressed``).
        wall_clock_stamps: shift stamps so the scenario starts at the wall-clock time playback
            starts (``stamp = sim_stamp - sim_start + playback_start``; they follow the wall
            clock at ``rate_factor`` 1); false keeps the simulator's own stamps.
        vehicle_frame: frame id of the vehicle (clouds, ground truth, tf parent).
        world_frame: frame id of the ego-pose messages.
        publish_ground_truth: publish ground-truth boxes and markers with every sweep.
        diagnostics_period_s: period of ``/diagnostics``.
        qos_depth: history depth of the sensor publishers.
    """

    preset: str = "tiny"
    seed: int = field(default=0, metadata={"ge": 0})
    rate_factor: float = field(default=1.0, metadata={"ge": 0.0, "le": 100.0})
    duration_s: float = field(default=60.0, metadata={"gt": 0.0})
    start_delay_s: float = field(default=1.0, metadata={"ge": 0.0, "le": 60.0})
    image_transport: str = field(default="raw", metadata={"choices": list(IMAGE_TRANSPORTS)})
    wall_clock_stamps: bool = True
    vehicle_frame: str = field(default="base_link", metadata={"min_len": 1})
    world_frame: str = field(default="map", metadata={"min_len": 1})
    publish_ground_truth: bool = True
    diagnostics_period_s: float = field(default=1.0, metadata={"gt": 0.0})
    qos_depth: int = field(default=5, metadata={"ge": 1, "le": 100})


@dataclass(frozen=True)
class SyncNodeParams:
    """``sync_node``: subscribes to the sensors, synchronises them (:mod:`perception.align`)
    and publishes one ``PerceptionStatus`` per frame plus diagnostics.

    Attributes:
        lidar_name: the reference lidar's sensor name.
        camera_names: cameras to synchronise (topics ``/sensors/camera/<name>/...``).
        radar_names: radars to synchronise (topics ``/sensors/radar/<name>/points``).
        camera_tolerance_s, radar_tolerance_s: match tolerances around the sweep stamp.
        timeout_s: the longest a frame waits for late sensors after its sweep arrived.
        buffer_size: messages kept per sensor (and sweeps pending).
        compensate_motion: move lidar and radar points to the sweep stamp using ``/ego/pose``.
        image_transport: ``raw`` or ``compressed`` camera topics.
        vehicle_frame: frame everything is converted into (clouds in other frames are moved
            with ``/tf_static``).
        diagnostics_period_s: period of ``/diagnostics``.
        qos_depth: history depth of the sensor subscriptions.
    """

    lidar_name: str = field(default="TOP", metadata={"min_len": 1})
    camera_names: list[str] = field(default_factory=lambda: ["FRONT"])
    radar_names: list[str] = field(default_factory=lambda: ["RADAR_FRONT"])
    camera_tolerance_s: float = field(default=0.05, metadata={"ge": 0.0, "le": 1.0})
    radar_tolerance_s: float = field(default=0.05, metadata={"ge": 0.0, "le": 1.0})
    timeout_s: float = field(default=0.2, metadata={"gt": 0.0, "le": 10.0})
    buffer_size: int = field(default=16, metadata={"ge": 1, "le": 1000})
    compensate_motion: bool = True
    image_transport: str = field(default="raw", metadata={"choices": ["raw", "compressed"]})
    vehicle_frame: str = field(default="base_link", metadata={"min_len": 1})
    diagnostics_period_s: float = field(default=1.0, metadata={"gt": 0.0})
    qos_depth: int = field(default=5, metadata={"ge": 1, "le": 100})

    def sync_config(self) -> SyncConfig:
        return SyncConfig(reference=self.lidar_name, cameras=tuple(self.camera_names),
                          radars=tuple(self.radar_names),
                          camera_tolerance_s=self.camera_tolerance_s,
                          radar_tolerance_s=self.radar_tolerance_s, timeout_s=self.timeout_s,
                          buffer_size=self.buffer_size, compensate_motion=self.compensate_motion)

    def validate(self) -> None:
        self.sync_config().validate()
