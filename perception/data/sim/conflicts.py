"""Footprint conflicts: keep actors (and the ego) from driving or walking through each other.

Actors move on fixed paths at constant speeds, so their future is known when they are placed.
Scenario generation places them one at a time and rejects a candidate whose bird's-eye-view
rectangle, inflated by a margin, overlaps an already placed one (or the ego) at any check time
of the horizon. The rectangle test is the separating-axis test, vectorised over time.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .paths import Path2D

CHECK_STEP_S = 0.1
"""Time between checks; with the margins, fast crossings cannot slip between two checks."""


@dataclass(frozen=True, eq=False)
class Footprint:
    """BEV rectangles of one object at the check times.

    Attributes:
        xy: (T, 2) float64 centres, world frame.
        heading: (T,) float64 yaw, radians.
        half_lw: (2,) float64 half length and half width, margin included.
    """

    xy: np.ndarray
    heading: np.ndarray
    half_lw: np.ndarray


def footprint(path: Path2D, s0_m: float, speed_mps: float, length_m: float, width_m: float,
              times_s: np.ndarray, margin_lw_m: tuple[float, float]) -> Footprint:
    """Footprint of an object following ``path`` from arclength ``s0_m`` at ``speed_mps``,
    grown by ``margin_lw_m`` (along, across) on each side."""
    xy, heading, _ = path.at(s0_m + speed_mps * times_s)
    half = np.array([0.5 * length_m + margin_lw_m[0], 0.5 * width_m + margin_lw_m[1]])
    return Footprint(xy, heading, half)


def overlaps(a: Footprint, b: Footprint) -> bool:
    """True when the two rectangles overlap at some common check time."""
    d = b.xy - a.xy
    reach = np.linalg.norm(a.half_lw) + np.linalg.norm(b.half_lw)
    near = np.einsum("ij,ij->i", d, d) <= reach * reach   # bounding circles first
    if not near.any():
        return False
    d = d[near]
    ua = np.stack([np.cos(a.heading[near]), np.sin(a.heading[near])], axis=1)
    ub = np.stack([np.cos(b.heading[near]), np.sin(b.heading[near])], axis=1)
    va, vb = ua[:, ::-1] * [-1.0, 1.0], ub[:, ::-1] * [-1.0, 1.0]
    separated = np.zeros(len(d), bool)
    for axis in (ua, va, ub, vb):
        gap = np.abs(np.einsum("ij,ij->i", d, axis))
        extent_a = a.half_lw[0] * np.abs(np.einsum("ij,ij->i", ua, axis)) \
            + a.half_lw[1] * np.abs(np.einsum("ij,ij->i", va, axis))
        extent_b = b.half_lw[0] * np.abs(np.einsum("ij,ij->i", ub, axis)) \
            + b.half_lw[1] * np.abs(np.einsum("ij,ij->i", vb, axis))
        separated |= gap > extent_a + extent_b
    return bool((~separated).any())


class FootprintSet:
    """The footprints placed so far."""

    def __init__(self) -> None:
        self.items: list[Footprint] = []

    def conflicts(self, candidate: Footprint) -> bool:
        return any(overlaps(candidate, other) for other in self.items)

    def add(self, item: Footprint) -> None:
        self.items.append(item)
