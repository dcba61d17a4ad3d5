"""Parameter schemas of the nodes: types, ranges and defaults.

Each node validates its ROS parameters (from ``config/<node>.param.yaml``, launch files,
``-p`` overrides and the launch arguments in ``launch_overrides``) into one of these
dataclasses with :func:`perception.config.from_dict`; an unknown name, a wrong type or an
out-of-range value stops the node before it does anything, with a message naming the
parameter (see :func:`ros_nodes.node_base.load_parameters`). docs/ros.md has the same tables.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from perception.align import SyncConfig
from perception.config import from_dict, read_yaml_mapping
from perception.errors import ConfigError

T = TypeVar("T")
PARAMETERS_KEY = "ros__parameters"

IMAGE_TRANSPORTS = ("raw", "jpeg", "png")
LAUNCH_OVERRIDES = "launch_overrides"
"""The string parameter through which launch files pass launch arguments to a node (see
:func:`parse_launch_overrides`); it is not part of any schema."""
_OVERRIDE_NAME = re.compile(r"(?:^|\s+)([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):=")
_FLOAT = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def parse_override_value(text: str) -> Any:
    """A value typed like ``-p name:=value`` types it: YAML (``3`` int, ``0.5`` float,
    ``true`` bool, ``[a, b]`` list, else a string), and ``1e3`` a float as rcl reads it.
    Text that is not valid YAML stays a string, for the schema to refuse by name."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and _FLOAT.fullmatch(text):
        return float(text)
    return value


def parse_launch_overrides(text: Any, where: str = LAUNCH_OVERRIDES) -> dict[str, Any]:
    """``"name:=value name:=value ..."`` -> ``{name: typed value}``, skipping empty values.

    A launch argument that overrides a parameter file key defaults to an empty string, and
    the launch file passes all of them in this one string parameter, for example
    ``"timeout_s:=$(var timeout_s) image_transport:=$(var image_transport)"``. An empty value
    means the user did not give the argument, so the parameter file's value stays; a given
    value replaces it. One string parameter works under ``ros2 launch`` too, which refuses a
    parameter whose value is empty. A value runs up to the next `` name:=``, so values may
    hold spaces (``radar_names:=[A, B]``).

    Raises:
        ConfigError: ``text`` is not a string, or does not start with ``name:=``.
    """
    if not isinstance(text, str):
        raise ConfigError(f"{where}: expected a string of name:=value items, got "
                          f"{type(text).__name__} {text!r}")
    matches = list(_OVERRIDE_NAME.finditer(text))
    head = text[:matches[0].start()] if matches else text
    if head.strip():
        raise ConfigError(f"{where}: expected name:=value items separated by spaces, got "
                          f"{text!r}")
    overrides: dict[str, Any] = {}
    for match, following in zip(matches, [*matches[1:], None]):
        value = text[match.end():following.start() if following else len(text)].strip()
        if value:
            overrides[match.group(1)] = parse_override_value(value)
    return overrides


def load_param_file(path: str | Path, schema: type[T], node_name: str) -> T:
    """Validate a parameter file (what ``--params-file`` gives a node) into ``schema``, as the
    node would validate what rcl reads from it, without ROS (a launcher or CI checks the files
    before any node starts).

    The file maps node names to ``{ros__parameters: {...}}``; the entries that apply to
    ``node_name`` (``/**``, ``/*``, ``node_name`` and ``/node_name``) are merged in file order.
    As rcl reads them, nested mappings are parameters with dotted names, a list holds
    values of one type, and a list of lists or an empty value is refused.

    Raises:
        ConfigError: not a parameter file (bad YAML, not UTF-8, wrong structure), or a
            parameter that the schema refuses; the message names the file and the key.
    """
    path = Path(path)
    data = read_yaml_mapping(path)
    keys = ("/**", "/*", node_name, f"/{node_name.lstrip('/')}")
    values: dict[str, Any] = {}
    for key, entry in data.items():
        if not isinstance(key, str):
            raise ConfigError(f"{path}: node names are strings, got {key!r}")
        if not isinstance(entry, dict) or set(entry) != {PARAMETERS_KEY}:
            raise ConfigError(f"{path}: {key}: expected a mapping with one key "
                              f"{PARAMETERS_KEY!r}, got {_short(entry)}")
        if key not in keys:
            continue
        parameters = entry[PARAMETERS_KEY]
        if not isinstance(parameters, dict):
            raise ConfigError(f"{path}: {key}.{PARAMETERS_KEY}: expected a mapping of "
                              f"parameters, got {_short(parameters)}")
        values.update(_flatten(parameters, f"{path}: {key}.{PARAMETERS_KEY}"))
    nested: dict[str, Any] = {}
    for name, value in values.items():
        *parents, leaf = name.split(".")
        target = nested
        for parent in parents:
            target = target.setdefault(parent, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{path}: {name}: {parent} is both a value and a group")
        target[leaf] = value
    return from_dict(schema, nested, source=f"{path} (node {node_name})")


def _flatten(parameters: dict, where: str, prefix: str = "") -> dict[str, Any]:
    """``{a: {b: 1}}`` -> ``{"a.b": 1}``, each value checked as rcl checks it."""
    out: dict[str, Any] = {}
    for key, value in parameters.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}: parameter names are non-empty strings, got {key!r}")
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if not value:
                raise ConfigError(f"{where}: {name}: an empty group holds no parameter")
            out.update(_flatten(value, where, f"{name}."))
            continue
        if value is None:
            raise ConfigError(f"{where}: {name}: no value")
        if isinstance(value, list):
            kinds = {_scalar_kind(v) for v in value}
            if None in kinds:
                raise ConfigError(f"{where}: {name}: a list holds only bool, int, float or "
                                  f"string values, got {_short(value)}")
            if len(kinds) > 1 and kinds != {"int", "float"}:
                raise ConfigError(f"{where}: {name}: the values of a list must be of one type, "
                                  f"got {_short(value)}")
        elif _scalar_kind(value) is None:
            raise ConfigError(f"{where}: {name}: expected a bool, int, float, string or list "
                              f"of them, got {_short(value)}")
        out[name] = value
    return out


def _scalar_kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    return None


def _short(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text[:60]}{'...' if len(text) > 60 else ''}"


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


NUSCENES_LIDAR = "LIDAR_TOP"
NUSCENES_CAMERAS = ("CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK_LEFT",
                    "CAM_BACK_RIGHT", "CAM_BACK")
NUSCENES_RADARS = ("RADAR_FRONT", "RADAR_FRONT_LEFT", "RADAR_FRONT_RIGHT", "RADAR_BACK_LEFT",
                   "RADAR_BACK_RIGHT")
"""The rig the shipped model was trained on (the simulator's ``nuscenes_like`` preset)."""
PRECISIONS = ("fp32", "fp16")
_DEVICE = re.compile(r"cpu|cuda(?::\d+)?")


@dataclass(frozen=True)
class DetectorNodeParams:
    """``detector_node``: sensor sync, the detector, and detections with markers, debug topics
    and diagnostics.

    Attributes:
        lidar_name: the reference lidar's sensor name.
        camera_names: cameras to use (topics ``/sensors/camera/<name>/...``).
        radar_names: radars to use (topics ``/sensors/radar/<name>/points``).
        camera_tolerance_s, radar_tolerance_s: match tolerances around the sweep stamp.
        timeout_s: the longest a frame waits for late sensors after its sweep arrived; also
            how long the lidar may be silent before frames are built without it.
        max_sensor_delay_s: a camera or radar whose newest message is older than this,
            relative to the lidar stamp, is masked out of the frame and not waited for.
        lidar_fallback: without lidar for ``timeout_s``, run on cameras and radars (when the
            model has those branches).
        fallback_sensor: the camera or radar whose messages start the frames without lidar;
            empty: the first camera, else the first radar.
        buffer_size: messages kept per sensor (and frames pending) in the sync.
        compensate_motion: move lidar and radar points to the sweep stamp using the ego pose.
        image_transport: ``raw`` or ``compressed`` camera topics.
        vehicle_frame: the frame of the inputs after ``/tf_static`` and of the detections.
        model_path: a checkpoint or weights file; empty: the shipped model (checked against
            its card).
        device: ``cpu``, ``cuda`` or ``cuda:N``.
        precision: ``fp32``, or ``fp16`` (autocast, CUDA only).
        backend: inference backend of :meth:`perception.pipeline.Pipeline.from_checkpoint`.
        torch_threads: intra-op threads of torch; 0 keeps torch's default.
        score_threshold: detections below this score are not published.
        max_processing_time_ms: processing budget per frame (diagnostics WARN above it).
        processing_time_error_count: consecutive frames over budget that make an ERROR.
        publish_markers: publish ``~/output/markers``.
        diagnostics_period_s: period of ``/diagnostics``.
        qos_depth: history depth of the sensor subscriptions.
    """

    lidar_name: str = field(default=NUSCENES_LIDAR, metadata={"min_len": 1})
    camera_names: list[str] = field(default_factory=lambda: list(NUSCENES_CAMERAS))
    radar_names: list[str] = field(default_factory=lambda: list(NUSCENES_RADARS))
    camera_tolerance_s: float = field(default=0.05, metadata={"ge": 0.0, "le": 1.0})
    radar_tolerance_s: float = field(default=0.05, metadata={"ge": 0.0, "le": 1.0})
    timeout_s: float = field(default=0.2, metadata={"gt": 0.0, "le": 10.0})
    max_sensor_delay_s: float = field(default=0.5, metadata={"gt": 0.0, "le": 10.0})
    lidar_fallback: bool = True
    fallback_sensor: str = ""
    buffer_size: int = field(default=16, metadata={"ge": 1, "le": 1000})
    compensate_motion: bool = True
    image_transport: str = field(default="raw", metadata={"choices": ["raw", "compressed"]})
    vehicle_frame: str = field(default="base_link", metadata={"min_len": 1})
    model_path: str = ""
    device: str = "cpu"
    precision: str = field(default="fp32", metadata={"choices": list(PRECISIONS)})
    backend: str = field(default="torch", metadata={"min_len": 1})
    torch_threads: int = field(default=0, metadata={"ge": 0, "le": 1024})
    score_threshold: float = field(default=0.1, metadata={"ge": 0.0, "le": 1.0})
    max_processing_time_ms: float = field(default=500.0, metadata={"gt": 0.0})
    processing_time_error_count: int = field(default=5, metadata={"ge": 1, "le": 10000})
    publish_markers: bool = True
    diagnostics_period_s: float = field(default=1.0, metadata={"gt": 0.0})
    qos_depth: int = field(default=2, metadata={"ge": 1, "le": 100})

    def fallback_reference(self) -> str | None:
        """The sensor whose messages start frames without lidar, or None."""
        if not self.lidar_fallback:
            return None
        if self.fallback_sensor:
            return self.fallback_sensor
        names = list(self.camera_names) + list(self.radar_names)
        return names[0] if names else None

    def sync_config(self, fallback: bool = True) -> SyncConfig:
        """The sync's configuration; ``fallback=False`` drops the lidar fallback (a model
        without camera and radar branches)."""
        return SyncConfig(reference=self.lidar_name, cameras=tuple(self.camera_names),
                          radars=tuple(self.radar_names),
                          camera_tolerance_s=self.camera_tolerance_s,
                          radar_tolerance_s=self.radar_tolerance_s, timeout_s=self.timeout_s,
                          buffer_size=self.buffer_size, compensate_motion=self.compensate_motion,
                          max_sensor_delay_s=self.max_sensor_delay_s,
                          fallback_reference=self.fallback_reference() if fallback else None)

    def validate(self) -> None:
        if not _DEVICE.fullmatch(self.device):
            raise ValueError(f"device: expected cpu, cuda or cuda:N, got {self.device!r}")
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise ValueError(f"precision: fp16 needs a CUDA device, device is {self.device!r}")
        if self.fallback_sensor and \
                self.fallback_sensor not in list(self.camera_names) + list(self.radar_names):
            raise ValueError(f"fallback_sensor: {self.fallback_sensor!r} is not one of "
                             f"camera_names or radar_names")
        self.sync_config().validate()


@dataclass(frozen=True)
class TrackerNodeParams:
    """``tracker_node``: multi-object tracking of detection topics in the world frame.

    Attributes:
        input_topics: ``vision_msgs/Detection3DArray`` topics to track (input channels).
        can_spawn_tracks: per input topic, whether its detections may start tracks (false:
            they only update tracks that exist, as Autoware's input channels).
        tracker_config: a tracker config name in ``configs/tracking`` (``sim``, ``waymo``) or a
            YAML path (schema :class:`perception.tracking.TrackerConfig`).
        late_tolerance_s: an input stamped at most this much before the last one processed is
            dropped as late; further back, the source restarted and the tracker resets.
        trail_length: past positions per track in the markers' trails (0: no trails).
        publish_markers: publish ``~/output/markers``.
        max_processing_time_ms: processing budget per update (diagnostics WARN above it).
        processing_time_error_count: consecutive updates over budget that make an ERROR.
        diagnostics_period_s: period of ``/diagnostics``.
        qos_depth: history depth of the detection subscriptions.
    """

    input_topics: list[str] = field(default_factory=lambda: ["/detector/output/objects"],
                                    metadata={"min_len": 1})
    can_spawn_tracks: list[bool] = field(default_factory=lambda: [True])
    tracker_config: str = field(default="sim", metadata={"min_len": 1})
    late_tolerance_s: float = field(default=0.5, metadata={"ge": 0.0, "le": 60.0})
    trail_length: int = field(default=10, metadata={"ge": 0, "le": 1000})
    publish_markers: bool = True
    max_processing_time_ms: float = field(default=50.0, metadata={"gt": 0.0})
    processing_time_error_count: int = field(default=5, metadata={"ge": 1, "le": 10000})
    diagnostics_period_s: float = field(default=1.0, metadata={"gt": 0.0})
    qos_depth: int = field(default=10, metadata={"ge": 1, "le": 100})

    def validate(self) -> None:
        if len(self.can_spawn_tracks) != len(self.input_topics):
            raise ValueError(f"can_spawn_tracks: expected one flag per input topic "
                             f"({len(self.input_topics)}), got {len(self.can_spawn_tracks)}")
        if len(set(self.input_topics)) != len(self.input_topics) or \
                not all(self.input_topics):
            raise ValueError(f"input_topics: expected unique, non-empty topics, got "
                             f"{self.input_topics}")
        if not any(self.can_spawn_tracks):
            raise ValueError("can_spawn_tracks: at least one input topic must be able to start "
                             "tracks")
