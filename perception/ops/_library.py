"""The compiled kernels as torch operators: ``torch.ops.perception.<name>``.

Each op is registered with :mod:`torch.library` (a schema, a CPU kernel, a CUDA kernel where
the extension has one, a fake implementation giving output shapes and dtypes, and the autograd
formula where there is a gradient), so ``torch.compile``, ``torch.export`` and the ONNX
exporter see one node per call instead of an opaque Python function. The public functions of
:mod:`perception.ops` check their arguments and call these; without the compiled extension
they run the PyTorch references instead and never reach these ops.

Schemas (all tensors contiguous; see the public functions for shapes):

=========================================  ===================================================
``hard_voxelize(points, voxel_size, range_lo, grid, max_points, max_voxels)``
                                           ``-> (voxels, coords, num_points)``
``dynamic_voxelize(points, voxel_size, range_lo, grid)``  ``-> coords``
``scatter_reduce(features, coords, reduce)``
                                           ``-> (out, voxel_coords, inverse, counts, argmax)``
``bev_pool_plan(geometry, batch, depth, height, width)``
                                           ``-> (order, starts, lengths, ranks, dropped,
                                           point_rank)``
``bev_pool_forward(features, order, starts, lengths, ranks, point_rank, levels, batch, depth,
height, width)``                           ``-> (B, C, Z, H, W)``
``bev_pool_backward(grad_out, order, starts, lengths, ranks, point_rank, num_points)``
                                           ``-> (N, C)``
``boxes_iou(a, b, mode)``                  ``-> (N, M)``
``nms_bev(boxes, scores, labels, iou_threshold)``, ``circle_nms(centers, scores, labels,
distance)``                                ``-> kept indices``
=========================================  ===================================================

CUDA kernels receive the current stream of the input's device (``cuda_stream`` as an
integer), so the compiled wrappers need no ``c10::cuda`` header.
"""

from __future__ import annotations

from types import ModuleType

import torch
from torch import Tensor

from . import _ext

NAMESPACE = "perception"


def _C() -> ModuleType:
    ext = _ext.load_extension()
    if ext is None:  # the public functions check first; this guards direct calls
        raise RuntimeError("perception._C is not built: torch.ops.perception.* need it")
    return ext


def _stream(device: torch.device) -> int:
    return int(torch.cuda.current_stream(device).cuda_stream)


def has_kernel(device: torch.device) -> bool:
    """True when the compiled extension has kernels for ``device`` (CPU, or CUDA when built
    with CUDA)."""
    ext = _ext.load_extension()
    if ext is None:
        return False
    if device.type == "cpu":
        return True
    return device.type == "cuda" and hasattr(ext, "hard_voxelize_cuda")


def _dynamic(n_min: int = 0):
    return torch.library.get_ctx().new_dynamic_size(min=n_min)


# ---- voxelization ------------------------------------------------------------------------------

@torch.library.custom_op(f"{NAMESPACE}::hard_voxelize", mutates_args=(), device_types="cpu")
def hard_voxelize(points: Tensor, voxel_size: list[float], range_lo: list[float],
                  grid: list[int], max_points: int, max_voxels: int
                  ) -> tuple[Tensor, Tensor, Tensor]:
    return tuple(_C().hard_voxelize_cpu(points, voxel_size, range_lo, grid, max_points,
                                        max_voxels))


@hard_voxelize.register_kernel("cuda")
def _hard_voxelize_cuda(points, voxel_size, range_lo, grid, max_points, max_voxels):
    with torch.cuda.device(points.device):
        return tuple(_C().hard_voxelize_cuda(points, voxel_size, range_lo, grid, max_points,
                                             max_voxels, _stream(points.device)))


@hard_voxelize.register_fake
def _(points, voxel_size, range_lo, grid, max_points, max_voxels):
    m = _dynamic()
    return (points.new_empty((m, max_points, points.shape[1])),
            points.new_empty((m, 3), dtype=torch.int32), points.new_empty((m,), dtype=torch.int32))


@torch.library.custom_op(f"{NAMESPACE}::dynamic_voxelize", mutates_args=(), device_types="cpu")
def dynamic_voxelize(points: Tensor, voxel_size: list[float], range_lo: list[float],
                     grid: list[int]) -> Tensor:
    return _C().dynamic_voxelize_cpu(points, voxel_size, range_lo, grid)


@dynamic_voxelize.register_kernel("cuda")
def _dynamic_voxelize_cuda(points, voxel_size, range_lo, grid):
    with torch.cuda.device(points.device):
        return _C().dynamic_voxelize_cuda(points, voxel_size, range_lo, grid,
                                          _stream(points.device))


@dynamic_voxelize.register_fake
def _(points, voxel_size, range_lo, grid):
    return points.new_empty((points.shape[0], 3), dtype=torch.int32)


# ---- per-voxel reductions ----------------------------------------------------------------------

@torch.library.custom_op(f"{NAMESPACE}::scatter_reduce", mutates_args=(), device_types="cpu")
def scatter_reduce(features: Tensor, coords: Tensor, reduce: int
                   ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    return tuple(_C().scatter_reduce_cpu(features, coords, reduce))


@scatter_reduce.register_kernel("cuda")
def _scatter_reduce_cuda(features, coords, reduce):
    with torch.cuda.device(features.device):
        return tuple(_C().scatter_reduce_cuda(features, coords, reduce,
                                              _stream(features.device)))


@scatter_reduce.register_fake
def _(features, coords, reduce):
    m = _dynamic()
    long = dict(dtype=torch.int64)
    argmax = features.new_empty((m, features.shape[1]) if reduce == 2 else (0,), **long)
    return (features.new_empty((m, features.shape[1])), coords.new_empty((m, coords.shape[1])),
            features.new_empty((features.shape[0],), **long), features.new_empty((m,), **long),
            argmax)


def _scatter_setup(ctx, inputs, output):
    features, _, reduce = inputs
    _, _, inverse, counts, argmax = output
    ctx.reduce = reduce
    ctx.num_points = features.shape[0]
    ctx.save_for_backward(inverse, counts, argmax)


def _scatter_backward(ctx, grad_out, _g_coords, _g_inverse, _g_counts, _g_argmax):
    inverse, counts, argmax = ctx.saved_tensors
    grad_out = grad_out.contiguous()
    n, ch = ctx.num_points, grad_out.shape[1]
    if ctx.reduce == 2:  # max: to the first point holding the maximum
        grad = grad_out.new_zeros((n, ch))
        if argmax.numel():
            grad.scatter_(0, argmax, grad_out)
        return grad, None, None
    if grad_out.shape[0] == 0:
        return grad_out.new_zeros((n, ch)), None, None
    valid = inverse >= 0
    grad = grad_out.index_select(0, inverse.clamp(min=0))
    if ctx.reduce == 1:  # mean
        grad = grad / counts.index_select(0, inverse.clamp(min=0)).to(grad.dtype)[:, None]
    return grad * valid[:, None].to(grad.dtype), None, None


scatter_reduce.register_autograd(_scatter_backward, setup_context=_scatter_setup)


# ---- bev_pool ----------------------------------------------------------------------------------

@torch.library.custom_op(f"{NAMESPACE}::bev_pool_plan", mutates_args=(), device_types="cpu")
def bev_pool_plan(geometry: Tensor, batch: int, depth: int, height: int, width: int
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    return tuple(_C().bev_pool_plan_cpu(geometry, batch, depth, height, width))


@bev_pool_plan.register_fake
def _(geometry, batch, depth, height, width):
    k, i = _dynamic(), _dynamic()
    d = _dynamic()
    long = dict(dtype=torch.int64)
    return (geometry.new_empty((k,), **long), geometry.new_empty((i,), **long),
            geometry.new_empty((i,), **long), geometry.new_empty((i,), **long),
            geometry.new_empty((d,), **long), geometry.new_empty((geometry.shape[0],), **long))


@torch.library.custom_op(f"{NAMESPACE}::bev_pool_forward", mutates_args=(), device_types="cpu")
def bev_pool_forward(features: Tensor, order: Tensor, starts: Tensor, lengths: Tensor,
                     ranks: Tensor, point_rank: Tensor, levels: list[Tensor], batch: int,
                     depth: int, height: int, width: int) -> Tensor:
    return _C().bev_pool_forward_cpu(features, order, starts, lengths, ranks, point_rank, batch,
                                     depth, height, width)


@bev_pool_forward.register_kernel("cuda")
def _bev_pool_forward_cuda(features, order, starts, lengths, ranks, point_rank, levels, batch,
                           depth, height, width):
    with torch.cuda.device(features.device):
        return _C().bev_pool_forward_cuda(features, order, ranks, list(levels), batch, depth,
                                          height, width, _stream(features.device))


@bev_pool_forward.register_fake
def _(features, order, starts, lengths, ranks, point_rank, levels, batch, depth, height, width):
    return features.new_empty((batch, features.shape[1], depth, height, width))


@torch.library.custom_op(f"{NAMESPACE}::bev_pool_backward", mutates_args=(), device_types="cpu")
def bev_pool_backward(grad_out: Tensor, order: Tensor, starts: Tensor, lengths: Tensor,
                      ranks: Tensor, point_rank: Tensor, num_points: int) -> Tensor:
    return _C().bev_pool_backward_cpu(grad_out, order, starts, lengths, ranks, point_rank,
                                      num_points)


@bev_pool_backward.register_kernel("cuda")
def _bev_pool_backward_cuda(grad_out, order, starts, lengths, ranks, point_rank, num_points):
    with torch.cuda.device(grad_out.device):
        return _C().bev_pool_backward_cuda(grad_out, point_rank, _stream(grad_out.device))


@bev_pool_backward.register_fake
def _(grad_out, order, starts, lengths, ranks, point_rank, num_points):
    return grad_out.new_empty((num_points, grad_out.shape[1]))


def _bev_pool_setup(ctx, inputs, output):
    _, order, starts, lengths, ranks, point_rank, levels, *_ = inputs
    ctx.num_levels = len(levels)
    ctx.save_for_backward(order, starts, lengths, ranks, point_rank)


def _bev_pool_grad(ctx, grad_out):
    order, starts, lengths, ranks, point_rank = ctx.saved_tensors
    grad = bev_pool_backward(grad_out.contiguous(), order, starts, lengths, ranks, point_rank,
                             point_rank.shape[0])
    # One entry per input; the list input (levels) takes a list of Nones.
    return (grad, None, None, None, None, None, [None] * ctx.num_levels, None, None, None, None)


bev_pool_forward.register_autograd(_bev_pool_grad, setup_context=_bev_pool_setup)


# ---- boxes -------------------------------------------------------------------------------------

@torch.library.custom_op(f"{NAMESPACE}::boxes_iou", mutates_args=(), device_types="cpu")
def boxes_iou(a: Tensor, b: Tensor, mode: int) -> Tensor:
    return _C().boxes_iou_cpu(a, b, mode)


@boxes_iou.register_kernel("cuda")
def _boxes_iou_cuda(a, b, mode):
    with torch.cuda.device(a.device):
        return _C().boxes_iou_cuda(a, b, mode, _stream(a.device))


@boxes_iou.register_fake
def _(a, b, mode):
    return a.new_empty((a.shape[0], b.shape[0]))


@torch.library.custom_op(f"{NAMESPACE}::nms_bev", mutates_args=(), device_types="cpu")
def nms_bev(boxes: Tensor, scores: Tensor, labels: Tensor, iou_threshold: float) -> Tensor:
    return _C().nms_bev_cpu(boxes, scores, labels, iou_threshold)


@nms_bev.register_kernel("cuda")
def _nms_bev_cuda(boxes, scores, labels, iou_threshold):
    with torch.cuda.device(boxes.device):
        return _C().nms_bev_cuda(boxes, scores, labels, iou_threshold, _stream(boxes.device))


@nms_bev.register_fake
def _(boxes, scores, labels, iou_threshold):
    return boxes.new_empty((_dynamic(),), dtype=torch.int64)


@torch.library.custom_op(f"{NAMESPACE}::circle_nms", mutates_args=(), device_types="cpu")
def circle_nms(centers: Tensor, scores: Tensor, labels: Tensor, distance: float) -> Tensor:
    return _C().circle_nms_cpu(centers, scores, labels, distance)


@circle_nms.register_kernel("cuda")
def _circle_nms_cuda(centers, scores, labels, distance):
    with torch.cuda.device(centers.device):
        return _C().circle_nms_cuda(centers, scores, labels, distance, _stream(centers.device))


@circle_nms.register_fake
def _(centers, scores, labels, distance):
    return centers.new_empty((_dynamic(),), dtype=torch.int64)


OPS = (hard_voxelize, dynamic_voxelize, scatter_reduce, bev_pool_plan, bev_pool_forward,
       bev_pool_backward, boxes_iou, nms_bev, circle_nms)
"""Every registered op (``torch.library`` custom ops)."""
