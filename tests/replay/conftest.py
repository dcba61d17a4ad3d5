"""Shared bags for the replay tests: a simulator scenario written by our converter (built
once per session; small, so every test that runs the model stays a few frames long)."""

from __future__ import annotations

from pathlib import Path

import pytest

SIM_PRESET = "tiny"
SIM_SEED = 1000
SIM_FRAMES = 3


@pytest.fixture(scope="session")
def sim_bag(tmp_path_factory) -> Path:
    """A 3-frame ``tiny`` simulator scenario as one MCAP file (ground truth included)."""
    from perception.replay import sim_to_bag

    path = tmp_path_factory.mktemp("sim") / "sim.mcap"
    sim_to_bag(SIM_PRESET, path, seed=SIM_SEED, frames=SIM_FRAMES, progress=False)
    return path


@pytest.fixture(scope="session")
def sim_frames():
    """The frames (and per-stamp poses) the sim bag was written from."""
    from perception.data.sim import Simulator
    from perception.replay.convert import sim_frames as frames

    return list(frames(Simulator(SIM_PRESET, seed=SIM_SEED), SIM_FRAMES, 10.0))
