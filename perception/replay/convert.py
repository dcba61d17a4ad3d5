"""``perception convert waymo-bag`` and ``sim-bag``: a Waymo segment or a simulator scenario
as a rosbag2 (MCAP by default, or SQLite3), on our topics (:mod:`.frames_to_bag`).

Reading the bag back (:func:`perception.replay.bag_frames`) gives the same frames: points
exactly equal, images byte-equal (JPEGs are never re-encoded; decoded simulator images are
written as PNG, which is lossless), stamps equal.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..data.sim import MessageKind, Simulator
from ..errors import ConfigError
from ..rosmsg.topics import SIM_GROUND_TRUTH
from ..types import EgoPose, SensorFrame
from .frames_to_bag import IMAGE_FORMATS, BagLayout, FrameMessages, OrderedWriter
from .output_bag import OutputBag
from .stop import StopRequest


@dataclass
class ConvertResult:
    """What a conversion wrote."""

    path: Path
    frames: int
    messages: int
    seconds: float
    interrupted: bool = False

    def text(self) -> str:
        rate = self.frames / self.seconds if self.seconds > 0 else 0.0
        return (f"wrote {self.path}: {self.frames} frames, {self.messages} messages in "
                f"{self.seconds:.1f} s ({rate:.1f} frames/s)"
                + (" (interrupted: the bag holds the frames before)" if self.interrupted
                   else ""))


def write_frames(out: str | Path, frames: Iterable[tuple[SensorFrame, list[EgoPose] | None]],
                 layout: BagLayout, storage: str = "mcap", total: int | None = None,
                 progress: bool = True) -> ConvertResult:
    """Write ``(frame, poses)`` pairs (``poses`` None: the frame's own pose) as a bag.

    The bag is written under a temporary name and moved to ``out`` when closed; Ctrl-C ends
    the conversion with a valid bag of the frames before."""
    from tqdm import tqdm

    t0 = time.perf_counter()
    builder = FrameMessages(layout)
    count = 0
    with StopRequest() as stop, OutputBag(out, storage) as bag:
        writer = OrderedWriter(bag)
        bar = tqdm(total=total, unit="frame", desc=f"-> {Path(out).name}", disable=not progress,
                   dynamic_ncols=True)
        for frame, poses in frames:
            messages = builder.frame(frame, poses)
            if count == 0:
                static = builder.static(frame, min(m.log_time_ns for m in messages))
                bag.write(static.topic, static.log_time_ns, static.msg, static.qos)
            writer.add(messages)
            count += 1
            bar.update(1)
            if stop.requested:
                break
        writer.flush()
        bar.close()
    return ConvertResult(Path(out), count, sum(bag.counts.values()),
                         time.perf_counter() - t0, stop.requested)


def waymo_to_bag(segment: str | Path, out: str | Path, per_laser: bool = False,
                 storage: str = "mcap", progress: bool = True) -> ConvertResult:
    """A Waymo v1 segment (``.tfrecord``) -> bag (see :mod:`.frames_to_bag` for the topics)."""
    from ..data.waymo import WaymoReader

    reader = WaymoReader(segment)
    frames = ((frame, None) for frame in reader)
    return write_frames(out, frames, BagLayout(per_laser=per_laser), storage, len(reader),
                        progress)


def sim_frames(sim: Simulator, frames: int, rate_hz: float
               ) -> Iterator[tuple[SensorFrame, list[EgoPose]]]:
    """``frames`` simulator frames at ``rate_hz`` with an ego pose at every sensor stamp (as
    the simulator's message stream has them)."""
    step = max(1, int(round(sim.lidar.cfg.rate_hz / rate_hz)))
    for i in range(frames):
        frame = sim.frame(i * step)
        poses = [m.payload for m in sim.frame_messages(frame)
                 if m.kind is MessageKind.EGO_POSE]
        yield frame, poses


def sim_to_bag(preset: str, out: str | Path, seed: int = 0, frames: int = 20,
               rate_hz: float = 10.0, image_format: str = "png", storage: str = "mcap",
               progress: bool = True) -> ConvertResult:
    """A simulator scenario -> bag, with ground truth on ``/sim/ground_truth``.

    Args:
        preset: simulator preset or YAML file.
        frames: frames written, at ``rate_hz`` (lidar ticks ``round(lidar rate / rate_hz)``
            apart).
        image_format: ``png`` (lossless), ``jpeg`` or ``raw`` (``sensor_msgs/Image``).
    """
    if image_format not in IMAGE_FORMATS:
        raise ConfigError(f"--image-format: expected one of {IMAGE_FORMATS}, got "
                          f"{image_format!r}")
    if frames < 1 or rate_hz <= 0:
        raise ConfigError(f"--frames must be >= 1 and --rate-hz > 0, got {frames}, {rate_hz}")
    sim = Simulator(preset, seed=seed)
    layout = BagLayout(image_format=image_format, ground_truth_topic=SIM_GROUND_TRUTH)
    return write_frames(out, sim_frames(sim, frames, rate_hz), layout, storage, frames,
                        progress)
