"""The simulator: scenario + world + sensor models -> SensorFrames and a time-ordered stream.

Timing: scenario time ``t_s = (stamp_ns - start_stamp_ns) / 1e9``. Sensor tick ``k`` of a
sensor with rate ``f`` and trigger offset ``o`` is stamped ``start + round(k / f * 1e9) +
round(o * 1e9)``. Each message's noise comes from a generator seeded by ``(seed, sensor, k)``,
so a message is identical whether it is produced by :meth:`Simulator.frames` or by
:meth:`Simulator.stream`, and the same seed always gives the same output.

Frame ``i`` of :meth:`Simulator.frames` is built around lidar tick ``i``: each camera and radar
contributes its tick nearest to the lidar stamp, the ego pose and the ground truth are taken at
the lidar stamp.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ...geometry import count_points_in_boxes, invert_transform
from ...types import (
    LEVEL_2_MAX_POINTS,
    Boxes3D,
    CameraImage,
    Difficulty,
    EgoPose,
    LidarSweep,
    RadarScan,
    SensorFrame,
    wrap_heading,
)
from .camera import CameraModel, CameraRender
from .lidar import LidarModel, LidarScanResult
from .messages import EGO_POSE_SENSOR_NAME, MessageKind, StreamMessage
from .presets import resolve_config
from .radar import RadarModel
from .scenario import LAP_ID_STRIDE, Scenario, make_scenario
from .settings import SimConfig
from .world import World, WorldSnapshot

NS_PER_S = 1_000_000_000
_LIDAR_STREAM, _CAMERA_STREAM, _RADAR_STREAM, _EGO_STREAM = 0, 1000, 2000, 3000
"""Offsets of the per-sensor noise-stream ids (camera i uses 1000 + i, and so on)."""


class Simulator:
    """Seeded multi-sensor driving simulator.

    Args:
        config_or_preset: a preset name (``"waymo_like"``, ``"nuscenes_like"``, ``"vlp16"``,
            ``"tiny"``), a path to a YAML file, or a :class:`SimConfig`.
        seed: scenario and noise seed.

    Raises:
        ConfigError: unknown preset, invalid values or an impossible layout.
    """

    def __init__(self, config_or_preset: str | Path | SimConfig, seed: int = 0):
        self.config: SimConfig = resolve_config(config_or_preset)
        self.seed = int(seed)
        self.scenario: Scenario = make_scenario(self.config.scenario, self.seed)
        self.world = World(self.scenario)
        rig = self.config.rig
        self.lidar = LidarModel(rig.lidar)
        self.cameras = {c.name: CameraModel(c) for c in rig.cameras}
        self.radars = {r.name: RadarModel(r) for r in rig.radars}
        self.start_stamp_ns = int(self.config.scenario.start_stamp_ns)
        self.sequence_id = f"{self.config.scenario.sequence_id}-seed{self.seed}"

    # ---------------------------------------------------------------------------------------
    # Timing
    # ---------------------------------------------------------------------------------------

    def _tick_stamp(self, k: int, rate_hz: float, offset_s: float = 0.0) -> int:
        return self.start_stamp_ns + int(round(k * NS_PER_S / rate_hz)) \
            + int(round(offset_s * NS_PER_S))

    def _nearest_tick(self, stamp_ns: int, rate_hz: float, offset_s: float) -> int:
        rel_s = (stamp_ns - self.start_stamp_ns) / NS_PER_S - offset_s
        return max(int(round(rel_s * rate_hz)), 0)

    def scenario_time_s(self, stamp_ns: int) -> float:
        return (int(stamp_ns) - self.start_stamp_ns) / NS_PER_S

    def lidar_stamp_ns(self, k: int) -> int:
        return self._tick_stamp(k, self.lidar.cfg.rate_hz)

    def _rng(self, stream: int, k: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, stream, int(k)])

    def _snapshot(self, t_s: float) -> WorldSnapshot:
        return self.world.snapshot(t_s)

    # ---------------------------------------------------------------------------------------
    # Single sensor outputs
    # ---------------------------------------------------------------------------------------

    def ego_pose(self, stamp_ns: int) -> EgoPose:
        """Ego pose (world frame) with velocities in the vehicle frame, at ``stamp_ns``."""
        motion = self.scenario.ego_motion(self.scenario_time_s(stamp_ns))
        return EgoPose(int(stamp_ns), motion.transforms()[0],
                       linear_velocity=np.array([motion.speed_mps[0], 0.0, 0.0]),
                       angular_velocity=np.array([0.0, 0.0, motion.yaw_rate[0]]))

    def lidar_scan(self, k: int) -> LidarScanResult:
        """Lidar tick ``k`` with per-point truth (actor ids, beam indices, true ranges)."""
        stamp = self.lidar_stamp_ns(k)
        return self.lidar.scan(stamp, self.scenario_time_s(stamp), self.scenario.ego_motion,
                               self._snapshot, self._rng(_LIDAR_STREAM, k))

    def render_camera(self, name: str, k: int) -> CameraRender:
        """Camera ``name`` tick ``k`` with per-pixel actor ids and depth."""
        model, index = self._camera(name)
        stamp = self._tick_stamp(k, model.cfg.rate_hz, model.cfg.trigger_offset_s)
        t_s = self.scenario_time_s(stamp)
        return model.render(stamp, self.scenario.ego_motion(t_s), self._snapshot(t_s),
                            self._rng(_CAMERA_STREAM + index, k))

    def radar_scan(self, name: str, k: int) -> RadarScan:
        """Radar ``name`` tick ``k``."""
        if name not in self.radars:
            raise KeyError(f"no radar {name!r}; radars are {sorted(self.radars)}")
        model = self.radars[name]
        index = list(self.radars).index(name)
        stamp = self._tick_stamp(k, model.cfg.rate_hz, model.cfg.trigger_offset_s)
        t_s = self.scenario_time_s(stamp)
        return model.scan(stamp, t_s, self.scenario.ego_motion(t_s), self._snapshot(t_s),
                          self.scenario, self._rng(_RADAR_STREAM + index, k))

    def _camera(self, name: str) -> tuple[CameraModel, int]:
        if name not in self.cameras:
            raise KeyError(f"no camera {name!r}; cameras are {sorted(self.cameras)}")
        return self.cameras[name], list(self.cameras).index(name)

    def ground_truth(self, stamp_ns: int, sweep: LidarSweep | None) -> Boxes3D:
        """Boxes of the actors within ``label_range_m`` at ``stamp_ns``, vehicle frame.

        ``num_points`` is :func:`perception.geometry.count_points_in_boxes` on ``sweep``;
        boxes with fewer than ``min_label_points`` are dropped (when a sweep is given).
        ``difficulty`` is set explicitly by the Waymo rule: LEVEL_2 when ``num_points <= 5``,
        else LEVEL_1 (so it agrees with :meth:`Boxes3D.levels`).
        """
        t_s = self.scenario_time_s(stamp_ns)
        states = self.scenario.actor_states(t_s)
        ego = self.scenario.ego_motion(t_s)
        T_vw = invert_transform(ego.transforms()[0])
        centers = states.center @ T_vw[:3, :3].T + T_vw[:3, 3]
        actors = self.scenario.actors
        sizes = np.array([a.size_lwh_m for a in actors]).reshape(-1, 3)
        headings = wrap_heading(states.heading - ego.heading[0])
        boxes = np.column_stack([centers, sizes, headings]).astype(np.float32)
        velocities = (np.column_stack([states.velocity, np.zeros(len(actors))])
                      @ T_vw[:3, :3].T)[:, :2]
        keep = np.hypot(centers[:, 0], centers[:, 1]) <= self.config.scenario.actors.label_range_m
        num_points = np.zeros(len(actors), np.int32)
        if sweep is not None:
            near = _near_boxes(sweep.xyz, boxes[keep])
            num_points[keep] = count_points_in_boxes(sweep.xyz[near], boxes[keep])
            keep &= num_points >= self.config.scenario.actors.min_label_points
        difficulty = np.where(num_points <= LEVEL_2_MAX_POINTS, Difficulty.LEVEL_2,
                              Difficulty.LEVEL_1).astype(np.int8)
        labels = np.array([int(a.object_class) for a in actors], np.int32)
        ids = np.array([a.actor_id for a in actors], np.int64) + states.lap * LAP_ID_STRIDE
        return Boxes3D(boxes[keep], labels[keep], ids=ids[keep],
                       velocities=velocities[keep].astype(np.float32),
                       num_points=num_points[keep] if sweep is not None else None,
                       difficulty=difficulty[keep] if sweep is not None else None)

    # ---------------------------------------------------------------------------------------
    # Public iteration
    # ---------------------------------------------------------------------------------------

    def frame(self, index: int) -> SensorFrame:
        """Synchronised frame ``index`` (built around lidar tick ``index``)."""
        scan = self.lidar_scan(index)
        stamp = scan.sweep.stamp_ns
        cameras: dict[str, CameraImage] = {}
        for name, model in self.cameras.items():
            k = self._nearest_tick(stamp, model.cfg.rate_hz, model.cfg.trigger_offset_s)
            cameras[name] = self.render_camera(name, k).image
        radars: dict[str, RadarScan] = {}
        for name, model in self.radars.items():
            k = self._nearest_tick(stamp, model.cfg.rate_hz, model.cfg.trigger_offset_s)
            radars[name] = self.radar_scan(name, k)
        return SensorFrame(stamp, self.sequence_id, index, lidar=scan.sweep, cameras=cameras,
                           radars=radars, ego_pose=self.ego_pose(stamp),
                           boxes=self.ground_truth(stamp, scan.sweep), source="sim")

    def frames(self, n: int) -> Iterator[SensorFrame]:
        """Yield ``n`` synchronised frames with ground-truth boxes, at the lidar rate."""
        for index in range(int(n)):
            yield self.frame(index)

    def frame_messages(self, frame: SensorFrame) -> list[StreamMessage]:
        """The messages a live rig delivers for ``frame`` (a frame of this simulator): its
        lidar sweep, camera images and radar scans, each at its own stamp, plus an ego pose
        at every one of those stamps, in stamp order (ties as in :meth:`stream`). Feeding
        them to a sensor sync rebuilds the frame, without rendering the sensor ticks no frame
        uses."""
        items = [(frame.lidar.stamp_ns, 0, frame.lidar.sensor_name, frame.lidar)]
        items += [(c.stamp_ns, 1, name, c) for name, c in frame.cameras.items()]
        items += [(r.stamp_ns, 2, name, r) for name, r in frame.radars.items()]
        stamps = sorted({stamp for stamp, *_ in items})
        items += [(stamp, 3, EGO_POSE_SENSOR_NAME, self.ego_pose(stamp)) for stamp in stamps]
        kinds = (MessageKind.LIDAR, MessageKind.CAMERA, MessageKind.RADAR, MessageKind.EGO_POSE)
        items.sort(key=lambda item: item[:3])
        return [StreamMessage(kinds[kind], name, stamp, payload)
                for stamp, kind, name, payload in items]

    def stream(self, duration_s: float) -> Iterator[StreamMessage]:
        """Yield every sensor message stamped in ``[start, start + duration_s)``, in stamp order
        (ties: lidar, camera, radar, ego pose, then by sensor name). Payloads are produced
        lazily, one message at a time."""
        end_ns = self.start_stamp_ns + int(round(float(duration_s) * NS_PER_S))
        schedule = []
        schedule += [(stamp, 0, self.lidar.cfg.name, k) for k, stamp in
                     self._ticks(self.lidar.cfg.rate_hz, 0.0, end_ns)]
        for name, model in self.cameras.items():
            schedule += [(stamp, 1, name, k) for k, stamp in
                         self._ticks(model.cfg.rate_hz, model.cfg.trigger_offset_s, end_ns)]
        for name, model in self.radars.items():
            schedule += [(stamp, 2, name, k) for k, stamp in
                         self._ticks(model.cfg.rate_hz, model.cfg.trigger_offset_s, end_ns)]
        schedule += [(stamp, 3, EGO_POSE_SENSOR_NAME, k) for k, stamp in
                     self._ticks(self.config.rig.ego_pose_rate_hz, 0.0, end_ns)]
        schedule.sort()
        for stamp, kind, name, k in schedule:
            yield self._message(kind, name, k, stamp)

    def _ticks(self, rate_hz: float, offset_s: float, end_ns: int) -> list[tuple[int, int]]:
        ticks = []
        k = 0
        while True:
            stamp = self._tick_stamp(k, rate_hz, offset_s)
            if stamp >= end_ns:
                return ticks
            if stamp >= self.start_stamp_ns:
                ticks.append((k, stamp))
            k += 1

    def _message(self, kind: int, name: str, k: int, stamp: int) -> StreamMessage:
        if kind == 0:
            return StreamMessage(MessageKind.LIDAR, name, stamp, self.lidar_scan(k).sweep)
        if kind == 1:
            return StreamMessage(MessageKind.CAMERA, name, stamp, self.render_camera(name, k).image)
        if kind == 2:
            return StreamMessage(MessageKind.RADAR, name, stamp, self.radar_scan(name, k))
        return StreamMessage(MessageKind.EGO_POSE, name, stamp, self.ego_pose(stamp))


def _near_boxes(xyz: np.ndarray, boxes: np.ndarray, cell_m: float = 2.0) -> np.ndarray:
    """(N,) bool: points in BEV grid cells touched by some box's bounding circle.

    A conservative prefilter (it never drops a point inside a box), so counting on the kept
    points gives exactly :func:`count_points_in_boxes` on the whole sweep, several times faster.
    """
    if len(boxes) == 0:
        return np.zeros(len(xyz), bool)
    radius = 0.5 * np.linalg.norm(boxes[:, 3:6], axis=1) + cell_m
    lo = (boxes[:, :2] - radius[:, None]).min(axis=0)
    hi = (boxes[:, :2] + radius[:, None]).max(axis=0)
    shape = np.ceil((hi - lo) / cell_m).astype(int) + 1
    grid = np.zeros(shape, bool)
    for centre, r in zip(boxes[:, :2], radius):
        i0, j0 = np.floor((centre - r - lo) / cell_m).astype(int)
        i1, j1 = np.floor((centre + r - lo) / cell_m).astype(int)
        grid[max(i0, 0):i1 + 1, max(j0, 0):j1 + 1] = True
    ij = np.floor((xyz[:, :2] - lo) / cell_m).astype(np.int64)
    inside = (ij >= 0).all(axis=1) & (ij[:, 0] < shape[0]) & (ij[:, 1] < shape[1])
    near = np.zeros(len(xyz), bool)
    near[inside] = grid[ij[inside, 0], ij[inside, 1]]
    return near
