"""Hard and dynamic voxelization, and per-voxel scatter reductions.

Conventions (shared with spconv and mmcv):

* The voxel index of a point is ``floor((p - range_min) / voxel_size)``, computed in float32.
  The grid is ``round((range_max - range_min) / voxel_size)`` voxels per axis (float32,
  rounded half away from zero). A point is kept when every index is in ``[0, grid)``: the lower
  bound of ``point_range`` is inclusive, the upper bound exclusive (a point exactly at
  ``range_max`` is dropped).
* Points with a NaN or inf coordinate (x, y or z) are dropped like points outside the range;
  other columns are copied as they are.
* Coordinates are int32 ``(z, y, x)``, or ``(b, z, y, x)`` for the batched forms.

Hard voxelization is deterministic: voxel ``i`` is the ``i``-th distinct voxel met in point
order and the points of a voxel keep their input order. When more than ``max_voxels`` voxels
are met, the later ones (by first point) are dropped with all their points; a voxel keeps its
first ``max_points`` points. This is exactly mmcv's hard voxelization with
``deterministic=True``, and the output does not depend on the thread count.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from . import _checks as C
from . import (
    _library,  # noqa: F401  (registers torch.ops.perception)
    reference,
)
from ._dispatch import compiled

REDUCE_CODES = {"sum": 0, "mean": 1, "max": 2}


def voxelize_hard(points, voxel_size, point_range, max_points: int, max_voxels: int | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group points into at most ``max_voxels`` voxels of at most ``max_points`` points.

    Args:
        points: (N, C>=3) points, x y z first. Floating dtypes are converted to float32.
        voxel_size: (3,) voxel size x, y, z (metres), all > 0.
        point_range: (6,) ``(x_min, y_min, z_min, x_max, y_max, z_max)``.
        max_points: points kept per voxel (>= 1).
        max_voxels: voxels kept (>= 0), or None for no limit.

    Returns:
        ``voxels`` (M, max_points, C) float32, zero-padded; ``coords`` (M, 3) int32
        ``(z, y, x)``; ``num_points`` (M,) int32. On the device of ``points``.

    Raises:
        OpsError: bad arguments, or a voxel buffer of ``min(max_voxels, N) x max_points x C``
            over :data:`~perception.ops._checks.MAX_OUTPUT_BYTES`.
    """
    pts = C.check_points(points)
    grid = C.voxel_grid(voxel_size, point_range)
    P = C.as_int("max_points", max_points, minimum=1, maximum=C.INT32_MAX)
    M = C.as_int("max_voxels", max_voxels, minimum=0, maximum=C.INT32_MAX, allow_none=True)
    C.check_output_size("max_points", (min(M if M is not None else pts.shape[0],
                                           pts.shape[0]), P, pts.shape[1]), 4)
    if not compiled(pts.device):
        return reference.voxelize_hard(pts, voxel_size, point_range, P, M)
    limit = min(M if M is not None else pts.shape[0], C.INT32_MAX)
    out = torch.ops.perception.hard_voxelize(pts, list(grid.size), list(grid.lo),
                                             list(grid.grid), P, limit)
    return tuple(out)  # type: ignore[return-value]


def voxelize_hard_batch(points_list: Sequence, voxel_size, point_range, max_points: int,
                        max_voxels: int | None
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """:func:`voxelize_hard` per sample, concatenated; coords are ``(b, z, y, x)`` int32.

    ``max_voxels`` applies to each sample.
    """
    if isinstance(points_list, (torch.Tensor,)) or not isinstance(points_list, Sequence):
        raise C.OpsError(f"points_list: expected a sequence of (N_i, C) point tensors, got "
                         f"{type(points_list).__name__}")
    if len(points_list) == 0:
        raise C.OpsError("points_list: empty; at least one sample is needed")
    voxels, coords, counts = [], [], []
    for b, pts in enumerate(points_list):
        v, c, n = voxelize_hard(C.check_points(pts, f"points_list[{b}]"), voxel_size,
                                point_range, max_points, max_voxels)
        voxels.append(v)
        coords.append(torch.cat([torch.full_like(c[:, :1], b), c], dim=1))
        counts.append(n)
    widths = {v.shape[2] for v in voxels}
    if len(widths) > 1:
        raise C.OpsError(f"points_list: samples have different channel counts {sorted(widths)}")
    return torch.cat(voxels), torch.cat(coords), torch.cat(counts)


def voxelize_dynamic(points, voxel_size, point_range) -> torch.Tensor:
    """Per-point voxel coordinates: (N, 3) int32 ``(z, y, x)``, a row of -1 for dropped points."""
    pts = C.check_points(points)
    grid = C.voxel_grid(voxel_size, point_range)
    if not compiled(pts.device):
        return reference.voxelize_dynamic(pts, voxel_size, point_range)
    return torch.ops.perception.dynamic_voxelize(pts, list(grid.size), list(grid.lo),
                                                 list(grid.grid))


def voxelize_dynamic_batch(points_list: Sequence, voxel_size, point_range) -> torch.Tensor:
    """:func:`voxelize_dynamic` per sample, concatenated: (sum N_i, 4) int32 ``(b, z, y, x)``,
    a row of -1 (batch included) for dropped points."""
    if isinstance(points_list, torch.Tensor) or not isinstance(points_list, Sequence):
        raise C.OpsError(f"points_list: expected a sequence of (N_i, C) point tensors, got "
                         f"{type(points_list).__name__}")
    if len(points_list) == 0:
        raise C.OpsError("points_list: empty; at least one sample is needed")
    out = []
    for b, pts in enumerate(points_list):
        c = voxelize_dynamic(C.check_points(pts, f"points_list[{b}]"), voxel_size, point_range)
        bcol = torch.where(c[:, :1] >= 0, torch.full_like(c[:, :1], b), c[:, :1])
        out.append(torch.cat([bcol, c], dim=1))
    return torch.cat(out)


def scatter_reduce(features, coords, reduce: str = "mean"
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reduce point features per voxel.

    Args:
        features: (N, C) float32 or float64 (float16 too on CUDA).
        coords: (N, D) integer voxel coordinates, e.g. the output of :func:`voxelize_dynamic`
            (D = 3) or of :func:`voxelize_dynamic_batch` (D = 4). Rows with any negative entry
            are ignored.
        reduce: ``"mean"``, ``"max"`` or ``"sum"``.

    Returns:
        ``voxel_features`` (M, C); ``voxel_coords`` (M, D), the unique coordinates sorted
        lexicographically, dtype of ``coords``; ``inverse`` (N,) int64, the row of each point in
        the output (-1 for ignored points). ``mean``, ``max`` and ``sum`` have a backward; for
        ``max`` the gradient of each channel goes to the first point (lowest index) holding the
        maximum.
    """
    if reduce not in REDUCE_CODES:
        raise C.OpsError(f"reduce: expected 'mean', 'max' or 'sum', got {reduce!r}")
    feats = C.check_matrix("features", C.as_tensor("features", features))
    crd = C.check_matrix("coords", C.as_tensor("coords", coords), cols_text="(N, D)")
    if crd.shape[1] < 1:
        raise C.OpsError(f"coords: expected at least one column, got {C.describe(crd)}")
    if crd.shape[0] != feats.shape[0]:
        raise C.OpsError(f"coords: {crd.shape[0]} rows, but features has {feats.shape[0]}")
    dev = C.same_device(features=feats, coords=crd)
    allowed = (torch.float32, torch.float64) + ((torch.float16,) if dev.type == "cuda" else ())
    C.require_float("features", feats, allowed)
    C.require_int("coords", crd)
    if crd.dtype not in (torch.int32, torch.int64):
        crd = crd.to(torch.int64)
    if crd.numel():
        mx = crd.max(dim=0).values.to(torch.float64) + 1
        if float(mx.clamp(min=1).prod()) >= 2.0**62:
            raise C.OpsError(f"coords: extents {mx.to(torch.int64).tolist()} span too many cells "
                             f"for int64 voxel keys")
    if not compiled(dev):
        return reference.scatter_reduce(feats, crd, reduce)
    out, vcoords, inverse, _, _ = torch.ops.perception.scatter_reduce(
        feats.contiguous(), crd.contiguous(), REDUCE_CODES[reduce])
    return out, vcoords, inverse
