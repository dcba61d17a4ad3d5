"""Planar paths that actors and the ego vehicle follow: polylines with filleted corners.

A path is sampled densely (``spacing_m``) in the world frame. Positions at an arclength are
linearly interpolated; a path is travelled cyclically: an open path restarts at its first
point after its end (the restart happens far from the intersection, at the ends of the arms).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_SPACING_M = 0.25


@dataclass(frozen=True, eq=False)
class Path2D:
    """A densely sampled planar path.

    Attributes:
        xy: (M, 2) float64 world-frame samples.
        s_m: (M,) float64 cumulative arclength, ``s_m[0] == 0``.
        heading: (M,) float64 unwrapped tangent heading (radians, CCW from +x).
        curvature: (M,) float64 signed curvature, 1/m (positive turning left).
    """

    xy: np.ndarray
    s_m: np.ndarray
    heading: np.ndarray
    curvature: np.ndarray

    @property
    def length_m(self) -> float:
        return float(self.s_m[-1])

    @property
    def is_closed(self) -> bool:
        """True for a loop (last sample on the first): wrapping the arclength is seamless."""
        return bool(np.linalg.norm(self.xy[-1] - self.xy[0]) < 1e-6)

    def at(self, s_m: np.ndarray | float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Position, heading and curvature at arclengths ``s_m`` (wrapped cyclically).

        Returns:
            xy: (N, 2) float64; heading: (N,) float64 in radians (not wrapped);
            curvature: (N,) float64 in 1/m (positive when turning left).
        """
        s = np.mod(np.atleast_1d(np.asarray(s_m, np.float64)), self.length_m)
        x = np.interp(s, self.s_m, self.xy[:, 0])
        y = np.interp(s, self.s_m, self.xy[:, 1])
        heading = np.interp(s, self.s_m, self.heading)
        curvature = np.interp(s, self.s_m, self.curvature)
        return np.stack([x, y], axis=1), heading, curvature


def fillet_polyline(corners: np.ndarray, radius_m: float | np.ndarray,
                    spacing_m: float = SAMPLE_SPACING_M) -> Path2D:
    """Build a path through ``corners`` (K, 2), rounding each interior corner with an arc.

    Args:
        corners: (K, 2) corner points, K >= 2.
        radius_m: arc radius per interior corner (scalar or (K-2,)); shrunk where a segment is
            too short to hold the tangent points.
        spacing_m: sample spacing along the path.
    """
    corners = np.asarray(corners, np.float64)
    radii = np.broadcast_to(np.asarray(radius_m, np.float64), (max(len(corners) - 2, 0),))
    pieces = [corners[:1]]
    for k in range(1, len(corners) - 1):
        pieces.append(_arc_points(corners[k - 1], corners[k], corners[k + 1], radii[k - 1],
                                  spacing_m))
    pieces.append(corners[-1:])
    waypoints = np.concatenate(pieces, axis=0)
    return _resample(waypoints, spacing_m)


def _arc_points(prev: np.ndarray, corner: np.ndarray, nxt: np.ndarray, radius_m: float,
                spacing_m: float) -> np.ndarray:
    d_in = corner - prev
    d_out = nxt - corner
    len_in, len_out = np.linalg.norm(d_in), np.linalg.norm(d_out)
    d_in, d_out = d_in / len_in, d_out / len_out
    turn = np.arctan2(d_in[0] * d_out[1] - d_in[1] * d_out[0], d_in @ d_out)
    if abs(turn) < 1e-6:
        return corner[None]
    # The tangent points sit at distance r * tan(|turn| / 2) from the corner on both segments.
    tangent_m = min(radius_m * np.tan(abs(turn) / 2.0), 0.5 * len_in, 0.5 * len_out)
    r = tangent_m / np.tan(abs(turn) / 2.0)
    start = corner - d_in * tangent_m
    left_normal = np.array([-d_in[1], d_in[0]])
    centre = start + np.sign(turn) * r * left_normal
    a0 = np.arctan2(start[1] - centre[1], start[0] - centre[0])
    n = max(int(np.ceil(abs(turn) * r / spacing_m)), 2)
    angles = a0 + np.linspace(0.0, turn, n + 1)
    return centre + r * np.stack([np.cos(angles), np.sin(angles)], axis=1)


def _resample(waypoints: np.ndarray, spacing_m: float) -> Path2D:
    seg = np.linalg.norm(np.diff(waypoints, axis=0), axis=1)
    keep = np.concatenate([[True], seg > 1e-9])
    waypoints = waypoints[keep]
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(waypoints, axis=0), axis=1))])
    n = max(int(np.ceil(s[-1] / spacing_m)), 1) + 1
    s_new = np.linspace(0.0, s[-1], n)
    xy = np.stack([np.interp(s_new, s, waypoints[:, 0]), np.interp(s_new, s, waypoints[:, 1])],
                  axis=1)
    d = np.gradient(xy, axis=0)
    heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
    if len(s_new) > 1:
        curvature = np.gradient(heading) / np.maximum(np.gradient(s_new), 1e-9)
    else:
        curvature = np.zeros(1)
    return Path2D(xy=xy, s_m=s_new, heading=heading, curvature=curvature)
