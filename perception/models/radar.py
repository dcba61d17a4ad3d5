"""Radar encoder: radar pillars of ``(x, y, z, vx, vy, rcs, dt)`` points -> BEV.

Radar returns are sparse (tens to hundreds per scan), so a pillar net over the same grid as
the lidar suits them; Doppler velocity and RCS are what lidar cannot see. Multi-scan input
arrives accumulated by the data source, each point carrying its time offset ``dt_s``.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from .batch import RADAR_COLUMNS
from .common import PillarFeatureNet, pillar_grid, points_in_range, scatter_to_bev
from .config import GridConfig, RadarConfig

# Fixed input scaling so the raw columns are O(1): metres stay, m/s / 10, dBsm / 20, s * 10.
_INPUT_SCALE = (1.0, 1.0, 1.0, 0.1, 0.1, 0.05, 10.0)


class RadarPillarEncoder(nn.Module):
    """Radar points -> dynamic pillars -> BEV ``(B, C, H, W)``, x along H."""

    def __init__(self, config: RadarConfig, grid: GridConfig):
        super().__init__()
        self.grid = grid
        self.in_channels = len(RADAR_COLUMNS)
        self.pfn = PillarFeatureNet(self.in_channels, tuple(config.pillar_channels), grid)
        self.out_channels = self.pfn.out_channels
        self.out_stride = 1
        self.register_buffer("scale", torch.tensor(_INPUT_SCALE), persistent=False)

    def forward(self, points: list[torch.Tensor]) -> torch.Tensor:
        """points: B tensors (N_i, 7) float32 :data:`RADAR_COLUMNS`. Returns (B, C, H, W)."""
        B = len(points)
        H, W = self.grid.shape_hw
        kept = [p[points_in_range(p, self.grid)] for p in points]
        flat = torch.cat(kept)
        if flat.shape[0] == 0:
            return flat.new_zeros((B, self.out_channels, H, W))
        voxel_size, point_range = pillar_grid(self.grid)
        coords = ops.voxelize_dynamic_batch(kept, voxel_size, point_range)
        ok = coords[:, 0] >= 0
        scaled = flat[ok] * self.scale
        scaled = torch.cat([flat[ok][:, :3], scaled[:, 3:]], 1)
        feats, pillar_coords = self.pfn(scaled, coords[ok])
        return scatter_to_bev(feats, pillar_coords, B, (H, W))
