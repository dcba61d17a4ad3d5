"""Small model configs shared by the tests of this directory."""

from __future__ import annotations

from perception.models.config import (BackboneConfig, CameraConfig, FuserConfig, GridConfig,
                                      HeadConfig, LidarConfig, ModelConfig, RadarConfig)


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
