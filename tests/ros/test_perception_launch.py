"""``sim_perception.launch.yaml`` (simulator -> detector_node -> tracker_node, each its own
process) watched by a probe in this process over real DDS; the launch files' structure; the
DDS profile option the launch files give their nodes.

The end-to-end run plays the simulator slower than real time (``rate_factor``) so that the
shipped model, about 0.3 s a frame on one CPU core, keeps up with every sweep on a loaded
machine, and gives the detector a sync timeout scaled the same way."""

from __future__ import annotations

import sys
import time

import numpy as np
from vision_msgs.msg import Detection3DArray

from fusion_perception_msgs.msg import PerceptionStatus, TrackedObject, TrackedObjectArray
from perception.data.sim import Simulator
from ros_nodes import topics
from ros_nodes.conversions.detections import msg_to_detections
from ros_nodes.conversions.stamps import stamp_to_ns
from ros_nodes.launcher import package_share, parse_launch_file, resolve_launch_file
from ros_nodes.node_base import DDS_PROFILE_ENV, apply_dds_profile, reliable_qos

SEED = 3
RATE_FACTOR = 0.035
"""Playback speed: a 20 Hz sweep every 1.4 s of wall time."""
DURATION_S = 2.0
"""40 sweeps: when the machine is loaded the detector may skip a frame (newest frame wins),
which breaks a run; 40 leave room for a run of CONSECUTIVE."""
TIMEOUT_S = 4.0
"""The detector's sync timeout, scaled like the playback (a camera tick 83 ms after a sweep
arrives 2.4 s after it here)."""
CONSECUTIVE = 20
CENTRE_M = 2.0
SCORE = 0.1
"""The detector's default ``score_threshold``; the offline run applies the same."""
RECALL_MARGIN = 0.10
"""Live recall may fall below offline recall by this much: live frames are motion
compensated by the sync and accumulate the radar scan of the previous *processed* frame,
where the offline frames come straight from the simulator."""
STABLE_FRAMES = 10
NS_PER_SWEEP = 50_000_000
SETTLE_S = 30.0
"""After the simulator ends, how long the probe waits for the last frames."""


def _greedy_matches(gt_xy, gt_labels, xy, labels) -> np.ndarray:
    """(G,) index of the prediction matched to each ground-truth box (-1: none): same class,
    centres within CENTRE_M, closest pairs first, one to one."""
    out = np.full(len(gt_xy), -1)
    if not len(gt_xy) or not len(xy):
        return out
    distance = np.linalg.norm(gt_xy[:, None, :] - xy[None, :, :], axis=-1)
    distance[gt_labels[:, None] != labels[None, :]] = np.inf
    used = set()
    for g, p in zip(*np.unravel_index(np.argsort(distance, axis=None), distance.shape)):
        if distance[g, p] > CENTRE_M:
            break
        if out[g] < 0 and p not in used:
            out[g] = p
            used.add(p)
    return out


def _recall(pairs) -> float:
    """pairs: (gt boxes, gt labels, boxes, labels) per frame."""
    found = total = 0
    for gt, gt_labels, boxes, labels in pairs:
        matches = _greedy_matches(gt[:, :2], gt_labels, boxes[:, :2], labels)
        found += int((matches >= 0).sum())
        total += len(gt)
    return found / max(total, 1)


def _longest_run(stamps: list[int], covered: set[int]) -> list[int]:
    """The longest run of consecutive ``stamps`` that are all in ``covered``."""
    best, run = [], []
    for stamp in stamps:
        run = run + [stamp] if stamp in covered else []
        best = run if len(run) > len(best) else best
    return best


def _offline(stamps: list[int]) -> list[tuple]:
    """The shipped model on the same seed's synchronised simulator frames, in order, scored
    like the live detections."""
    import torch

    from perception.pipeline import Pipeline

    torch.set_num_threads(1)
    sim = Simulator("nuscenes_like", seed=SEED)
    pipeline = Pipeline.default(track=False)
    pairs = []
    for stamp in stamps:
        frame = sim.frame((stamp - sim.start_stamp_ns) // NS_PER_SWEEP)
        assert frame.stamp_ns == stamp
        detections = pipeline.process(frame).detections
        keep = detections.scores >= SCORE
        pairs.append((frame.boxes.boxes, frame.boxes.labels, detections.boxes[keep],
                      detections.labels[keep]))
    return pairs


def test_sim_perception_end_to_end(launch_with_env, ros_node, spin):
    """Detections and tracks for at least CONSECUTIVE consecutive sweeps, stamped with the
    sweeps' stamps; recall at 2 m against ground truth at least the offline recall of the
    same model on the same seed minus RECALL_MARGIN; track ids stable over STABLE_FRAMES
    frames. The launch sets the project's DDS profile itself (this launcher's environment
    has none)."""
    truth: dict[int, Detection3DArray] = {}
    detections: dict[int, Detection3DArray] = {}
    tracks: dict[int, TrackedObjectArray] = {}
    track_objects: dict[int, Detection3DArray] = {}
    statuses: dict[int, PerceptionStatus] = {}

    def keep(store):
        return lambda msg: store.__setitem__(stamp_to_ns(msg.header.stamp), msg)

    qos = reliable_qos(50)
    ros_node.create_subscription(Detection3DArray, topics.GROUND_TRUTH, keep(truth), qos)
    ros_node.create_subscription(Detection3DArray, topics.DETECTOR_OBJECTS, keep(detections),
                                 qos)
    ros_node.create_subscription(PerceptionStatus, "/detector/output/status", keep(statuses),
                                 qos)
    ros_node.create_subscription(TrackedObjectArray, topics.TRACKER_TRACKS, keep(tracks), qos)
    ros_node.create_subscription(Detection3DArray, topics.TRACKER_OBJECTS, keep(track_objects),
                                 qos)
    launched = launch_with_env(
        ["sim_perception.launch.yaml", f"seed:={SEED}", f"rate_factor:={RATE_FACTOR}",
         f"duration_s:={DURATION_S}", "wall_clock_stamps:=false", f"timeout_s:={TIMEOUT_S}"],
        unset=(DDS_PROFILE_ENV,))

    def finished() -> bool:
        return "[launch] sim exited with code 0" in launched.output

    spin(ros_node, lambda: len(truth) >= 1, "the first ground truth", launched)
    deadline = time.monotonic() + DURATION_S / RATE_FACTOR + 90.0
    while not finished():
        assert time.monotonic() < deadline, launched.output
        assert launched.process.poll() is None, launched.output
        ros_node.test_executor.spin_once(timeout_sec=0.1)
    settle = time.monotonic() + SETTLE_S
    last = max(truth)
    while time.monotonic() < settle and not (last in tracks and last in track_objects
                                             and last in statuses):
        ros_node.test_executor.spin_once(timeout_sec=0.1)
    assert launched.interrupt() == 0, launched.output
    profile = package_share("fusion_perception") / "fastdds_loopback.xml"
    for node in ("sim", "detector", "tracker"):
        assert f"[{node}] " in launched.output
        assert f"DDS profile: {profile} ({DDS_PROFILE_ENV})" in "\n".join(
            line for line in launched.lines if line.startswith(f"[{node}]")), launched.output

    sweeps = sorted(truth)
    assert len(sweeps) >= CONSECUTIVE
    assert detections and tracks and track_objects, launched.output
    # Each subscription of this test matches its publisher in its own time, so the first
    # messages on one topic can be missed while another topic's arrive: the sets are compared
    # from the first stamp that every subscription received.
    joined = max(min(store) for store in (truth, detections, tracks, track_objects))

    def since_joined(store: dict) -> set[int]:
        return {stamp for stamp in store if stamp >= joined}

    assert since_joined(detections) <= set(sweeps)
    assert since_joined(tracks) <= since_joined(detections)
    assert since_joined(track_objects) == since_joined(tracks)
    assert since_joined(statuses) <= since_joined(detections)  # one status per detected frame
    # the status topic is matched in its own time too, and its last message may trail the
    # tracks' on a loaded machine: the run is taken where all three were received
    run = _longest_run(sweeps, set(detections) & set(tracks) & set(statuses))
    assert len(run) >= CONSECUTIVE, (len(run), len(sweeps), len(detections), len(tracks),
                                     len(statuses))
    for stamp in run:
        assert detections[stamp].header.frame_id == "base_link"
        assert tracks[stamp].header.frame_id == "base_link"
    # on a loaded machine a best-effort image or scan may come too late for its frame
    full = [list(statuses[s].modalities) == ["camera", "lidar", "radar"] for s in run]
    assert sum(full) >= 0.8 * len(run), [list(statuses[s].modalities) for s in run]
    for stamp in run:  # the Detection3DArray of the tracks names each track by its id
        ids = sorted(str(o.track_id) for o in tracks[stamp].objects)
        assert sorted(d.id for d in track_objects[stamp].detections) == ids

    window = run[:CONSECUTIVE]
    live = []
    for stamp in window:
        gt = msg_to_detections(truth[stamp], topics.GROUND_TRUTH)
        det = msg_to_detections(detections[stamp], topics.DETECTOR_OBJECTS)
        live.append((gt.boxes, gt.labels, det.boxes, det.labels))
    live_recall = _recall(live)
    offline_recall = _recall(_offline(window))
    print(f"recall at {CENTRE_M} m: live {live_recall:.3f}, offline {offline_recall:.3f}")
    assert live_recall >= offline_recall - RECALL_MARGIN, (live_recall, offline_recall)

    # track ids: every actor matched by a confirmed track in STABLE_FRAMES consecutive frames
    seen: dict[str, list[tuple[int, int]]] = {}
    for i, stamp in enumerate(run):
        gt = msg_to_detections(truth[stamp], topics.GROUND_TRUTH)
        actor_ids = [d.id for d in truth[stamp].detections]
        confirmed = [o for o in tracks[stamp].objects
                     if o.state == TrackedObject.STATE_CONFIRMED]
        xy = np.array([[o.bbox.center.position.x, o.bbox.center.position.y]
                       for o in confirmed]).reshape(-1, 2)
        labels = np.array([o.label for o in confirmed], np.int32)
        matches = _greedy_matches(gt.boxes[:, :2].astype(np.float64), gt.labels, xy, labels)
        for actor, m in zip(actor_ids, matches):
            if m >= 0:
                seen.setdefault(actor, []).append((i, int(confirmed[m].track_id)))
    stable = unstable = 0
    for hits in seen.values():
        for start in range(len(hits) - STABLE_FRAMES + 1):
            window_hits = hits[start:start + STABLE_FRAMES]
            if window_hits[-1][0] - window_hits[0][0] == STABLE_FRAMES - 1:  # consecutive
                if len({track for _, track in window_hits}) == 1:
                    stable += 1
                else:
                    unstable += 1
                break
    print(f"actors tracked over {STABLE_FRAMES} frames: {stable} with one id, {unstable} "
          f"with an id switch")
    assert stable >= 1 and stable >= 3 * unstable, (stable, unstable)


# -------------------------------------------------------------------------------------------
# Launch files and the DDS profile option
# -------------------------------------------------------------------------------------------

def test_launch_files_run_the_chain():
    perception = parse_launch_file(resolve_launch_file("perception.launch.yaml"),
                                   {"lidar_topic": "/velodyne_points", "device": "cuda:1"})
    detector, tracker = perception.nodes
    assert (detector.exec, detector.name) == ("detector_node", "detector")
    assert (tracker.exec, tracker.name) == ("tracker_node", "tracker")
    assert detector.remaps == (("/sensors/lidar/points", "/velodyne_points"),)
    command = detector.command()
    assert command[:3] == [sys.executable, "-m", "ros_nodes.detector_node"]
    assert "device:=cuda:1 " in command[command.index("-p") + 1]
    assert "use_sim_time:=false" in command and "--dds-profile=" in command
    assert command[command.index("--params-file") + 1].endswith("config/detector.param.yaml")
    replay = parse_launch_file(resolve_launch_file("perception.launch.yaml"),
                               {"use_sim_time": "true"})
    assert all("use_sim_time:=true" in node.command() for node in replay.nodes)

    sim = parse_launch_file(resolve_launch_file("sim_perception.launch.yaml"), {})
    assert [n.exec for n in sim.nodes] == ["sim_node", "detector_node", "tracker_node"]
    profile = package_share("fusion_perception") / "fastdds_loopback.xml"
    assert profile.is_file()
    for node in sim.nodes:
        assert node.args == (f"--dds-profile={profile}",)
    assert "preset:=nuscenes_like " in sim.nodes[0].command()[-1]
    off = parse_launch_file(resolve_launch_file("sim_perception.launch.yaml"),
                            {"dds_profile": ""})
    assert all(node.args == ("--dds-profile=",) for node in off.nodes)


def test_dds_profile_option(tmp_path):
    profile = tmp_path / "profile.xml"
    profile.write_text("<profiles/>")
    argv = ["node", f"--dds-profile={profile}", "--ros-args", "-p", "a:=1"]
    env: dict[str, str] = {}
    args, note = apply_dds_profile(argv, env)
    assert args == ["node", "--ros-args", "-p", "a:=1"]
    assert env[DDS_PROFILE_ENV] == str(profile) and str(profile) in note
    # the user's own profile wins
    env = {DDS_PROFILE_ENV: "/site/profile.xml"}
    args, note = apply_dds_profile(argv, env)
    assert env[DDS_PROFILE_ENV] == "/site/profile.xml" and "keeping" in note
    # empty: off; missing file: the defaults, said in the log
    env = {}
    assert apply_dds_profile(["node", "--dds-profile="], env) == (
        ["node"], "DDS profile: none set by the launch (--dds-profile= is empty)")
    assert not env
    _, note = apply_dds_profile(["node", "--dds-profile=/no/such.xml"], env)
    assert "not found" in note and not env
    # after --ros-args it is not ours to take
    assert apply_dds_profile(["node", "--ros-args", "--dds-profile=x"], {}) == (
        ["node", "--ros-args", "--dds-profile=x"], "")
