"""Fast bird's-eye-view rendering of a tracked sequence (Pillow + NumPy, no matplotlib), for
PNGs and animated GIFs: points, ground truth, detections, and tracks with ids and trails.

Image axes: vehicle x (forward) points up, vehicle y (left) points left, the vehicle at the
centre, ``range_m`` metres to each border.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..geometry import bev_corners, invert_transform
from ..types import Boxes3D, Detections, EgoPose, ObjectClass, Tracks

CLASS_RGB = {
    int(ObjectClass.VEHICLE): (70, 140, 255),
    int(ObjectClass.PEDESTRIAN): (255, 80, 80),
    int(ObjectClass.CYCLIST): (60, 220, 90),
}
OTHER_RGB = (200, 200, 200)
DETECTION_RGB = (255, 255, 255)
BACKGROUND_RGB = (18, 18, 24)


def track_rgb(track_id: int) -> tuple[int, int, int]:
    """A stable, bright colour per track id."""
    rng = np.random.default_rng(int(track_id) * 7919 + 17)
    rgb = rng.uniform(90, 255, 3)
    rgb[int(track_id) % 3] = 255
    return tuple(int(c) for c in rgb)


@dataclass
class TrackTrails:
    """Past world-frame positions of each track, drawn as trails in the current vehicle frame.

    Args:
        length: positions kept per track.
    """

    length: int = 20
    _world: dict[int, list[np.ndarray]] = field(default_factory=dict)

    def update(self, tracks: Tracks, ego_pose: EgoPose | None) -> None:
        """Record the centres of ``tracks`` (vehicle frame at their stamp)."""
        T = ego_pose.T_world_vehicle if ego_pose is not None else np.eye(4)
        centres = tracks.boxes[:, :3].astype(np.float64) @ T[:3, :3].T + T[:3, 3]
        alive = set()
        for track_id, c in zip(tracks.ids.tolist(), centres):
            trail = self._world.setdefault(int(track_id), [])
            trail.append(c)
            del trail[:-self.length]
            alive.add(int(track_id))
        for gone in set(self._world) - alive:
            del self._world[gone]

    def in_vehicle_frame(self, ego_pose: EgoPose | None) -> dict[int, np.ndarray]:
        """track id -> (N, 2) past xy in the vehicle frame of ``ego_pose``."""
        T = invert_transform(ego_pose.T_world_vehicle) if ego_pose is not None else np.eye(4)
        return {k: (np.asarray(v) @ T[:3, :3].T + T[:3, 3])[:, :2]
                for k, v in self._world.items()}


def render_bev(points: np.ndarray | None = None, ground_truth: Boxes3D | None = None,
               detections: Detections | None = None, tracks: Tracks | None = None,
               trails: dict[int, np.ndarray] | None = None, range_m: float = 40.0,
               size_px: int = 640, title: str = "") -> np.ndarray:
    """(size_px, size_px, 3) uint8 BEV picture.

    Ground truth: thin outlines in class colours. Detections: white outlines. Tracks: thick
    outlines in a per-id colour with the id written beside them, and their trails.
    """
    from PIL import Image, ImageDraw

    scale = size_px / (2.0 * range_m)
    canvas = np.full((size_px, size_px, 3), BACKGROUND_RGB, np.uint8)
    if points is not None and len(points):
        _draw_points(canvas, points, range_m, scale)
    image = Image.fromarray(canvas)
    draw = ImageDraw.Draw(image)
    _grid(draw, range_m, scale, size_px)

    def px(xy: np.ndarray) -> list[tuple[float, float]]:
        return [((range_m - y) * scale, (range_m - x) * scale) for x, y in xy]

    if ground_truth is not None and len(ground_truth):
        for corners, label in zip(bev_corners(ground_truth.boxes), ground_truth.labels):
            draw.polygon(px(corners), outline=CLASS_RGB.get(int(label), OTHER_RGB), width=1)
    if detections is not None and len(detections):
        for corners in bev_corners(detections.boxes):
            draw.polygon(px(corners), outline=DETECTION_RGB, width=1)
    for track_id, xy in (trails or {}).items():
        if len(xy) > 1:
            draw.line(px(xy), fill=track_rgb(track_id), width=2)
    if tracks is not None and len(tracks):
        for corners, track_id in zip(bev_corners(tracks.boxes), tracks.ids.tolist()):
            pts = px(corners)
            draw.polygon(pts, outline=track_rgb(track_id), width=3)
            draw.text((max(p[0] for p in pts) + 2, min(p[1] for p in pts)), str(track_id),
                      fill=track_rgb(track_id))
    c = size_px / 2
    draw.polygon([(c, c - 8), (c - 5, c + 5), (c + 5, c + 5)], fill=(255, 255, 255))
    if title:
        draw.rectangle([0, 0, size_px, 16], fill=(0, 0, 0))
        draw.text((4, 2), title, fill=(255, 255, 255))
    legend = "ground truth: thin (blue vehicle, red pedestrian, green cyclist) | " \
             "detections: white | tracks: thick, id"
    draw.text((4, size_px - 14), legend, fill=(200, 200, 200))
    return np.asarray(image)


def _draw_points(canvas: np.ndarray, points: np.ndarray, range_m: float, scale: float) -> None:
    x, y, z = points[:, 0], points[:, 1], points[:, 2]
    keep = (np.abs(x) < range_m) & (np.abs(y) < range_m) & np.isfinite(z)
    u = ((range_m - y[keep]) * scale).astype(np.int64)
    v = ((range_m - x[keep]) * scale).astype(np.int64)
    size = canvas.shape[0]
    ok = (u >= 0) & (u < size) & (v >= 0) & (v < size)
    height = np.clip((z[keep][ok] + 2.0) / 5.0, 0.0, 1.0)  # -2 m dark .. 3 m bright
    shade = (70 + 150 * height).astype(np.uint8)
    canvas[v[ok], u[ok]] = np.stack([shade, shade, (shade * 0.8).astype(np.uint8)], 1)


def _grid(draw, range_m: float, scale: float, size_px: int) -> None:
    step = 10.0
    for r in np.arange(step, range_m + 1e-6, step):
        c = size_px / 2
        draw.ellipse([c - r * scale, c - r * scale, c + r * scale, c + r * scale],
                     outline=(50, 50, 60), width=1)


def side_by_side(*images: np.ndarray, height: int | None = None) -> np.ndarray:
    """Images resized to one height (the first's by default) and placed left to right."""
    from PIL import Image

    height = height or images[0].shape[0]
    parts = []
    for img in images:
        h, w = img.shape[:2]
        width = max(1, int(round(w * height / h)))
        parts.append(np.asarray(Image.fromarray(img).resize((width, height))))
    return np.concatenate(parts, axis=1)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


def write_gif(images: Sequence[np.ndarray], path: str | Path, fps: float = 5.0) -> Path:
    """An animated GIF that loops forever."""
    from PIL import Image

    if not images:
        raise ValueError("write_gif: no images")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [Image.fromarray(img).convert("P", palette=Image.Palette.ADAPTIVE, colors=128)
              for img in images]
    frames[0].save(path, save_all=True, append_images=frames[1:],
                   duration=int(round(1000 / fps)), loop=0, optimize=False)
    return path
