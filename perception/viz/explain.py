"""Picture of a per-modality explanation: one BEV heat map per sensor with the detections,
and each detection's Shapley shares as stacked bars (see :mod:`perception.explain`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..geometry import bev_corners
from ..types import Modality, ObjectClass

MODALITY_COLOURS = {Modality.LIDAR: "tab:orange", Modality.CAMERA: "tab:purple",
                    Modality.RADAR: "tab:cyan"}
ORDER = (Modality.LIDAR, Modality.CAMERA, Modality.RADAR)


def plot_explanation(path: str | Path, explanation, point_range_m: tuple[float, ...],
                     top_k: int = 8, title: str = "") -> Path:
    """Write the picture of a :class:`~perception.explain.FrameExplanation`.

    ``point_range_m`` (x_min, y_min, z_min, x_max, y_max, z_max), the model grid's range,
    places the heat maps (fused BEV grid, x along rows) in metres.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mods = [m for m in ORDER if m in explanation.heatmaps]
    fig, axes = plt.subplots(1, len(mods) + 1, figsize=(4.2 * (len(mods) + 1), 4.4), dpi=90)
    r = point_range_m
    # Heat maps are (H=x, W=y); show x up and y to the left like every BEV picture here.
    extent = (-r[4], -r[1], r[0], r[3])
    dets = explanation.detections
    for ax, m in zip(axes, mods):
        heat = explanation.heatmaps[m]
        ax.imshow(np.flipud(heat)[:, ::-1], extent=extent,
                  cmap="magma", vmin=0.0, vmax=1.0, interpolation="nearest")
        for corners in bev_corners(dets.boxes):
            closed = np.vstack([corners, corners[:1]])
            ax.plot(-closed[:, 1], closed[:, 0], color="white", linewidth=0.8)
        kind = "gate weight" if explanation.heatmap_kind == "gate" else "feature change"
        ax.set_title(f"{m.value}: {kind}")
        ax.set_xlabel("-y (m)")
        ax.set_ylabel("x (m)")
    ax = axes[-1]
    order = np.argsort(-explanation.score_all)[:top_k]
    bottom_pos = np.zeros(len(order))
    bottom_neg = np.zeros(len(order))
    for i, m in enumerate(ORDER):
        share = explanation.shapley[order, i]
        pos, neg = np.clip(share, 0, None), np.clip(share, None, 0)
        ax.bar(np.arange(len(order)), pos, bottom=bottom_pos, color=MODALITY_COLOURS[m],
               label=m.value)
        ax.bar(np.arange(len(order)), neg, bottom=bottom_neg, color=MODALITY_COLOURS[m])
        bottom_pos += pos
        bottom_neg += neg
    ax.scatter(np.arange(len(order)), explanation.score_all[order] - explanation.score_none[order],
               color="black", marker="_", s=200, label="score gain", zorder=3)
    ax.set_xticks(np.arange(len(order)))
    ax.set_xticklabels([f"{ObjectClass(int(dets.labels[k])).name[:3].lower()}\n"
                        f"{np.hypot(*dets.boxes[k, :2]):.0f} m" for k in order], fontsize=7)
    ax.axhline(0, color="gray", linewidth=0.5)
    ax.set_title("Shapley shares of the top detections")
    ax.set_ylabel("score points")
    ax.legend(fontsize=7, loc="upper right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path
