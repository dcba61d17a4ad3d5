"""Sensor synchronisation (no ROS dependency).

:class:`SensorSync` turns a multi-rate stream of sensor messages (lidar sweeps, camera
images, radar scans, ego poses), each with its own rate, latency and jitter, into
:class:`AlignedFrame` objects:

* the lidar sweep is the reference: one frame per sweep, stamped with the sweep's stamp;
* each configured camera and radar contributes its message nearest to the reference stamp,
  if one lies within that modality's tolerance;
* a frame goes out as soon as every sensor is decided (it has a message stamped at or after
  the reference, so no better match will come) or, at the latest, ``timeout_s`` after the
  sweep arrived. Sensors without a match are listed in :attr:`AlignedFrame.missing` and the
  frame carries only the modalities that are present;
* every buffer is bounded (``buffer_size`` messages per sensor, ``buffer_size`` pending
  sweeps, ``pose_buffer_size`` poses); what falls out is counted in :attr:`SensorSync.stats`.

Time: stamps are int64 ns (``stamp_ns``). Timeouts compare *arrival* times (``arrival_ns``,
any monotonic clock in ns, e.g. the receive time), never stamps, so a sensor whose clock is
offset does not stall the sync.

Lidar and radar points go out moved to the reference stamp (:mod:`.ego_motion`); where the
poses do not cover the needed times the frame goes out uncompensated and says so
(:attr:`AlignedFrame.motion_compensated`).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from ..types import CameraImage, EgoPose, LidarSweep, Modality, RadarScan, SensorFrame
from .ego_motion import (
    NS_PER_S,
    PoseBuffer,
    capture_range,
    compensate_scan,
    compensate_sweep,
)


@dataclass(frozen=True)
class SyncConfig:
    """What to synchronise and how long to wait.

    Attributes:
        reference: name of the reference lidar (``LidarSweep.sensor_name``).
        cameras: camera names to match (``CameraImage.name``).
        radars: radar names to match (``RadarScan.sensor_name``).
        camera_tolerance_s: a camera image matches when ``|stamp - ref| <= tolerance``.
        radar_tolerance_s: the same for radar scans.
        timeout_s: a frame goes out at the latest this long after its sweep arrived.
        buffer_size: messages kept per sensor, and pending sweeps.
        compensate_motion: move lidar and radar points to the reference stamp.
        pose_buffer_size: ego poses kept.
    """

    reference: str = "TOP"
    cameras: tuple[str, ...] = ()
    radars: tuple[str, ...] = ()
    camera_tolerance_s: float = field(default=0.05, metadata={"ge": 0.0})
    radar_tolerance_s: float = field(default=0.05, metadata={"ge": 0.0})
    timeout_s: float = field(default=0.2, metadata={"gt": 0.0})
    buffer_size: int = field(default=16, metadata={"ge": 1})
    compensate_motion: bool = True
    pose_buffer_size: int = field(default=400, metadata={"ge": 2})

    def validate(self) -> None:
        names = (self.reference,) + tuple(self.cameras) + tuple(self.radars)
        if len(set(names)) != len(names):
            raise ValueError(f"sensor names must be unique, got {names}")


@dataclass
class SensorStats:
    """Counters of one sensor (all cumulative).

    Attributes:
        received: messages pushed.
        used: messages that went out in a frame.
        dropped_late: arrived after every frame it could belong to had gone out.
        dropped_unmatched: left the buffer without matching any frame (or, for the reference,
            pushed out of a full pending queue).
        dropped_overflow: pushed out of a full buffer.
        missing: frames that went out without this sensor.
    """

    received: int = 0
    used: int = 0
    dropped_late: int = 0
    dropped_unmatched: int = 0
    dropped_overflow: int = 0
    missing: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_late + self.dropped_unmatched + self.dropped_overflow


@dataclass(frozen=True, eq=False)
class AlignedFrame:
    """One synchronised frame.

    Attributes:
        frame: the :class:`SensorFrame` (stamp = reference sweep stamp, vehicle frame at that
            stamp when ``motion_compensated``); its ``ego_pose`` is interpolated at the
            reference stamp when poses cover it.
        missing: configured sensors that had no message within tolerance.
        offsets_ns: per present sensor, its message stamp minus the reference stamp.
        motion_compensated: lidar and radar points were moved to the reference stamp.
        reference_arrival_ns: arrival time of the sweep.
        emitted_arrival_ns: the arrival-clock time at which the frame went out.
        timed_out: the frame went out because of the timeout, not because it was complete.
    """

    frame: SensorFrame
    missing: tuple[str, ...]
    offsets_ns: dict[str, int]
    motion_compensated: bool
    reference_arrival_ns: int
    emitted_arrival_ns: int
    timed_out: bool

    @property
    def stamp_ns(self) -> int:
        return self.frame.stamp_ns

    @property
    def modalities(self) -> frozenset[Modality]:
        return self.frame.modalities


@dataclass(frozen=True)
class _Pending:
    stamp_ns: int
    sweep: LidarSweep
    arrival_ns: int


class SensorSync:
    """Approximate-time synchroniser with the lidar sweep as the reference (see the module
    doc). Push messages in arrival order; each push returns the frames that became ready.

    Args:
        config: sensors, tolerances, timeout and buffer sizes.
        sequence_id: ``SensorFrame.sequence_id`` of the frames.
    """

    def __init__(self, config: SyncConfig, sequence_id: str = "live"):
        self.config = config
        self.sequence_id = sequence_id
        self.poses = PoseBuffer(config.pose_buffer_size)
        self.tolerance_ns = {name: int(round(config.camera_tolerance_s * NS_PER_S))
                             for name in config.cameras}
        self.tolerance_ns.update({name: int(round(config.radar_tolerance_s * NS_PER_S))
                                  for name in config.radars})
        self.modality_of = {name: Modality.CAMERA for name in config.cameras}
        self.modality_of.update({name: Modality.RADAR for name in config.radars})
        self.stats = {name: SensorStats() for name in (config.reference,) + tuple(
            config.cameras) + tuple(config.radars)}
        self.timeout_ns = int(round(config.timeout_s * NS_PER_S))
        self._pending: list[_Pending] = []
        self._buffers: dict[str, list[tuple[int, CameraImage | RadarScan]]] = {
            name: [] for name in self.tolerance_ns}
        self._used: dict[str, set[int]] = {name: set() for name in self.tolerance_ns}
        self._last_emitted_ns: int | None = None
        self._frame_index = 0

    # --------------------------------------------------------------------------------------
    # Input
    # --------------------------------------------------------------------------------------

    def push(self, payload: LidarSweep | CameraImage | RadarScan | EgoPose,
             arrival_ns: int) -> list[AlignedFrame]:
        """Add one message (dispatching on its type) and return the frames now ready.

        Messages from sensors that are not configured are ignored.
        """
        if isinstance(payload, EgoPose):
            self.poses.add(payload)
        elif isinstance(payload, LidarSweep):
            self._push_sweep(payload, arrival_ns)
        elif isinstance(payload, (CameraImage, RadarScan)):
            name = payload.name if isinstance(payload, CameraImage) else payload.sensor_name
            if name in self._buffers:
                self._push_sensor(name, payload, arrival_ns)
        else:
            raise TypeError(f"cannot synchronise a {type(payload).__name__}")
        return self.poll(arrival_ns)

    def poll(self, now_ns: int) -> list[AlignedFrame]:
        """The frames that are complete or timed out at arrival-clock time ``now_ns``."""
        frames = []
        while self._pending:
            head = self._pending[0]
            timed_out = now_ns - head.arrival_ns >= self.timeout_ns
            if not timed_out and not self._complete(head):
                break
            self._pending.pop(0)
            frames.append(self._emit(head, now_ns, timed_out))
        return frames

    def flush(self, now_ns: int) -> list[AlignedFrame]:
        """Emit every pending frame now with what has arrived (end of a stream)."""
        frames = []
        while self._pending:
            frames.append(self._emit(self._pending.pop(0), now_ns, True))
        return frames

    def _push_sweep(self, sweep: LidarSweep, arrival_ns: int) -> None:
        if sweep.sensor_name != self.config.reference:
            return
        stats = self.stats[sweep.sensor_name]
        stats.received += 1
        stamps = [p.stamp_ns for p in self._pending]
        if (self._last_emitted_ns is not None and sweep.stamp_ns <= self._last_emitted_ns) \
                or sweep.stamp_ns in stamps:
            stats.dropped_late += 1
            return
        self._pending.insert(bisect.bisect(stamps, sweep.stamp_ns),
                             _Pending(sweep.stamp_ns, sweep, arrival_ns))
        if len(self._pending) > self.config.buffer_size:
            self._pending.pop(0)  # bounded: the oldest sweep never goes out
            stats.dropped_unmatched += 1

    def _push_sensor(self, name: str, payload: CameraImage | RadarScan,
                     arrival_ns: int) -> None:
        stats = self.stats[name]
        stats.received += 1
        if self._last_emitted_ns is not None and \
                payload.stamp_ns < self._last_emitted_ns - self.tolerance_ns[name]:
            stats.dropped_late += 1  # every frame it could match has gone out
            return
        buffer = self._buffers[name]
        bisect.insort(buffer, (payload.stamp_ns, payload), key=lambda item: item[0])
        if len(buffer) > self.config.buffer_size:
            stamp, _ = buffer.pop(0)
            self._count_removed(name, stamp, overflow=True)

    # --------------------------------------------------------------------------------------
    # Matching
    # --------------------------------------------------------------------------------------

    def _best(self, name: str, stamp_ns: int) -> tuple[int, CameraImage | RadarScan] | None:
        tolerance = self.tolerance_ns[name]
        candidates = [item for item in self._buffers[name]
                      if abs(item[0] - stamp_ns) <= tolerance]
        if not candidates:
            return None
        return min(candidates, key=lambda item: (abs(item[0] - stamp_ns), item[0]))

    def _complete(self, head: _Pending) -> bool:
        for name, buffer in self._buffers.items():
            # decided once a message at or after the reference arrived: later ones are further
            if not buffer or buffer[-1][0] < head.stamp_ns:
                return False
        if self.config.compensate_motion:
            # wait for a pose at or after the last needed time; poses older than the oldest
            # one buffered will not come, so the start of the range is not waited for
            _, last = self._needed_pose_range(head)
            return len(self.poses) > 0 and self.poses.last_stamp_ns >= last
        return True

    def _needed_pose_range(self, head: _Pending) -> tuple[int, int]:
        sweep = head.sweep
        first, last = capture_range(sweep.stamp_ns, sweep.columns, sweep.points)
        for name in self.config.radars:
            best = self._best(name, head.stamp_ns)
            if best is not None:
                scan = best[1]
                lo, hi = capture_range(scan.stamp_ns, scan.columns, scan.points)
                first, last = min(first, lo), max(last, hi)
        return min(first, head.stamp_ns), max(last, head.stamp_ns)

    def _emit(self, head: _Pending, now_ns: int, timed_out: bool) -> AlignedFrame:
        cameras: dict[str, CameraImage] = {}
        radars: dict[str, RadarScan] = {}
        offsets = {self.config.reference: 0}
        missing = []
        for name in self._buffers:
            best = self._best(name, head.stamp_ns)
            if best is None:
                missing.append(name)
                self.stats[name].missing += 1
                continue
            stamp, payload = best
            offsets[name] = stamp - head.stamp_ns
            if stamp not in self._used[name]:
                self._used[name].add(stamp)
                self.stats[name].used += 1
            if self.modality_of[name] is Modality.CAMERA:
                cameras[name] = payload  # type: ignore[assignment]
            else:
                radars[name] = payload  # type: ignore[assignment]
        sweep, compensated = self._compensate(head, radars)
        self.stats[self.config.reference].used += 1
        ego_pose = None
        if self.poses.covers(head.stamp_ns, head.stamp_ns):
            ego_pose = self.poses.pose_at(head.stamp_ns)
        frame = SensorFrame(head.stamp_ns, self.sequence_id, self._frame_index, lidar=sweep,
                            cameras=cameras, radars=radars, ego_pose=ego_pose, source="sync")
        self._frame_index += 1
        self._last_emitted_ns = head.stamp_ns
        self._prune(head.stamp_ns)
        return AlignedFrame(frame, tuple(missing), offsets, compensated, head.arrival_ns,
                            now_ns, timed_out)

    def _compensate(self, head: _Pending, radars: dict[str, RadarScan]
                    ) -> tuple[LidarSweep, bool]:
        if not self.config.compensate_motion:
            return head.sweep, False
        first, last = self._needed_pose_range(head)
        if not self.poses.covers(first, last):
            return head.sweep, False
        for name, scan in radars.items():
            radars[name] = compensate_scan(scan, head.stamp_ns, self.poses)
        return compensate_sweep(head.sweep, head.stamp_ns, self.poses), True

    def _prune(self, emitted_ns: int) -> None:
        """Drop messages that can no longer match a later frame (stamps are below the emitted
        reference by more than the tolerance)."""
        for name, buffer in self._buffers.items():
            horizon = emitted_ns - self.tolerance_ns[name]
            while buffer and buffer[0][0] < horizon:
                stamp, _ = buffer.pop(0)
                self._count_removed(name, stamp, overflow=False)

    def _count_removed(self, name: str, stamp: int, overflow: bool) -> None:
        if stamp in self._used[name]:
            self._used[name].discard(stamp)
            return
        if overflow:
            self.stats[name].dropped_overflow += 1
        else:
            self.stats[name].dropped_unmatched += 1
