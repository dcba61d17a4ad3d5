"""lss_pool: bev_pool of a lift-splat frustum without building the frustum.

A lift-splat camera encoder sums ``depth[n, d, y, x] * context[n, :, y, x]`` into the BEV cell
of frustum point ``(n, d, y, x)``. Built explicitly, that frustum is N*D*h*w rows of C floats
(26 MB for six 16 x 24 feature maps, 44 depth bins and 64 channels), written once and read
twice before :func:`~perception.ops.bev_pool` sums it. The same sum is a sparse product: with
``A[cell, pixel] = sum of depth[n, d, y, x] over the bins d whose point falls in cell``,
the BEV map is ``A @ context`` (cells x pixels times pixels x C). A has one entry per
(cell, pixel) pair that some bin reaches, and its layout depends only on the geometry, like
a :class:`~perception.ops.BevPoolPlan`: build it once with :func:`lss_pool_plan` while the
calibration is fixed, then each frame only gathers the depths into A's values and multiplies
(torch's CSR matrix product), with the same sums as building the frustum and pooling it and
several times faster (benchmarks/RESULTS.md).

The backward does not build the frustum either (:class:`_LssPool`), so training uses it too,
with a plan built per step when augmentation moves the cameras.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from . import _checks as C
from .bev_pool import _check_geometry, _grid_shape


@dataclass(frozen=True)
class LssPoolPlan:
    """Layout of the (cells x pixels) matrix of one frustum geometry.

    ``crow`` (B*Z*H*W + 1,) and ``pixel`` (P,) are A's CSR row pointers and column indices
    (pixel ``(n * h + y) * w + x``); ``source`` (K,) the flat frustum index
    ``((n * D + d) * h + y) * w + x`` of every point inside the grid, in A's entry order;
    ``entry`` (K,) the entry of A each of them adds to. ``t_crow`` (N*h*w + 1,), ``t_cell``
    (P,) and ``t_entry`` (P,) lay out A's transpose for the backward: row pointers, the cell
    of each of its entries and the entry of A it is. All int64, on the geometry's device.
    """

    crow: torch.Tensor
    pixel: torch.Tensor
    source: torch.Tensor
    entry: torch.Tensor
    t_crow: torch.Tensor
    t_cell: torch.Tensor
    t_entry: torch.Tensor
    depth_shape: tuple[int, int, int, int]
    batch_size: int
    grid_shape: tuple[int, int, int]

    @property
    def num_entries(self) -> int:
        return int(self.pixel.shape[0])


def lss_pool_plan(geometry, depth_shape: Sequence[int], batch_size: int,
                  grid_shape: Sequence[int]) -> LssPoolPlan:
    """The matrix layout for frustum cells ``geometry``.

    Args:
        geometry: (N*D*h*w, 4) integer ``(b, z, y, x)`` cell of every frustum point, in the
            flat order of a (N, D, h, w) depth tensor; points outside the grid are dropped.
        depth_shape: ``(N, D, h, w)``.
        batch_size: B.
        grid_shape: ``(Z, H, W)``, or ``(H, W)``.
    """
    geo = _check_geometry(geometry).to(torch.int64)
    shape = tuple(C.as_int(f"depth_shape[{i}]", d, minimum=1) for i, d in
                  enumerate(_four(depth_shape)))
    N, D, h, w = shape
    if geo.shape[0] != N * D * h * w:
        raise C.OpsError(f"geometry: {geo.shape[0]} rows, but depth_shape {shape} has "
                         f"{N * D * h * w} points")
    B = C.as_int("batch_size", batch_size, minimum=1, maximum=C.INT32_MAX)
    Z, H, W = _grid_shape(grid_shape)
    b, z, y, x = geo.unbind(1)
    inside = (b >= 0) & (b < B) & (z >= 0) & (z < Z) & (y >= 0) & (y < H) & (x >= 0) & (x < W)
    source = inside.nonzero().squeeze(1)
    cell = (((b * Z + z) * H + y) * W + x)[source]
    pixel = (source // (D * h * w)) * (h * w) + source % (h * w)
    pixels = N * h * w
    key, order = torch.sort(cell * pixels + pixel, stable=True)
    pairs, entry = torch.unique_consecutive(key, return_inverse=True)
    cells = B * Z * H * W
    pair_cell, pair_pixel = pairs // pixels, pairs % pixels
    # A's transpose: the same entries sorted by (pixel, cell); within a pixel they are
    # already in cell order, so a stable sort by pixel alone is enough.
    t_pixel, t_entry = torch.sort(pair_pixel, stable=True)
    return LssPoolPlan(_row_pointers(pair_cell, cells), pair_pixel, source[order], entry,
                       _row_pointers(t_pixel, pixels), pair_cell[t_entry], t_entry, shape, B,
                       (Z, H, W))


def _row_pointers(rows: torch.Tensor, num_rows: int) -> torch.Tensor:
    """CSR row pointers (num_rows + 1,) of entries whose sorted row indices are ``rows``."""
    crow = torch.zeros(num_rows + 1, dtype=torch.int64, device=rows.device)
    crow[1:] = torch.bincount(rows, minlength=num_rows).cumsum(0)
    return crow


def lss_pool(depth, context, plan: LssPoolPlan) -> torch.Tensor:
    """Sum ``depth x context`` into BEV cells as laid out by ``plan``.

    Args:
        depth: (N, D, h, w) float32 or float64 depth distribution.
        context: (N, C, h, w) context features, same dtype and device.
        plan: from :func:`lss_pool_plan` for this geometry.

    Returns:
        (B, C, Z, H, W) contiguous, equal to ``bev_pool`` of the explicit frustum
        ``depth.unsqueeze(-1) * context.permute(0, 2, 3, 1).unsqueeze(1)``.
    """
    d = C.as_tensor("depth", depth)
    ctx = C.as_tensor("context", context)
    for name, t in (("depth", d), ("context", ctx)):
        C.require_float(name, t, (torch.float32, torch.float64))
        if t.dim() != 4:
            raise C.OpsError(f"{name}: expected shape (N, *, h, w), got {C.describe(t)}")
    if tuple(d.shape) != plan.depth_shape:
        raise C.OpsError(f"depth: {C.describe(d)}, but the plan was built for "
                         f"{plan.depth_shape}")
    N, _, h, w = plan.depth_shape
    if ctx.shape[0] != N or tuple(ctx.shape[2:]) != (h, w) or ctx.dtype != d.dtype:
        raise C.OpsError(f"context: expected shape ({N}, C, {h}, {w}) and dtype "
                         f"{d.dtype}, got {C.describe(ctx)}")
    C.same_device(depth=d, context=ctx, plan=plan.crow)
    B, (Z, H, W), channels = plan.batch_size, plan.grid_shape, ctx.shape[1]
    C.check_output_size("grid_shape", (B, channels, Z, H, W), d.element_size())
    cells = _LssPool.apply(d, ctx, plan)
    return cells.view(B, Z, H, W, channels).permute(0, 4, 1, 2, 3).contiguous()


class _LssPool(torch.autograd.Function):
    """``A @ X`` with A's values gathered from the depths (see the module docstring).

    Backward, with G = dL/d(A @ X) (cells x C): dL/dX = A^T @ G, a product with the
    transposed matrix; dL/dA = G @ X^T, needed only at A's entries (a sampled product,
    one dot product of C per entry); each depth then gets the gradient of the entry its
    frustum point was summed into. Memory stays O(entries + pixels x C), as in the forward:
    the frustum is never built in either direction.
    """

    @staticmethod
    def forward(ctx, depth: torch.Tensor, context: torch.Tensor, plan: LssPoolPlan
                ) -> torch.Tensor:
        N, _, h, w = plan.depth_shape
        values = depth.new_zeros(plan.num_entries).index_add_(
            0, plan.entry, depth.detach().reshape(-1)[plan.source])
        pixels = context.detach().permute(0, 2, 3, 1).reshape(N * h * w, context.shape[1])
        ctx.plan = plan
        ctx.save_for_backward(values, pixels)
        return _matrix(plan, values) @ pixels

    @staticmethod
    def backward(ctx, grad_cells: torch.Tensor):
        plan: LssPoolPlan = ctx.plan
        values, pixels = ctx.saved_tensors
        N, D, h, w = plan.depth_shape
        grad_cells = grad_cells.contiguous()
        grad_depth = grad_context = None
        if ctx.needs_input_grad[1]:
            grad_pixels = _transpose(plan, values) @ grad_cells
            grad_context = grad_pixels.view(N, h, w, -1).permute(0, 3, 1, 2)
        if ctx.needs_input_grad[0]:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)
                sampled = torch.sparse.sampled_addmm(_matrix(plan, values), grad_cells,
                                                     pixels.t(), beta=0.0)
            grad_depth = values.new_zeros(N * D * h * w)
            grad_depth[plan.source] = sampled.values()[plan.entry]
            grad_depth = grad_depth.view(N, D, h, w)
        return grad_depth, grad_context, None


def _matrix(plan: LssPoolPlan, values: torch.Tensor) -> torch.Tensor:
    B, (Z, H, W) = plan.batch_size, plan.grid_shape
    N, _, h, w = plan.depth_shape
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the product is not
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(plan.crow, plan.pixel, values,
                                       size=(B * Z * H * W, N * h * w))


def _transpose(plan: LssPoolPlan, values: torch.Tensor) -> torch.Tensor:
    """A^T as a CSR matrix (pixels x cells): a CSR product, where multiplying by ``A.t()``
    (CSC) would convert it on every call."""
    B, (Z, H, W) = plan.batch_size, plan.grid_shape
    N, _, h, w = plan.depth_shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(plan.t_crow, plan.t_cell, values[plan.t_entry],
                                       size=(N * h * w, B * Z * H * W))


def _four(shape: Sequence[int]) -> tuple:
    try:
        dims = tuple(shape)
    except TypeError:
        raise C.OpsError(f"depth_shape: expected (N, D, h, w), got {shape!r}") from None
    if len(dims) != 4:
        raise C.OpsError(f"depth_shape: expected (N, D, h, w), got {shape!r}")
    return dims
