"""Fixtures of the export tests: simulator frames of both rigs, one thread, seeding."""

from __future__ import annotations

import pytest

from ..models._helpers import _one_thread, _seeded  # noqa: F401  (pytest fixtures)


def _frames(preset: str, n: int):
    pytest.importorskip("open3d", reason="the simulator needs open3d")
    from perception.data.sim import Simulator

    return list(Simulator(preset, seed=1000).frames(n))


@pytest.fixture(scope="session")
def nuscenes_frames():
    """Two nuscenes_like frames (lidar, 6 cameras, 5 radars): the sim configs' rig."""
    return _frames("nuscenes_like", 2)


@pytest.fixture(scope="session")
def waymo_frame():
    """One waymo_like frame (64-beam lidar, 5 cameras, 5 radars): the Waymo configs' rig."""
    return _frames("waymo_like", 1)
