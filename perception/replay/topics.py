"""Which bag topic carries which sensor: the topic map.

A map assigns topics to *roles* (types read; default topic, our names):

* ``lidar`` or ``lidar.NAME``: ``sensor_msgs/PointCloud2``; ``/sensors/lidar/points``;
* ``camera.NAME``: ``sensor_msgs/Image`` or ``CompressedImage``;
  ``/sensors/camera/<name>/image_raw[/compressed]``;
* ``camera_info.NAME``: ``sensor_msgs/CameraInfo``; the image topic's ``.../camera_info``;
* ``radar.NAME``: ``sensor_msgs/PointCloud2``; ``/sensors/radar/<name>/points``;
* ``ego_pose``: ``geometry_msgs/PoseStamped`` or ``nav_msgs/Odometry``; ``/ego/pose``;
* ``tf``: ``tf2_msgs/TFMessage`` (world -> vehicle poses); ``/tf`` when there is no ego pose;
* ``tf_static``: ``tf2_msgs/TFMessage``; ``/tf_static``;
* ``ground_truth``: ``vision_msgs/Detection3DArray``; ``/ground_truth`` or
  ``/sim/ground_truth``.

Explicit entries come from ``--map ROLE=TOPIC`` or a YAML file of the same ``ROLE: TOPIC``
pairs; the defaults fill every role not given, from the topics the bag has (a camera ``NAME``
is the upper-cased ``<name>`` of its default topic, so ``/sensors/camera/front/...`` is
camera ``FRONT``). The lidar is named ``NAME`` when given (``lidar.TOP=/points``), else
:data:`DEFAULT_LIDAR_NAME`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..config import load_yaml_with_base
from ..errors import ConfigError
from ..rosmsg.topics import EGO_POSE, LIDAR_POINTS, SIM_GROUND_TRUTH, TF, TF_STATIC
from .bag import BagTopic

GROUND_TRUTH_TOPICS = ("/ground_truth", SIM_GROUND_TRUTH)
DEFAULT_LIDAR_NAME = "TOP"
CAMERA_TOPIC = re.compile(r"^/sensors/camera/([^/]+)/image_raw(/compressed)?$")
RADAR_TOPIC = re.compile(r"^/sensors/radar/([^/]+)/points$")

POINT_CLOUD = "sensor_msgs/msg/PointCloud2"
IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
POSE_TYPES = ("geometry_msgs/msg/PoseStamped", "nav_msgs/msg/Odometry")
TF_MESSAGE = "tf2_msgs/msg/TFMessage"
DETECTION_ARRAY = "vision_msgs/msg/Detection3DArray"
SINGLE_ROLES = ("lidar", "ego_pose", "tf", "tf_static", "ground_truth")
NAMED_ROLES = ("camera", "camera_info", "radar")


@dataclass(frozen=True)
class TopicMap:
    """Topics per role (see the module doc); None or empty where the log has none.

    Attributes:
        lidar: the reference lidar's topic; ``lidar_name`` its sensor name.
        cameras, camera_infos, radars: sensor name -> topic.
        ego_pose, tf, tf_static, ground_truth: topics, or None.
    """

    lidar: str | None = None
    lidar_name: str = DEFAULT_LIDAR_NAME
    cameras: Mapping[str, str] = field(default_factory=dict)
    camera_infos: Mapping[str, str] = field(default_factory=dict)
    radars: Mapping[str, str] = field(default_factory=dict)
    ego_pose: str | None = None
    tf: str | None = None
    tf_static: str | None = None
    ground_truth: str | None = None

    def roles(self) -> list[tuple[str, str]]:
        """``(role, topic)`` pairs (``("camera.FRONT", "/...")``), every mapped role."""
        pairs = [(role, topic) for role, topic in (
            ("lidar", self.lidar), ("ego_pose", self.ego_pose), ("tf", self.tf),
            ("tf_static", self.tf_static), ("ground_truth", self.ground_truth)) if topic]
        for prefix, table in (("camera", self.cameras), ("camera_info", self.camera_infos),
                              ("radar", self.radars)):
            pairs += [(f"{prefix}.{name}", topic) for name, topic in sorted(table.items())]
        return pairs

    def role_of(self) -> dict[str, str]:
        """topic -> role (``"camera.FRONT"``, ``"lidar"``, ...)."""
        return {topic: role for role, topic in self.roles()}

    @property
    def topics(self) -> tuple[str, ...]:
        """Every mapped topic, sorted."""
        return tuple(sorted(self.role_of()))


def parse_entries(items: Iterable[str]) -> dict[str, str]:
    """``["lidar=/points", "camera.FRONT=/cam0/image_raw"]`` -> ``{role: topic}``.

    Raises:
        ConfigError: an item without ``=``, an unknown role or a topic not starting with ``/``.
    """
    entries: dict[str, str] = {}
    for item in items:
        role, sep, topic = item.partition("=")
        if not sep:
            raise ConfigError(f"--map {item!r}: expected ROLE=TOPIC, e.g. lidar=/velodyne_points")
        entries[_check_role(role.strip())] = _check_topic(role, topic.strip())
    return entries


def load_entries(path: str | Path) -> dict[str, str]:
    """A YAML file of ``ROLE: TOPIC`` pairs -> ``{role: topic}``."""
    data = load_yaml_with_base(Path(path))
    return {_check_role(str(role), str(path)): _check_topic(str(role), str(topic), str(path))
            for role, topic in data.items()}


def _check_role(role: str, where: str = "--map") -> str:
    head, _, name = role.partition(".")
    if (head in SINGLE_ROLES and (not name or head == "lidar")) or \
            (head in NAMED_ROLES and name):
        return role
    raise ConfigError(f"{where}: unknown role {role!r}; roles are {list(SINGLE_ROLES)}, "
                      f"lidar.NAME and {[r + '.NAME' for r in NAMED_ROLES]}")


def _check_topic(role: str, topic: str, where: str = "--map") -> str:
    if not topic.startswith("/"):
        raise ConfigError(f"{where}: {role}: a topic starts with '/', got {topic!r}")
    return topic


def build_topic_map(entries: Mapping[str, str], bag_topics: Mapping[str, BagTopic],
                    discover: bool = True) -> TopicMap:
    """The explicit ``entries`` plus the defaults found in ``bag_topics`` (``discover``),
    every topic checked against the bag.

    Raises:
        ConfigError: a mapped topic the bag does not have, or of a type the role cannot read.
    """
    lidar, lidar_name = None, DEFAULT_LIDAR_NAME
    singles: dict[str, str | None] = {role: None for role in SINGLE_ROLES if role != "lidar"}
    named: dict[str, dict[str, str]] = {role: {} for role in NAMED_ROLES}
    for role, topic in entries.items():
        head, _, name = role.partition(".")
        if head == "lidar":
            lidar, lidar_name = topic, name or DEFAULT_LIDAR_NAME
        elif head in named:
            named[head][name] = topic
        else:
            singles[head] = topic
    if discover:
        lidar = lidar or (LIDAR_POINTS if LIDAR_POINTS in bag_topics else None)
        _discover_sensors(bag_topics, named, entries.values())
        _discover_singles(bag_topics, singles, entries)
    _discover_camera_infos(bag_topics, named, entries.values())
    topic_map = TopicMap(lidar, lidar_name, named["camera"], named["camera_info"],
                         named["radar"], **singles)
    check_types(topic_map, bag_topics)
    return topic_map


def _discover_sensors(bag_topics: Mapping[str, BagTopic], named: dict[str, dict[str, str]],
                      taken: Iterable[str] = ()) -> None:
    given = set(taken)
    for topic in sorted(bag_topics):
        if topic in given:
            continue
        camera, radar = CAMERA_TOPIC.match(topic), RADAR_TOPIC.match(topic)
        if camera:
            name = camera.group(1).upper()
            # both transports recorded: the compressed one holds the original bytes
            if name not in named["camera"] or camera.group(2):
                named["camera"][name] = topic
        elif radar:
            named["radar"].setdefault(radar.group(1).upper(), topic)


def _discover_singles(bag_topics: Mapping[str, BagTopic], singles: dict[str, str | None],
                      given: Iterable[str] = ()) -> None:
    defaults = {"ego_pose": (EGO_POSE,), "tf": (TF,), "tf_static": (TF_STATIC,),
                "ground_truth": GROUND_TRUTH_TOPICS}
    for role, candidates in defaults.items():
        if singles[role] is None:
            singles[role] = next((t for t in candidates if t in bag_topics), None)
    if singles["ego_pose"] is not None and "tf" not in given:
        singles["tf"] = None  # the same poses twice would only repeat them


def _discover_camera_infos(bag_topics: Mapping[str, BagTopic],
                           named: dict[str, dict[str, str]], taken: Iterable[str] = ()) -> None:
    taken = set(taken)
    for name, topic in named["camera"].items():
        if name in named["camera_info"]:
            continue
        base = topic.removesuffix("/compressed").rpartition("/")[0]
        sibling = f"{base}/camera_info"
        if sibling in bag_topics and sibling not in taken:
            named["camera_info"][name] = sibling


def check_types(topic_map: TopicMap, bag_topics: Mapping[str, BagTopic]) -> None:
    """Every mapped topic exists in the bag with a type its role reads.

    Raises:
        ConfigError: naming the role, the topic, its type and the types the role reads.
    """
    expected = {"lidar": (POINT_CLOUD,), "camera": IMAGE_TYPES, "camera_info": (CAMERA_INFO,),
                "radar": (POINT_CLOUD,), "ego_pose": POSE_TYPES, "tf": (TF_MESSAGE,),
                "tf_static": (TF_MESSAGE,), "ground_truth": (DETECTION_ARRAY,)}
    seen: dict[str, str] = {}
    for role, topic in topic_map.roles():
        if topic in seen:
            raise ConfigError(f"topic {topic} is mapped twice: {seen[topic]} and {role}")
        seen[topic] = role
        if topic not in bag_topics:
            raise ConfigError(f"{role}: topic {topic} is not in the log (its topics: "
                              f"{sorted(bag_topics)})")
        allowed = expected[role.partition(".")[0]]
        if bag_topics[topic].msgtype not in allowed:
            raise ConfigError(f"{role}: topic {topic} has type {bag_topics[topic].msgtype}, "
                              f"but {role.partition('.')[0]} reads {' or '.join(allowed)}")
