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

Two options serve live input where sensors fail:

* ``max_sensor_delay_s``: a camera or radar whose newest message is stamped more than this
  before the reference stamp is *stale*. It is masked out of the frame (its older messages
  are not used) and the frame does not wait for it, so a dead camera costs neither a wrong
  image nor ``timeout_s`` of latency per frame. Counted in :attr:`SensorStats.stale`.
* ``fallback_reference``: once the lidar is silent for ``timeout_s``, each message of this
  camera or radar starts a frame without lidar, stamped with that message's stamp; the
  reference is listed in :attr:`AlignedFrame.missing`. Silent means both: no sweep arrived
  for ``timeout_s`` (arrival clock) and the message is stamped more than ``timeout_s`` after
  the newest sweep (so a slowed-down playback, where sweeps arrive seconds apart but their
  stamps stay close to the cameras', does not count as a silent lidar). Such a frame goes out
  ``timeout_s`` after its message arrived, not before: a sweep that arrives meanwhile cancels
  every frame without lidar still pending, and frames are built around sweeps again.

Time: stamps are int64 ns (``stamp_ns``). Timeouts compare *arrival* times (``arrival_ns``,
any monotonic clock in ns, e.g. the receive time), never stamps, so a sensor whose clock is
offset does not stall the sync.

Lidar and radar points go out moved to the reference stamp (:mod:`.ego_motion`); where the
poses do not cover the needed times the frame goes out uncompensated and says so
(:attr:`AlignedFrame.motion_compensated`). With ``defer_compensation`` the frame carries the
poses it needs instead, and :meth:`AlignedFrame.compensated` moves the points later: a live
consumer that drops frames when busy compensates only the frames it runs.
"""

from __future__ import annotations

import bisect
import dataclasses
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
        max_sensor_delay_s: a camera or radar whose newest message is older than this,
            relative to the reference stamp, is masked out and not waited for (None: off).
        fallback_reference: a camera or radar whose messages start frames without lidar once
            the lidar is silent for ``timeout_s`` (None: frames need a sweep).
        restart_after_backwards_s: a reference sweep stamped this long or more before the
            last frame out restarts the sync (a looped log, a restarted source) instead of
            being dropped as late; shorter steps back are late messages. Camera and radar
            messages that arrive before the sweep that reveals the loop count as late, so the
            first frame after a restart may lack them.
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
    max_sensor_delay_s: float | None = field(default=None, metadata={"gt": 0.0})
    fallback_reference: str | None = None
    restart_after_backwards_s: float = field(default=1.0, metadata={"gt": 0.0})

    def validate(self) -> None:
        names = (self.reference,) + tuple(self.cameras) + tuple(self.radars)
        if len(set(names)) != len(names):
            raise ValueError(f"sensor names must be unique, got {names}")
        if self.fallback_reference is not None and \
                self.fallback_reference not in tuple(self.cameras) + tuple(self.radars):
            raise ValueError(f"fallback_reference: {self.fallback_reference!r} is not one of "
                             f"the cameras or radars {tuple(self.cameras) + tuple(self.radars)}")


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
        stale: frames that masked this sensor out because its newest message was older than
            ``max_sensor_delay_s`` (each is also counted in ``missing``).
    """

    received: int = 0
    used: int = 0
    dropped_late: int = 0
    dropped_unmatched: int = 0
    dropped_overflow: int = 0
    missing: int = 0
    stale: int = 0

    @property
    def dropped(self) -> int:
        return self.dropped_late + self.dropped_unmatched + self.dropped_overflow


@dataclass(frozen=True, eq=False)
class AlignedFrame:
    """One synchronised frame.

    Attributes:
        frame: the :class:`SensorFrame` (stamp = reference sweep stamp, vehicle frame at that
            stamp when ``motion_compensated``); its ``ego_pose`` is interpolated at the
            reference stamp when poses cover it. A fallback frame (no sweep, see
            ``SyncConfig.fallback_reference``) has ``lidar`` None and the fallback message's
            stamp.
        missing: configured sensors that had no message within tolerance (or were stale); the
            reference lidar for a fallback frame.
        offsets_ns: per present sensor, its message stamp minus the reference stamp.
        motion_compensated: lidar and radar points were moved to the reference stamp.
        reference_arrival_ns: arrival time of the sweep (of the fallback message).
        emitted_arrival_ns: the arrival-clock time at which the frame went out.
        timed_out: the frame went out because of the timeout, not because it was complete.
        deferred_poses: the ego poses covering the frame's firing times when its motion
            compensation was deferred (``SensorSync(defer_compensation=True)``); None when
            it was done (or impossible). See :meth:`compensated`.
    """

    frame: SensorFrame
    missing: tuple[str, ...]
    offsets_ns: dict[str, int]
    motion_compensated: bool
    reference_arrival_ns: int
    emitted_arrival_ns: int
    timed_out: bool
    deferred_poses: PoseBuffer | None = None

    def compensated(self) -> AlignedFrame:
        """This frame with its deferred motion compensation done (itself when nothing is
        deferred): lidar and radar points moved to the reference stamp."""
        poses = self.deferred_poses
        if poses is None:
            return self
        frame = self.frame
        stamp = frame.stamp_ns
        radars = {name: compensate_scan(scan, stamp, poses) for name, scan in frame.radars.items()}
        lidar = None if frame.lidar is None else compensate_sweep(frame.lidar, stamp, poses)
        return dataclasses.replace(self, frame=dataclasses.replace(frame, lidar=lidar,
                                                                   radars=radars),
                                   motion_compensated=True, deferred_poses=None)

    @property
    def stamp_ns(self) -> int:
        return self.frame.stamp_ns

    @property
    def modalities(self) -> frozenset[Modality]:
        return self.frame.modalities


@dataclass(frozen=True)
class _Pending:
    stamp_ns: int
    sweep: LidarSweep | None  # None: a fallback frame without lidar
    arrival_ns: int


class SensorSync:
    """Approximate-time synchroniser with the lidar sweep as the reference (see the module
    doc). Push messages in arrival order; each push returns the frames that became ready.

    Args:
        config: sensors, tolerances, timeout and buffer sizes.
        sequence_id: ``SensorFrame.sequence_id`` of the frames.
        defer_compensation: frames carry their poses instead of being motion compensated
            (:meth:`AlignedFrame.compensated` does it).
    """

    def __init__(self, config: SyncConfig, sequence_id: str = "live",
                 defer_compensation: bool = False):
        self.config = config
        self.sequence_id = sequence_id
        self.defer_compensation = defer_compensation
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
        self.max_delay_ns = (None if config.max_sensor_delay_s is None
                             else int(round(config.max_sensor_delay_s * NS_PER_S)))
        self.frames_without_reference = 0
        """Fallback frames emitted (no sweep; see ``SyncConfig.fallback_reference``)."""
        self._newest_ns: dict[str, int] = {}
        self._first_arrival_ns: int | None = None
        self._last_reference_arrival_ns: int | None = None
        self._newest_reference_ns: int | None = None
        self._pending: list[_Pending] = []
        self._buffers: dict[str, list[tuple[int, CameraImage | RadarScan]]] = {
            name: [] for name in self.tolerance_ns}
        self._used: dict[str, set[int]] = {name: set() for name in self.tolerance_ns}
        self._last_emitted_ns: int | None = None
        self._frame_index = 0
        self.restarts = 0
        """Restarts after a sweep far back in time (see ``restart_after_backwards_s``)."""

    # --------------------------------------------------------------------------------------
    # Input
    # --------------------------------------------------------------------------------------

    def push(self, payload: LidarSweep | CameraImage | RadarScan | EgoPose,
             arrival_ns: int) -> list[AlignedFrame]:
        """Add one message (dispatching on its type) and return the frames now ready.

        Messages from sensors that are not configured are ignored.
        """
        if self._first_arrival_ns is None:
            self._first_arrival_ns = arrival_ns
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
        if self._last_emitted_ns is not None and self._last_emitted_ns - sweep.stamp_ns >= \
                int(round(self.config.restart_after_backwards_s * NS_PER_S)):
            self._restart()
        stats = self.stats[sweep.sensor_name]
        stats.received += 1
        self._last_reference_arrival_ns = arrival_ns
        self._newest_reference_ns = max(sweep.stamp_ns, self._newest_reference_ns or
                                        sweep.stamp_ns)
        # the lidar is alive: frames without it that have not gone out yet are not needed
        self._pending = [p for p in self._pending if p.sweep is not None]
        if not self._add_pending(_Pending(sweep.stamp_ns, sweep, arrival_ns)):
            stats.dropped_late += 1

    def _restart(self) -> None:
        """Forget every buffered message, pose and pending frame (time went back: nothing
        buffered can match what comes next); the counters carry on."""
        stats, restarts, frames = self.stats, self.restarts + 1, self._frame_index
        fallback = self.frames_without_reference
        self.__init__(self.config, self.sequence_id, self.defer_compensation)
        self.stats, self.restarts, self._frame_index = stats, restarts, frames
        self.frames_without_reference = fallback

    def _add_pending(self, pending: _Pending) -> bool:
        """Queue a frame in stamp order; False when its stamp is not after the last frame out
        or already queued."""
        stamps = [p.stamp_ns for p in self._pending]
        if (self._last_emitted_ns is not None and pending.stamp_ns <= self._last_emitted_ns) \
                or pending.stamp_ns in stamps:
            return False
        self._pending.insert(bisect.bisect(stamps, pending.stamp_ns), pending)
        if len(self._pending) > self.config.buffer_size:
            dropped = self._pending.pop(0)  # bounded: the oldest frame never goes out
            if dropped.sweep is not None:
                self.stats[self.config.reference].dropped_unmatched += 1
        return True

    def _reference_silent(self, now_ns: int, stamp_ns: int) -> bool:
        """No sweep has arrived for ``timeout_s`` and the newest is stamped more than
        ``timeout_s`` before ``stamp_ns`` (without any sweep yet: ``timeout_s`` after the first
        message of any kind arrived)."""
        if self._last_reference_arrival_ns is None:
            first = self._first_arrival_ns if self._first_arrival_ns is not None else now_ns
            return now_ns - first >= self.timeout_ns
        assert self._newest_reference_ns is not None
        return (now_ns - self._last_reference_arrival_ns >= self.timeout_ns
                and stamp_ns - self._newest_reference_ns >= self.timeout_ns)

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
        self._newest_ns[name] = max(self._newest_ns.get(name, payload.stamp_ns), payload.stamp_ns)
        if len(buffer) > self.config.buffer_size:
            stamp, _ = buffer.pop(0)
            self._count_removed(name, stamp, overflow=True)
        if name == self.config.fallback_reference and \
                self._reference_silent(arrival_ns, payload.stamp_ns):
            self._add_pending(_Pending(payload.stamp_ns, None, arrival_ns))

    # --------------------------------------------------------------------------------------
    # Matching
    # --------------------------------------------------------------------------------------

    def _stale(self, name: str, stamp_ns: int) -> bool:
        """The sensor's newest message is older than ``max_sensor_delay_s`` before
        ``stamp_ns`` (or it never delivered)."""
        if self.max_delay_ns is None:
            return False
        newest = self._newest_ns.get(name)
        return newest is None or newest < stamp_ns - self.max_delay_ns

    def _best(self, name: str, stamp_ns: int) -> tuple[int, CameraImage | RadarScan] | None:
        tolerance = self.tolerance_ns[name]
        oldest = stamp_ns - (tolerance if self.max_delay_ns is None
                             else min(tolerance, self.max_delay_ns))
        candidates = [item for item in self._buffers[name]
                      if oldest <= item[0] <= stamp_ns + tolerance]
        if not candidates:
            return None
        return min(candidates, key=lambda item: (abs(item[0] - stamp_ns), item[0]))

    def _complete(self, head: _Pending) -> bool:
        if head.sweep is None:
            return False  # a frame without lidar waits its full timeout for a late sweep
        for name, buffer in self._buffers.items():
            if self._stale(name, head.stamp_ns):
                continue  # a dead sensor is not waited for
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
        first, last = head.stamp_ns, head.stamp_ns
        if sweep is not None:
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
        reference = self.config.reference
        offsets = {} if head.sweep is None else {reference: 0}
        missing = [] if head.sweep is not None else [reference]
        for name in self._buffers:
            best = self._best(name, head.stamp_ns)
            if best is None:
                missing.append(name)
                self.stats[name].missing += 1
                if self._stale(name, head.stamp_ns):
                    self.stats[name].stale += 1
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
        deferred = None
        if self.defer_compensation and self.config.compensate_motion:
            sweep, compensated = head.sweep, False
            first, last = self._needed_pose_range(head)
            if self.poses.covers(first, last):
                deferred = self.poses.window(first, last)
        else:
            sweep, compensated = self._compensate(head, radars)
        if head.sweep is None:
            self.stats[reference].missing += 1
            self.frames_without_reference += 1
        else:
            self.stats[reference].used += 1
        ego_pose = None
        if self.poses.covers(head.stamp_ns, head.stamp_ns):
            ego_pose = self.poses.pose_at(head.stamp_ns)
        frame = SensorFrame(head.stamp_ns, self.sequence_id, self._frame_index, lidar=sweep,
                            cameras=cameras, radars=radars, ego_pose=ego_pose, source="sync")
        self._frame_index += 1
        self._last_emitted_ns = head.stamp_ns
        self._prune(head.stamp_ns)
        return AlignedFrame(frame, tuple(missing), offsets, compensated, head.arrival_ns,
                            now_ns, timed_out, deferred)

    def _compensate(self, head: _Pending, radars: dict[str, RadarScan]
                    ) -> tuple[LidarSweep | None, bool]:
        if not self.config.compensate_motion:
            return head.sweep, False
        first, last = self._needed_pose_range(head)
        if not self.poses.covers(first, last):
            return head.sweep, False
        for name, scan in radars.items():
            radars[name] = compensate_scan(scan, head.stamp_ns, self.poses)
        if head.sweep is None:
            return None, True
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
