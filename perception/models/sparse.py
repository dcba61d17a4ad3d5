"""SECOND-style sparse voxel lidar encoder on spconv 2.x, with the CPU workarounds.

spconv 2.3.8 has two CPU bugs:

1. backward asks for the current CUDA stream and fails on a CPU-only torch (spconv issue
   #366);
2. its CPU ``scatter_add`` shares buffers between OpenMP threads, so with more than one thread
   the sums are silently wrong.

:func:`install_spconv_cpu_workarounds` fixes both inside this process: the stream query
returns 0 (the null stream, never used on the CPU path), and the CPU scatter-add becomes a
NumPy add on views of the same buffers. Within one kernel offset the rulebook's output rows
are unique, so a fancy-indexed ``+=`` is exact. ``tests/models/test_sparse.py`` checks the
layers against a dense ``conv3d`` forward and backward.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from .. import ops
from .common import points_in_range
from .config import GridConfig, LidarConfig

_INSTALLED = False


class _ScatterAddFixedOps:
    """Proxy of ``SpconvOps`` whose ``scatter_add_cpu`` is single-threaded and exact."""

    def __init__(self, wrapped):
        self._wrapped = wrapped

    def __getattr__(self, name):
        return getattr(self._wrapped, name)

    @staticmethod
    def scatter_add_cpu(out, buffer, indices) -> None:
        out_np = out.numpy_view()
        idx = indices.numpy_view().astype(np.int64)
        buf = buffer.numpy_view()[:idx.shape[0]]
        out_np[idx] += buf  # rows of idx are unique within one kernel offset


def install_spconv_cpu_workarounds() -> None:
    """Patch the two spconv CPU bugs (idempotent; no effect on CUDA tensors' kernels)."""
    global _INSTALLED
    if _INSTALLED:
        return
    import spconv.pytorch.hash as sp_hash
    import spconv.pytorch.ops as sp_ops

    original_stream = sp_ops.get_current_stream

    def current_stream_or_null() -> int:
        if torch.cuda.is_available():
            return original_stream()
        return 0

    sp_ops.get_current_stream = current_stream_or_null
    sp_hash.get_current_stream = current_stream_or_null
    sp_ops.SpconvOps = _ScatterAddFixedOps(sp_ops.SpconvOps)
    _INSTALLED = True


def _block(spconv, c_in: int, c_out: int, stride: int, key: str):
    if stride == 1:
        conv = spconv.SubMConv3d(c_in, c_out, 3, padding=1, bias=False, indice_key=key)
    else:
        conv = spconv.SparseConv3d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
    return spconv.SparseSequential(conv, nn.BatchNorm1d(c_out), nn.ReLU(inplace=True))


class SparseLidarEncoder(nn.Module):
    """Hard voxelization -> mean voxel features -> sparse 3D conv stages -> dense BEV.

    Stage 0 is a submanifold conv at the voxel resolution; every further stage halves z, y
    and x with a strided sparse conv, then a submanifold conv. The voxel xy size is the BEV
    cell divided by ``2 ** (stages - 1)``, so the output lands exactly on the BEV grid; the
    remaining z slices are stacked into channels.
    """

    def __init__(self, config: LidarConfig, grid: GridConfig, extra_channels: int = 0):
        super().__init__()
        install_spconv_cpu_workarounds()
        import spconv.pytorch as spconv

        self.grid = grid
        self.config = config
        self.in_channels = 3 + len(config.columns) + extra_channels
        chans = tuple(config.sparse_channels)
        down = 2 ** (len(chans) - 1)
        r = grid.point_range_m
        self.voxel_size = (grid.cell_size_m[0] / down, grid.cell_size_m[1] / down,
                           config.voxel_size_z_m)
        H, W = grid.shape_hw
        nz = int(round((r[5] - r[2]) / config.voxel_size_z_m))
        self.spatial_shape = (nz, W * down, H * down)  # (z, y, x), spconv index order
        stages = [_block(spconv, self.in_channels, chans[0], 1, "subm0")]
        for i in range(1, len(chans)):
            stages.append(spconv.SparseSequential(
                _block(spconv, chans[i - 1], chans[i], 2, f"down{i}"),
                _block(spconv, chans[i], chans[i], 1, f"subm{i}")))
        self.stages = nn.ModuleList(stages)
        z_out = nz
        for _ in range(len(chans) - 1):
            z_out = (z_out + 2 * 1 - 3) // 2 + 1
        self.out_channels = chans[-1] * z_out
        self.out_stride = 1
        self._spconv = spconv

    def forward(self, points: list[torch.Tensor]) -> torch.Tensor:
        """points: B tensors (N_i, in_channels). Returns (B, C * Z', H, W), x along H."""
        # spconv picks its own kernels per dtype; keep it out of autocast (float32 features).
        with torch.autocast(points[0].device.type, enabled=False):
            return self._forward(points)

    def _forward(self, points: list[torch.Tensor]) -> torch.Tensor:
        B = len(points)
        kept = [p[points_in_range(p, self.grid)].float().contiguous() for p in points]
        voxels, coords, counts = ops.voxelize_hard_batch(
            kept, self.voxel_size, self.grid.point_range_m,
            self.config.max_points_per_voxel, self.config.max_voxels)
        feats = voxels.sum(1) / counts.clamp(min=1).to(voxels.dtype)[:, None]
        x = self._spconv.SparseConvTensor(feats, coords.int(), list(self.spatial_shape), B)
        for stage in self.stages:
            x = stage(x)
        with warnings.catch_warnings():
            # spconv 2.3.8 indexes with a list internally; torch warns about it on every call.
            warnings.filterwarnings("ignore", message="Using a non-tuple sequence")
            dense = x.dense()  # (B, C, Z', Y, X)
        Bn, C, Z, Y, X = dense.shape
        return dense.permute(0, 1, 2, 4, 3).reshape(Bn, C * Z, X, Y).contiguous()
