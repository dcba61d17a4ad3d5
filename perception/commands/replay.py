"""``perception replay LOG``: a recorded drive through the perception pipeline.

LOG is a rosbag2 directory, an ``.mcap`` or ``.db3`` file, a Waymo ``.tfrecord`` segment, a
converted Waymo directory, a nuScenes dataroot or a KITTI raw drive directory.

Offline (the default), with no ROS needed: messages go through sync -> detector -> tracker in
log-time order, as fast as the CPU allows, and the same input gives the same output bag and
``metrics.json`` byte for byte (see ``docs/replay.md``). With ``--ros``, the log is played into
ROS 2 instead, with ``/clock``, by the ``ros_nodes.replay_node`` player in its own process
(signals are passed on to it; its exit code is this command's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..errors import PerceptionError
from ..types import Modality
from .child import check_installed, run_child

PLAYER = "ros_nodes.replay_node"
NODES_PACKAGE = PLAYER.partition(".")[0]
DROP_CHOICES = tuple(m.value for m in Modality)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay a recorded log (rosbag2, Waymo, nuScenes, KITTI) "
                                      "through the pipeline, or into ROS 2 with --ros",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("log", type=Path, help="the log (see above)")
    p.add_argument("--out", type=Path, default=Path("outputs/replay"),
                   help="output directory (default outputs/replay)")
    _model_options(p)
    _topic_options(p)
    _window_options(p)
    _output_options(p)
    _ros_options(p)
    p.set_defaults(func=run)


def _model_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("model")
    g.add_argument("--model", help="detector checkpoint or weights file (default: the shipped "
                                   "model)")
    g.add_argument("--device", default="cpu", help="torch device (default cpu)")
    g.add_argument("--tracker-config", help="tracker YAML (default configs/tracking/sim.yaml)")
    g.add_argument("--no-track", action="store_true", help="detections only")
    g.add_argument("--drop", action="append", choices=DROP_CHOICES, default=[],
                   help="replay with this modality removed (repeatable)")


def _topic_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("topics and calibration (bags)")
    g.add_argument("--map", action="append", default=[], metavar="ROLE=TOPIC",
                   help="which topic is which sensor: lidar, lidar.NAME, camera.NAME, "
                        "camera_info.NAME, radar.NAME, ego_pose, tf, tf_static, ground_truth "
                        "(repeatable)")
    g.add_argument("--topic-map", type=Path, help="a YAML file of ROLE: TOPIC pairs")
    g.add_argument("--no-discover", action="store_true",
                   help="map only the given roles (no defaults from our topic names)")
    g.add_argument("--topics", nargs="+", default=[], help="read only these topics")
    g.add_argument("--exclude-topics", nargs="+", default=[], help="leave these topics out")
    g.add_argument("--calibration", type=Path, help="calibration YAML for bags without "
                                                    "/tf_static or CameraInfo")
    g.add_argument("--vehicle-frame", help="frame everything is converted into (default "
                                           "base_link)")
    g.add_argument("--world-frame", default="map", help="parent of the vehicle in /tf poses")
    g.add_argument("--keep-zero-points", action="store_true",
                   help="keep lidar points at (0, 0, 0) (dropped by default: no-return pixels)")
    g.add_argument("--scene", help="nuScenes scene name (default: the first)")


def _window_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("what is replayed")
    g.add_argument("--start-offset", type=float, default=0.0, metavar="S",
                   help="start this many seconds into the log")
    g.add_argument("--duration", type=float, metavar="S", help="replay this many seconds")
    g.add_argument("--every", type=int, default=1, metavar="N", help="every N-th frame")
    g.add_argument("--camera-tolerance", type=float, default=0.1, metavar="S",
                   help="a camera image matches a sweep within this (default 0.1 s)")
    g.add_argument("--radar-tolerance", type=float, default=0.05, metavar="S",
                   help="a radar scan matches a sweep within this (default 0.05 s)")
    g.add_argument("--timeout", type=float, default=0.3, metavar="S",
                   help="longest wait for late sensors, on the log clock (default 0.3 s)")


def _output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("outputs")
    g.add_argument("--with-input", action="store_true", help="copy the input topics into "
                                                             "the output bag")
    g.add_argument("--no-video", action="store_true", help="no replay.gif")
    g.add_argument("--video-frames", type=int, default=300, metavar="N",
                   help="most frames in the video (a longer log is sampled)")
    g.add_argument("--no-progress", action="store_true", help="hide the progress bar")


def _ros_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("--ros: play into ROS 2")
    g.add_argument("--ros", action="store_true", help="publish the log on its topics with "
                                                      "/clock instead of replaying offline")
    g.add_argument("--rate", type=float, default=1.0, help="playback speed (default 1)")
    g.add_argument("--loop", action="store_true", help="start over at the end")
    g.add_argument("--start-paused", action="store_true",
                   help="wait for Enter, or `ros2 param set /replay paused false`")
    g.add_argument("--remap", action="append", default=[], metavar="FROM:=TO",
                   help="publish topic FROM as TO (repeatable)")
    g.add_argument("--no-clock", action="store_true", help="do not publish /clock")
    g.add_argument("--delay", type=float, default=1.0, metavar="S",
                   help="wait before the first message, for discovery (default 1 s)")


# ------------------------------------------------------------------------------------------
# Offline
# ------------------------------------------------------------------------------------------

def options_from(args: argparse.Namespace) -> Any:
    from ..replay import ReplayOptions
    from ..replay.topics import load_entries, parse_entries

    entries = load_entries(args.topic_map) if args.topic_map else {}
    entries.update(parse_entries(args.map))
    return ReplayOptions(
        model=args.model, device=args.device, tracker_config=args.tracker_config,
        track=not args.no_track, topic_map=entries, discover=not args.no_discover,
        calibration=str(args.calibration) if args.calibration else None,
        vehicle_frame=args.vehicle_frame, world_frame=args.world_frame,
        start_offset_s=args.start_offset, duration_s=args.duration,
        topics=tuple(args.topics), exclude_topics=tuple(args.exclude_topics), every=args.every,
        drop=tuple(Modality(m) for m in args.drop), with_input=args.with_input,
        video=not args.no_video, video_max_frames=args.video_frames,
        camera_tolerance_s=args.camera_tolerance, radar_tolerance_s=args.radar_tolerance,
        timeout_s=args.timeout, drop_origin=not args.keep_zero_points, scene=args.scene,
        progress=not args.no_progress)


def run(args: argparse.Namespace) -> int:
    if args.ros:
        check_installed(NODES_PACKAGE)
        # the player's standard input is this process's, for the resume key
        return run_child(player_command(args), stdin=None)
    from ..replay import replay

    try:
        summary = replay(args.log, args.out, options_from(args))
    except OSError as exc:
        # A full disk, a read-only or vanished output directory: one line, no traceback. The
        # outputs are staged and moved into place only when complete (replay.output_dir).
        print(f"perception replay: error: {type(exc).__name__}: {exc} (the replay did not "
              f"finish; no partial output is left in {args.out})", file=sys.stderr)
        return 1
    print(summary.markdown())
    print(f"outputs in {args.out}")
    return 130 if summary.interrupted else 0


# ------------------------------------------------------------------------------------------
# --ros
# ------------------------------------------------------------------------------------------

def _ros_list(values: list[str]) -> str:
    return "[" + ", ".join(values) + "]" if values else "[]"


def player_command(args: argparse.Namespace) -> list[str]:
    """The player's command line: its options as ROS parameters, remaps as ROS remaps."""
    params = {"log": str(Path(args.log).resolve()), "rate": repr(float(args.rate)),
              "loop": str(args.loop).lower(), "paused": str(args.start_paused).lower(),
              "start_offset_s": repr(float(args.start_offset)),
              "duration_s": repr(float(args.duration or 0.0)),
              "topics": _ros_list(args.topics), "exclude_topics": _ros_list(args.exclude_topics),
              "clock": str(not args.no_clock).lower(), "delay_s": repr(float(args.delay)),
              "scene": args.scene or ""}
    command = [sys.executable, "-m", PLAYER, "--ros-args"]
    for name, value in params.items():
        if value not in ("", "[]"):  # rcl refuses empty values; the defaults are empty
            command += ["-p", f"{name}:={value}"]
    for remap in args.remap:
        if ":=" not in remap:
            raise PerceptionError(f"--remap {remap!r}: expected FROM:=TO")
        command += ["-r", remap]
    return command
