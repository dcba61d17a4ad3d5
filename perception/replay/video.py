"""The replay video: a bird's-eye view (points, ground truth, detections, tracks with ids and
trails) beside the front camera with the detections drawn, as an animated GIF.

Frames are kept in memory until the end, so at most ``max_frames`` are kept: a longer log is
sampled evenly (every ``stride``-th replayed frame).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..pipeline import PipelineOutput
from ..types import Boxes3D, CameraImage, SensorFrame
from ..viz import draw_boxes_on_image
from ..viz.sequence import TrackTrails, render_bev, side_by_side, write_gif

FRONT_CAMERAS = ("FRONT", "CAM_FRONT", "image_02", "image_2")
"""Camera names taken as the front camera, in order of preference."""
DEFAULT_MAX_FRAMES = 300
SIZE_PX = 420


def front_camera(frame: SensorFrame) -> CameraImage | None:
    """The forward-looking camera of a frame (by name), else the first by name, or None."""
    for name in FRONT_CAMERAS:
        if name in frame.cameras:
            return frame.cameras[name]
    return frame.cameras[sorted(frame.cameras)[0]] if frame.cameras else None


class ReplayVideo:
    """Collects the video frames of a replay (see the module doc).

    Args:
        expected_frames: how many frames the replay will give (for the sampling stride).
        max_frames: most frames kept.
        fps: playback rate of the GIF.
    """

    def __init__(self, expected_frames: int, max_frames: int = DEFAULT_MAX_FRAMES,
                 fps: float = 10.0):
        self.stride = max(1, math.ceil(max(expected_frames, 1) / max(max_frames, 1)))
        self.max_frames = max_frames
        self.fps = fps
        self.trails = TrackTrails()
        self.images: list[np.ndarray] = []
        self._seen = 0

    def add(self, output: PipelineOutput, ground_truth: Boxes3D | None) -> None:
        frame = output.frame
        if output.tracks is not None:
            self.trails.update(output.tracks, frame.ego_pose)
        self._seen += 1
        if (self._seen - 1) % self.stride or len(self.images) >= self.max_frames:
            return
        points = frame.lidar.points if frame.lidar is not None else None
        bev = render_bev(points, ground_truth, output.detections, output.tracks,
                         self.trails.in_vehicle_frame(frame.ego_pose), size_px=SIZE_PX,
                         title=f"{frame.sequence_id}  stamp {frame.stamp_ns / 1e9:.3f} s")
        camera = front_camera(frame)
        if camera is not None:
            image, _ = draw_boxes_on_image(camera, output.detections.boxes,
                                           output.detections.labels)
            bev = side_by_side(bev, image)
        self.images.append(bev)

    def write(self, path: Path) -> Path | None:
        """Write the GIF (atomically); None when no frame was replayed."""
        if not self.images:
            return None
        tmp = path.with_name(f".{path.name}.partial.gif")
        write_gif(self.images, tmp, fps=self.fps)
        tmp.replace(path)
        return path
