"""bev_pool: sum camera frustum features into a BEV grid (as in BEVFusion).

Points are sorted by the rank of their cell, ``((b * Z + z) * H + y) * W + x``; every non-empty
cell is one interval of the sorted order. The forward sums each interval into its cell, the
backward copies the cell's gradient to the interval's points. Nothing is accumulated with
atomics, so the result does not depend on the thread count or on scheduling. (On the CPU each
thread owns a contiguous range of intervals and reads the feature rows in address order, which
is faster on memory-bound machines; the sums are the same, see docs/ops.md. On CUDA the
intervals are cut into chunks of at most :data:`CUDA_CHUNK` points whose partial sums are
summed again level by level, so a long interval never serialises the kernel; the chunk tables
are part of the plan.)

The sort and the interval table depend only on the geometry. When the camera geometry is fixed
(the usual case on a vehicle: fixed intrinsics, extrinsics and depth bins), build them once with
:func:`bev_pool_plan` and pass ``plan=`` on every frame.

Points whose geometry falls outside ``[0, batch_size) x [0, Z) x [0, H) x [0, W)`` are dropped
(they get a zero gradient).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import _checks as C
from . import _library  # noqa: F401  (registers torch.ops.perception)
from ._dispatch import compiled

CUDA_CHUNK = 32
"""Points (or partial rows) one CUDA thread sums per level of the forward."""


@dataclass(frozen=True)
class BevPoolPlan:
    """Rank sort and interval table of one geometry (see :func:`bev_pool_plan`).

    ``order`` (K,) point indices sorted by cell rank (stable); ``starts``, ``lengths``,
    ``ranks`` (I,) one interval per non-empty cell; ``dropped`` (N - K,) points outside the
    grid; ``point_rank`` (N,) the cell rank of every point (-1 outside). All int64, on the
    device of the geometry. ``levels``: on CUDA, the chunk tables of the forward
    (:func:`chunk_levels`), empty on the CPU.
    """

    order: torch.Tensor
    starts: torch.Tensor
    lengths: torch.Tensor
    ranks: torch.Tensor
    dropped: torch.Tensor
    point_rank: torch.Tensor
    num_points: int
    batch_size: int
    grid_shape: tuple[int, int, int]
    levels: tuple[torch.Tensor, ...] = ()

    @property
    def device(self) -> torch.device:
        return self.order.device

    def to(self, device: torch.device | str) -> BevPoolPlan:
        """The same plan on ``device`` (chunk tables built when moving to CUDA)."""
        device = torch.device(device)
        move = {k: getattr(self, k).to(device) for k in
                ("order", "starts", "lengths", "ranks", "dropped", "point_rank")}
        levels = tuple(t.to(device) for t in self.levels)
        if device.type == "cuda" and not levels:
            levels = chunk_levels(move["starts"], move["lengths"])
        return BevPoolPlan(**move, num_points=self.num_points, batch_size=self.batch_size,
                           grid_shape=self.grid_shape, levels=levels)


def chunk_levels(starts: torch.Tensor, lengths: torch.Tensor, chunk: int = CUDA_CHUNK
                 ) -> tuple[torch.Tensor, ...]:
    """Chunk tables of the CUDA forward: ``(chunk_start_0, chunk_len_0, chunk_start_1, ...)``.

    Level 0 cuts every interval ``[starts[i], starts[i] + lengths[i])`` of the sorted points
    into chunks of at most ``chunk`` points (never across intervals); its chunk sums are rows
    of a partial buffer, grouped by interval. Level l + 1 does the same over the partial rows
    of level l, until one chunk per interval is left (the last level, whose sums go to the
    cells). An interval of n points thus takes ``ceil(log_chunk n)`` levels and no thread sums
    more than ``chunk`` rows.
    """
    if starts.numel() == 0:
        return ()
    dev = starts.device
    out: list[torch.Tensor] = []
    seg_start, seg_len = starts, lengths
    while True:
        n = (seg_len + (chunk - 1)) // chunk
        total = int(n.sum())
        if total == seg_len.numel():
            return tuple(out + [seg_start.contiguous(), seg_len.contiguous()])
        first = torch.cumsum(n, 0) - n
        seg = torch.repeat_interleave(torch.arange(n.numel(), device=dev), n,
                                      output_size=total)
        cstart = seg_start[seg] + (torch.arange(total, device=dev) - first[seg]) * chunk
        clen = torch.clamp(seg_start[seg] + seg_len[seg] - cstart, max=chunk)
        out += [cstart, clen]
        seg_start, seg_len = first, n


def _grid_shape(grid_shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        dims = tuple(grid_shape)
    except TypeError:
        raise C.OpsError(f"grid_shape: expected (Z, H, W) or (H, W), got {grid_shape!r}") from None
    if len(dims) == 2:
        dims = (1, *dims)
    if len(dims) != 3:
        raise C.OpsError(f"grid_shape: expected (Z, H, W) or (H, W), got {grid_shape!r}")
    out = tuple(C.as_int(f"grid_shape[{i}]", d, minimum=1, maximum=C.INT32_MAX)
                for i, d in enumerate(dims))
    return out  # type: ignore[return-value]


def _check_geometry(geometry: object) -> torch.Tensor:
    geo = C.check_matrix("geometry", C.as_tensor("geometry", geometry), 4,
                         cols_text="(N, 4) as (b, z, y, x)")
    C.require_int("geometry", geo)
    if geo.dtype not in (torch.int32, torch.int64):
        geo = geo.to(torch.int64)
    return geo.contiguous()


def _plan_torch(geo: torch.Tensor, B: int, Z: int, H: int, W: int) -> list[torch.Tensor]:
    """Device-independent plan with torch ops (used on CUDA and as the fallback)."""
    g = geo.to(torch.int64)
    b, z, y, x = g.unbind(1)
    valid = (b >= 0) & (b < B) & (z >= 0) & (z < Z) & (y >= 0) & (y < H) & (x >= 0) & (x < W)
    rank = ((b * Z + z) * H + y) * W + x
    idx = torch.nonzero(valid).squeeze(1)
    srank, perm = torch.sort(rank[idx], stable=True)
    order = idx[perm]
    ranks, lengths = torch.unique_consecutive(srank, return_counts=True)
    starts = torch.cumsum(lengths, 0) - lengths
    dropped = torch.nonzero(~valid).squeeze(1)
    point_rank = torch.where(valid, rank, torch.full_like(rank, -1))
    return [order, starts, lengths, ranks, dropped, point_rank]


def bev_pool_plan(geometry, batch_size: int, grid_shape: Sequence[int]) -> BevPoolPlan:
    """Sort the points of ``geometry`` (N, 4) ``(b, z, y, x)`` by cell and build the intervals."""
    geo = _check_geometry(geometry)
    B = C.as_int("batch_size", batch_size, minimum=1, maximum=C.INT32_MAX)
    Z, H, W = _grid_shape(grid_shape)
    if float(B) * Z * H * W >= 2.0**62:
        raise C.OpsError(f"grid_shape: {B} x {Z} x {H} x {W} cells do not fit int64 ranks")
    if geo.device.type == "cpu" and compiled(geo.device):
        parts = torch.ops.perception.bev_pool_plan(geo, B, Z, H, W)
    else:
        parts = _plan_torch(geo, B, Z, H, W)
    levels = chunk_levels(parts[1], parts[2]) if geo.device.type == "cuda" else ()
    return BevPoolPlan(*parts, num_points=geo.shape[0], batch_size=B, grid_shape=(Z, H, W),
                       levels=levels)


def _bev_pool_torch(features: torch.Tensor, plan: BevPoolPlan) -> torch.Tensor:
    Z, H, W = plan.grid_shape
    cell = torch.repeat_interleave(plan.ranks, plan.lengths)
    out = features.new_zeros((plan.batch_size * Z * H * W, features.shape[1]))
    out = out.index_add(0, cell, features[plan.order])
    return out.view(plan.batch_size, Z, H, W, -1).permute(0, 4, 1, 2, 3).contiguous()


def bev_pool(features, geometry, batch_size: int, grid_shape: Sequence[int], *,
             plan: BevPoolPlan | None = None) -> torch.Tensor:
    """Sum frustum features into BEV cells.

    Args:
        features: (N, C) float32 (float64 also works, float16 on CUDA only).
        geometry: (N, 4) integer ``(b, z, y, x)`` cell of each feature; may be None when
            ``plan`` is given.
        batch_size: B.
        grid_shape: ``(Z, H, W)``, or ``(H, W)`` for a flat BEV (Z = 1).
        plan: a :class:`BevPoolPlan` of the same geometry, batch size and grid, to skip the sort.

    Returns:
        (B, C, Z, H, W) tensor, dtype and device of ``features``; differentiable in features.
    """
    feats = C.check_matrix("features", C.as_tensor("features", features))
    allowed = (torch.float32, torch.float64) + (
        (torch.float16,) if feats.device.type == "cuda" else ())
    C.require_float("features", feats, allowed)
    B = C.as_int("batch_size", batch_size, minimum=1, maximum=C.INT32_MAX)
    dims = _grid_shape(grid_shape)
    C.check_output_size("grid_shape", (B, feats.shape[1], *dims), feats.element_size())
    if plan is None:
        if geometry is None:
            raise C.OpsError("geometry: None, and no plan was given")
        geo = _check_geometry(geometry)
        if geo.shape[0] != feats.shape[0]:
            raise C.OpsError(f"geometry: {geo.shape[0]} rows, but features has "
                             f"{feats.shape[0]}")
        C.same_device(features=feats, geometry=geo)
        plan = bev_pool_plan(geo, B, dims)
    else:
        if not isinstance(plan, BevPoolPlan):
            raise C.OpsError(f"plan: expected a BevPoolPlan, got {type(plan).__name__}")
        if plan.num_points != feats.shape[0]:
            raise C.OpsError(f"plan: built for {plan.num_points} points, but features has "
                             f"{feats.shape[0]} rows")
        if plan.batch_size != B or plan.grid_shape != dims:
            raise C.OpsError(f"plan: built for batch {plan.batch_size} and grid "
                             f"{plan.grid_shape}, called with batch {B} and grid {dims}")
        if geometry is not None:
            geo = C.as_tensor("geometry", geometry)
            if geo.dim() != 2 or geo.shape[0] != plan.num_points:
                raise C.OpsError(f"geometry: {C.describe(geo)} does not match the plan's "
                                 f"{plan.num_points} points")
        if plan.device != feats.device:
            raise C.OpsError(f"plan: on {plan.device}, but features is on {feats.device}")
    if not compiled(feats.device):
        return _bev_pool_torch(feats, plan)
    if feats.device.type == "cuda" and not plan.levels and plan.starts.numel():
        plan = plan.to(feats.device)  # a plan built without its chunk tables
    Z, H, W = plan.grid_shape
    return torch.ops.perception.bev_pool_forward(
        feats.contiguous(), plan.order, plan.starts, plan.lengths, plan.ranks, plan.point_rank,
        list(plan.levels), plan.batch_size, Z, H, W)


__all__ = ["CUDA_CHUNK", "BevPoolPlan", "bev_pool", "bev_pool_plan", "chunk_levels"]
