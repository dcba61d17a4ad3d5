"""Projected 3D boxes drawn on a camera image."""

from __future__ import annotations

import numpy as np

from ..geometry import box_corners, project_points
from ..types import CameraImage

# Corner pairs of the 12 box edges (corner order of perception.geometry.box_corners).
_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
          (0, 4), (1, 5), (2, 6), (3, 7)]


def draw_boxes_on_image(image: CameraImage, boxes: np.ndarray,
                        colour: tuple[int, int, int] = (255, 64, 0)
                        ) -> tuple[np.ndarray, int]:
    """Draw the edges of vehicle-frame boxes (M, 7) that lie fully in front of the camera.

    Returns:
        (H, W, 3) uint8 RGB copy with the boxes drawn, and how many boxes were drawn.
    """
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image.image.copy())
    draw = ImageDraw.Draw(canvas)
    drawn = 0
    if len(boxes):
        corners = box_corners(boxes).reshape(-1, 3)
        uv, depth, _ = project_points(corners, image.calibration)
        uv, depth = uv.reshape(-1, 8, 2), depth.reshape(-1, 8)
        w, h = image.calibration.width, image.calibration.height
        for box_uv, box_depth in zip(uv, depth):
            if (box_depth <= 0.1).any():
                continue
            inside = ((box_uv[:, 0] > -w) & (box_uv[:, 0] < 2 * w)
                      & (box_uv[:, 1] > -h) & (box_uv[:, 1] < 2 * h))
            if not inside.any():
                continue
            for a, b in _EDGES:
                draw.line([tuple(box_uv[a]), tuple(box_uv[b])], fill=colour, width=2)
            drawn += 1
    return np.asarray(canvas), drawn
