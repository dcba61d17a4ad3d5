"""Fixtures and small model configs shared by the detector tests (tests/models, tests/train).

The conftest.py of each of those directories imports the fixtures from here.
"""

from __future__ import annotations

import pytest
import torch

from perception.models.config import (
    BackboneConfig,
    CameraConfig,
    FuserConfig,
    GridConfig,
    HeadConfig,
    LidarConfig,
    ModelConfig,
    RadarConfig,
)
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


def small_model_config(fuser: str = "concat", **overrides) -> ModelConfig:
    """All three modalities on a 64 x 64 grid of 0.8 m cells: fast on the CPU."""
    config = ModelConfig(
        grid=GridConfig(point_range_m=(-25.6, -25.6, -3.0, 25.6, 25.6, 3.0),
                        cell_size_m=(0.8, 0.8)),
        lidar=LidarConfig(pillar_channels=(16,)),
        camera=CameraConfig(image_size_hw=(64, 96), backbone_channels=(8, 16, 32),
                            fpn_channels=16, depth_m=(1.0, 33.0, 2.0), out_channels=16),
        radar=RadarConfig(pillar_channels=(8,)),
        fuser=FuserConfig(kind=fuser, out_channels=16),
        backbone=BackboneConfig(layer_nums=(1, 1), layer_strides=(1, 2), channels=(16, 32),
                                upsample_channels=(16, 16)),
        head=HeadConfig(head_channels=16))
    for key, value in overrides.items():
        setattr(config, key, value)
    config.validate()
    return config
