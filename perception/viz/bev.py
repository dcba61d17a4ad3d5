"""Bird's-eye-view plot of points and boxes, vehicle frame (x forward drawn upwards)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..geometry import bev_corners
from ..types import ObjectClass

CLASS_COLOURS = {
    ObjectClass.VEHICLE: "tab:blue",
    ObjectClass.PEDESTRIAN: "tab:red",
    ObjectClass.CYCLIST: "tab:green",
    ObjectClass.SIGN: "tab:olive",
    ObjectClass.UNKNOWN: "tab:gray",
}


def plot_bev(path: str | Path, points: np.ndarray | None = None,
             boxes: np.ndarray | None = None, labels: np.ndarray | None = None,
             pred_boxes: np.ndarray | None = None, range_m: float = 60.0,
             title: str = "") -> Path:
    """Write a BEV PNG.

    Args:
        path: output PNG path (parent directories are created).
        points: (N, 3+) vehicle-frame points, drawn as dots coloured by height.
        boxes: (M, 7) ground-truth boxes, solid outlines coloured by ``labels``.
        labels: (M,) ObjectClass values for ``boxes``.
        pred_boxes: (K, 7) predicted boxes, dashed black outlines.
        range_m: half-width of the plotted square around the vehicle.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 8), dpi=100)
    if points is not None and len(points):
        near = (np.abs(points[:, 0]) < range_m) & (np.abs(points[:, 1]) < range_m)
        p = points[near]
        # Plot -y as horizontal so that the vehicle's left is on the left of the picture.
        ax.scatter(-p[:, 1], p[:, 0], s=0.2, c=p[:, 2], cmap="viridis", vmin=-2, vmax=3,
                   linewidths=0)
    if boxes is not None and len(boxes):
        labels = np.zeros(len(boxes), int) if labels is None else labels
        for corners, label in zip(bev_corners(boxes), labels):
            _outline(ax, corners, CLASS_COLOURS.get(ObjectClass(int(label)), "gray"), "-")
    if pred_boxes is not None and len(pred_boxes):
        for corners in bev_corners(pred_boxes):
            _outline(ax, corners, "black", "--")
    ax.plot([0], [0], marker="^", color="black", markersize=8)
    ax.set_xlim(-range_m, range_m)
    ax.set_ylim(-range_m, range_m)
    ax.set_aspect("equal")
    ax.set_xlabel("-y (m, right)")
    ax.set_ylabel("x (m, forward)")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def _outline(ax, corners: np.ndarray, colour: str, style: str) -> None:
    closed = np.vstack([corners, corners[:1]])
    ax.plot(-closed[:, 1], closed[:, 0], style, color=colour, linewidth=1.0)
    front = corners[[0, 3]].mean(axis=0)  # mark the heading: centre of the front edge
    centre = corners.mean(axis=0)
    ax.plot([-centre[1], -front[1]], [centre[0], front[0]], style, color=colour, linewidth=1.0)
