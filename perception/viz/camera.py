"""Projected 3D boxes drawn on a camera image."""

from __future__ import annotations

import numpy as np

from ..geometry import box_corners, project_points
from ..types import CameraImage, ObjectClass

# Corner pairs of the 12 box edges (corner order of perception.geometry.box_corners).
_EDGES = [(0, 1), (1, 2), (2, 3), (3, 0), (4, 5), (5, 6), (6, 7), (7, 4),
          (0, 4), (1, 5), (2, 6), (3, 7)]


CLASS_RGB = {
    ObjectClass.VEHICLE: (40, 120, 255),
    ObjectClass.PEDESTRIAN: (255, 40, 40),
    ObjectClass.CYCLIST: (40, 220, 40),
}
DEFAULT_RGB = (255, 160, 0)


def draw_boxes_on_image(image: CameraImage, boxes: np.ndarray,
                        labels: np.ndarray | None = None) -> tuple[np.ndarray, int]:
    """Draw the edges of vehicle-frame boxes (M, 7), coloured by ObjectClass ``labels``.

    A box is drawn only when all its corners are in front of the camera and project near the
    image (within half an image of its border): lens distortion models diverge far off-axis,
    and a box beside the camera would otherwise draw lines across the whole picture.

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
        labels = np.zeros(len(boxes), int) if labels is None else labels
        for box_uv, box_depth, label in zip(uv, depth, labels):
            if (box_depth <= 0.1).any():
                continue
            near = ((box_uv[:, 0] > -w / 2) & (box_uv[:, 0] < 1.5 * w)
                    & (box_uv[:, 1] > -h / 2) & (box_uv[:, 1] < 1.5 * h))
            if not near.all():
                continue
            colour = CLASS_RGB.get(int(label), DEFAULT_RGB)
            for a, b in _EDGES:
                draw.line([tuple(box_uv[a]), tuple(box_uv[b])], fill=colour, width=2)
            drawn += 1
    return np.asarray(canvas), drawn
