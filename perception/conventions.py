"""Conventions every layer shares (docs/conventions.md), in a leaf module with no project
imports, so that the data contracts (:mod:`perception.types`) and the geometry
(:mod:`perception.geometry`) can both use them without importing each other.
"""

from __future__ import annotations

import numpy as np

BOX_DIM = 7
"""Columns of a box: x, y, z, length, width, height, heading."""

R_OPTICAL_FROM_WAYMO = np.array([[0.0, -1.0, 0.0], [0.0, 0.0, -1.0], [1.0, 0.0, 0.0]])
"""``p_optical = R_OPTICAL_FROM_WAYMO @ p_waymo``: the Waymo camera frame (x forward, y left,
z up) to the optical frame (x right, y down, z forward): ``x_o = -y_w``, ``y_o = -z_w``,
``z_o = x_w``."""

T_WAYMO_FROM_OPTICAL = np.eye(4)
T_WAYMO_FROM_OPTICAL[:3, :3] = R_OPTICAL_FROM_WAYMO.T
"""(4, 4) optical frame -> Waymo camera frame (a pure rotation)."""


def wrap_heading(heading: np.ndarray | float) -> np.ndarray | float:
    """Wrap angles (radians) to [-pi, pi)."""
    return (np.asarray(heading) + np.pi) % (2.0 * np.pi) - np.pi
