"""Custom ops (C++ on the CPU, CUDA on the GPU) behind one Python function each.

Every function takes tensors (NumPy arrays are converted), dispatches on the device of its
input to the compiled kernel, and falls back to the pure-PyTorch reference in
:mod:`perception.ops.reference` when the extension is not built (warned once;
``perception info`` says which backend is in use). Bad arguments raise
:class:`~perception.errors.OpsError`, a ``ValueError`` naming the argument. See docs/ops.md.
"""

from . import reference
from ._ext import extension_status, load_extension
from .bev_pool import CUDA_CHUNK, BevPoolPlan, bev_pool, bev_pool_plan, chunk_levels
from .boxes import boxes_iou_3d, boxes_iou_bev, circle_nms, nms_bev
from .lss_pool import LssPoolPlan, lss_pool, lss_pool_plan
from .voxelize import (
                       scatter_reduce,
                       voxelize_dynamic,
                       voxelize_dynamic_batch,
                       voxelize_hard,
                       voxelize_hard_batch,
)

__all__ = [
    "CUDA_CHUNK",
    "BevPoolPlan",
    "LssPoolPlan",
    "bev_pool",
    "bev_pool_plan",
    "boxes_iou_3d",
    "boxes_iou_bev",
    "chunk_levels",
    "circle_nms",
    "extension_status",
    "load_extension",
    "lss_pool",
    "lss_pool_plan",
    "nms_bev",
    "reference",
    "scatter_reduce",
    "voxelize_dynamic",
    "voxelize_dynamic_batch",
    "voxelize_hard",
    "voxelize_hard_batch",
]
