"""Fixtures: a few ``tiny`` simulator frames (cached once per session), seeding, threads."""

from __future__ import annotations

import pytest
import torch

from perception.train.data import SimFrames


@pytest.fixture(scope="session")
def tiny_frames(tmp_path_factory):
    """Four labelled frames of the ``tiny`` preset (lidar, one camera, one radar)."""
    frames = SimFrames("tiny", seeds=[0], frames_per_seed=4, stride=1,
                       cache_dir=tmp_path_factory.mktemp("sim_cache"))
    return [frames(i) for i in range(len(frames))]


@pytest.fixture(autouse=True)
def _seeded():
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """One intra-op thread: on a shared 2-core machine OpenMP barriers across descheduled
    threads make step times erratic; one thread keeps them predictable."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
