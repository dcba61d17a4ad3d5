"""Sweep statistics used to compare simulated lidar with real sweeps (docs/simulator.md).

All functions take points in the *sensor* frame (origin at the lidar, z up) so that a real
sweep (e.g. KITTI velodyne, ``float32 x, y, z, reflectance``) and a simulated one (vehicle frame
minus the mount position) are measured the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RANGE_BINS_M = (0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, np.inf)
RING_BIN_DEG = 0.05


@dataclass(frozen=True)
class SweepStats:
    """Summary of one sweep.

    Attributes:
        num_points: points in the sweep.
        num_rings: distinct elevation rings found (peaks of the elevation histogram).
        elevation_min_deg, elevation_max_deg: 1st and 99.9th percentile of point elevations.
        ring_spacing_top_deg, ring_spacing_bottom_deg: median spacing of the upper and lower
            halves of the rings (non-uniform patterns are denser at the top).
        range_fractions: fraction of points per bin of :data:`RANGE_BINS_M` (horizontal range).
        ground_fraction: fraction of points within 0.2 m of a plane fitted to the ground.
        mean_intensity: mean of the intensity column, or NaN when not given.
    """

    num_points: int
    num_rings: int
    elevation_min_deg: float
    elevation_max_deg: float
    ring_spacing_top_deg: float
    ring_spacing_bottom_deg: float
    range_fractions: tuple[float, ...]
    ground_fraction: float
    mean_intensity: float


def sweep_stats(xyz: np.ndarray, intensity: np.ndarray | None = None) -> SweepStats:
    """Statistics of a sweep ``xyz`` (N, 3) in the sensor frame; ``intensity`` (N,) optional."""
    xyz = np.asarray(xyz, np.float64)
    horizontal = np.hypot(xyz[:, 0], xyz[:, 1])
    elevation = np.degrees(np.arctan2(xyz[:, 2], horizontal))
    rings = ring_elevations_deg(elevation[horizontal > 2.0])
    spacing = np.diff(rings)
    half = len(spacing) // 2
    top = float(np.median(spacing[half:])) if half else float("nan")
    bottom = float(np.median(spacing[:half])) if half else float("nan")
    counts, _ = np.histogram(horizontal, bins=np.array(RANGE_BINS_M))
    return SweepStats(
        num_points=len(xyz), num_rings=len(rings),
        elevation_min_deg=float(np.percentile(elevation, 1.0)),
        elevation_max_deg=float(np.percentile(elevation, 99.9)),
        ring_spacing_top_deg=top, ring_spacing_bottom_deg=bottom,
        range_fractions=tuple(float(c) for c in counts / max(len(xyz), 1)),
        ground_fraction=ground_fraction(xyz),
        mean_intensity=float(np.mean(intensity)) if intensity is not None else float("nan"))


def ring_elevations_deg(elevation_deg: np.ndarray) -> np.ndarray:
    """Elevations of the rings: local maxima of a fine elevation histogram, ascending.

    A bin counts as part of a ring when it holds at least 0.2 % of the points; adjacent such
    bins merge into one ring (its count-weighted centre).
    """
    lo, hi = np.floor(elevation_deg.min()), np.ceil(elevation_deg.max())
    edges = np.arange(lo, hi + RING_BIN_DEG, RING_BIN_DEG)
    counts, _ = np.histogram(elevation_deg, bins=edges)
    centres = 0.5 * (edges[:-1] + edges[1:])
    strong = counts >= max(0.002 * len(elevation_deg), 5)
    rings, run = [], []
    for i, is_strong in enumerate(strong):
        if is_strong:
            run.append(i)
        elif run:
            rings.append(np.average(centres[run], weights=counts[run]))
            run = []
    if run:
        rings.append(np.average(centres[run], weights=counts[run]))
    return np.array(rings)


def ground_fraction(xyz: np.ndarray, tolerance_m: float = 0.2) -> float:
    """Fraction of points within ``tolerance_m`` of a ground plane ``z = a x + b y + c``.

    The plane is fitted by least squares to low points near the sensor, then refitted twice to
    the points within 0.3 m of it (robust enough for urban sweeps, and identical for real and
    simulated data).
    """
    horizontal = np.hypot(xyz[:, 0], xyz[:, 1])
    near = xyz[(horizontal > 3.0) & (horizontal < 30.0)]
    if len(near) < 10:
        return float("nan")
    candidates = near[near[:, 2] < np.percentile(near[:, 2], 30.0)]
    coeffs = np.zeros(3)
    for _ in range(3):
        A = np.column_stack([candidates[:, 0], candidates[:, 1], np.ones(len(candidates))])
        coeffs, *_ = np.linalg.lstsq(A, candidates[:, 2], rcond=None)
        residual = near[:, 2] - (near[:, :2] @ coeffs[:2] + coeffs[2])
        candidates = near[np.abs(residual) < 0.3]
    residual_all = xyz[:, 2] - (xyz[:, :2] @ coeffs[:2] + coeffs[2])
    return float(np.mean(np.abs(residual_all) < tolerance_m))
