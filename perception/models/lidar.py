"""Lidar encoders: dynamic pillars (default) and a spconv SECOND-style sparse encoder.

Both take per-sample point tensors ``(N_i, 3 + C)`` float32 in the vehicle frame (x, y, z,
then the configured columns, e.g. intensity and ``time_offset_s`` for multi-sweep input) and
return a BEV map ``(B, C_out, H, W)`` float32, x forward along H.
"""

from __future__ import annotations

import torch
from torch import nn

from .. import ops
from ..types import Modality
from .common import PillarFeatureNet, pillar_grid, points_in_range, scatter_to_bev
from .config import GridConfig, LidarConfig


class PillarLidarEncoder(nn.Module):
    """Dynamic voxelization into pillars -> pillar feature net -> scatter to BEV."""

    def __init__(self, config: LidarConfig, grid: GridConfig, extra_channels: int = 0):
        super().__init__()
        self.grid = grid
        self.in_channels = 3 + len(config.columns) + extra_channels
        self.pfn = PillarFeatureNet(self.in_channels, tuple(config.pillar_channels), grid)
        self.out_channels = self.pfn.out_channels
        self.out_stride = 1

    def forward(self, points: list[torch.Tensor]) -> torch.Tensor:
        """points: B tensors (N_i, in_channels). Returns (B, C, H, W)."""
        B = len(points)
        H, W = self.grid.shape_hw
        kept = [p[points_in_range(p, self.grid)] for p in points]
        flat = torch.cat(kept) if kept else points[0].new_zeros((0, self.in_channels))
        if flat.shape[0] == 0:
            return flat.new_zeros((B, self.out_channels, H, W))
        voxel_size, point_range = pillar_grid(self.grid)
        coords = ops.voxelize_dynamic_batch(kept, voxel_size, point_range)
        ok = coords[:, 0] >= 0  # float rounding at the upper edge can still drop a point
        feats, pillar_coords = self.pfn(flat[ok], coords[ok])
        return scatter_to_bev(feats, pillar_coords, B, (H, W))

    modalities = (Modality.LIDAR,)
    """What a source checkpoint must have fused for :meth:`load_single_modality`."""

    def can_widen(self, state: dict[str, torch.Tensor]) -> bool:
        """True when ``state`` (keys relative to the encoder) differs from this encoder only
        by fewer input columns of the first layer: a lidar model without painted channels."""
        own = self.state_dict()
        first = "pfn.layers.0.0.weight"
        if set(state) != set(own) or first not in state:
            return False
        rest_same = all(state[k].shape == own[k].shape for k in own if k != first)
        narrower = (state[first].shape[0] == own[first].shape[0]
                    and state[first].shape[1] < own[first].shape[1])
        return rest_same and narrower

    @torch.no_grad()
    def load_single_modality(self, modality: Modality, state: dict[str, torch.Tensor]) -> None:
        """Start from the encoder of a lidar model without painted channels (``state``: its
        tensors, keys relative to the encoder): the painted input columns get zero weights,
        so until training moves them this encoder computes exactly what the source did, and
        an early-fusion model starts from the lidar model's accuracy.
        """
        if modality is not Modality.LIDAR:
            raise ValueError(f"a lidar encoder cannot start from a {modality.value} model")
        own = self.state_dict()
        first = "pfn.layers.0.0.weight"
        source = state[first]
        extra = own[first].shape[1] - source.shape[1]
        if extra < 0 or source.shape[0] != own[first].shape[0]:
            raise ValueError(f"{first} is {tuple(source.shape)}, expected "
                             f"({own[first].shape[0]}, <= {own[first].shape[1]})")
        # Input order: raw columns, painted columns, then the 5 pillar offsets.
        raw = source.shape[1] - 5
        widened = torch.zeros_like(own[first])
        widened[:, :raw] = source[:, :raw]
        widened[:, raw + extra:] = source[:, raw:]
        for key, value in state.items():
            if key != first and (key not in own or own[key].shape != value.shape):
                raise ValueError(f"{key}: not in this encoder or of another shape")
        own[first].copy_(widened)
        for key, value in state.items():
            if key != first:
                own[key].copy_(value)


def build_lidar_encoder(config: LidarConfig, grid: GridConfig, extra_channels: int = 0
                        ) -> nn.Module:
    if config.encoder == "sparse":
        from .sparse import SparseLidarEncoder  # spconv is imported only when used
        return SparseLidarEncoder(config, grid, extra_channels)
    return PillarLidarEncoder(config, grid, extra_channels)
