"""Fuzzing the Python entry points of the custom ops (:mod:`perception.ops`).

Target ``ops``: every public op called with hostile tensors and arguments: wrong shapes and
ranks, empty inputs, every dtype (bool, integers, half, complex), NaN, infinities and huge
values, non-contiguous views, tensors on the ``meta`` device (a wrong device that exists on
every machine), and out-of-range sizes, thresholds and grids. The contract: a result, or an
:class:`~perception.errors.OpsError` (any PerceptionError); never an untyped error from the
C++ extension or torch, a crash, or an allocation past the memory cap.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from perception import ops
from perception.errors import OpsError

from ._fuzz import contract, fuzz_settings, memory_cap, seeded
from ._strategies import hostile_floats, hostile_ints

DTYPES = (torch.float32, torch.float32, torch.float64, torch.float16, torch.int32,
          torch.int64, torch.uint8, torch.bool, torch.complex64)


@st.composite
def tensors(draw, shape=None, dtype=None, cols=None):
    """A tensor: usually of ``shape`` (``cols`` columns) and ``dtype``, sometimes not."""
    if shape is None or draw(st.integers(0, 5)) == 0:
        ndim = draw(st.integers(0, 3))
        shape = tuple(draw(st.integers(0, 6)) for _ in range(ndim))
        if cols is not None and ndim == 2 and draw(st.booleans()):
            shape = (shape[0], cols)
    dtype = dtype if dtype is not None and draw(st.integers(0, 4)) else draw(
        st.sampled_from(DTYPES))
    fill = draw(st.sampled_from(["uniform", "nan", "inf", "huge", "zero", "negative"]))
    t = torch.rand(shape, dtype=torch.float64) * 20 - 10
    if fill == "nan" and t.numel():
        t.view(-1)[draw(st.integers(0, t.numel() - 1))] = math.nan
    elif fill == "inf" and t.numel():
        t.view(-1)[draw(st.integers(0, t.numel() - 1))] = -math.inf
    elif fill == "huge":
        t = t * 1e30
    elif fill == "zero":
        t = torch.zeros(shape, dtype=torch.float64)
    elif fill == "negative":
        t = -t.abs() * 1e6
    if dtype.is_floating_point or dtype.is_complex:
        t = t.to(dtype)
    else:
        t = torch.nan_to_num(t, 0.0, 1e6, -1e6).clamp(-1e6, 1e6).to(torch.int64).to(dtype)
    layout = draw(st.sampled_from(["contiguous", "contiguous", "transposed", "strided",
                                   "meta"]))
    if layout == "transposed" and t.dim() == 2:
        t = t.t().contiguous().t()
    elif layout == "strided" and t.dim() >= 1:
        t = torch.repeat_interleave(t, 2, dim=0)[::2]
    elif layout == "meta":
        t = t.to("meta")
    return t


def _size3():
    return st.one_of(st.just([0.5, 0.5, 4.0]), st.lists(hostile_floats(), min_size=2,
                                                           max_size=4))


def _range6():
    return st.one_of(st.just([-20.0, -20.0, -3.0, 20.0, 20.0, 1.0]),
                     st.lists(hostile_floats(), min_size=5, max_size=7))


def _count():
    return st.one_of(st.integers(1, 50), hostile_ints())


@st.composite
def op_calls(draw):
    name = draw(st.sampled_from(["voxelize_hard", "voxelize_dynamic", "voxelize_hard_batch",
                                 "scatter_reduce", "bev_pool", "boxes_iou_bev",
                                 "boxes_iou_3d", "nms_bev", "circle_nms"]))
    n = draw(st.integers(0, 40))
    if name == "voxelize_hard":
        return name, (draw(tensors((n, 4), torch.float32, 4)), draw(_size3()), draw(_range6()),
                      draw(_count()), draw(st.one_of(st.none(), _count())))
    if name == "voxelize_hard_batch":
        return name, ([draw(tensors((n, 4), torch.float32, 4)) for _ in range(2)],
                      draw(_size3()), draw(_range6()), draw(_count()), draw(_count()))
    if name == "voxelize_dynamic":
        return name, (draw(tensors((n, 4), torch.float32, 4)), draw(_size3()), draw(_range6()))
    if name == "scatter_reduce":
        coords = draw(tensors((n, 3), torch.int32, 3))
        return name, (draw(tensors((n, 5), torch.float32, 5)), coords,
                      draw(st.sampled_from(["mean", "max", "sum", "min", ""])))
    if name == "bev_pool":
        grid = draw(st.one_of(st.just([1, 8, 8]), st.lists(
            st.one_of(st.integers(-2, 16), hostile_ints()), min_size=2, max_size=4)))
        geometry = draw(tensors((n, 4), torch.int32, 4))
        return name, (draw(tensors((n, 3), torch.float32, 3)), geometry,
                      draw(st.one_of(st.integers(1, 3), hostile_ints())), grid)
    boxes = draw(tensors((n, 7), torch.float32, 7))
    if name in ("boxes_iou_bev", "boxes_iou_3d"):
        return name, (boxes, draw(tensors((draw(st.integers(0, 10)), 7), torch.float32, 7)))
    scores = draw(tensors((n,), torch.float32))
    labels = draw(st.one_of(st.none(), tensors((n,), torch.int64)))
    if name == "nms_bev":
        return name, (boxes, scores, draw(hostile_floats()), labels)
    centers = draw(tensors((n, 2), torch.float32, 2))
    return name, (centers, scores, draw(hostile_floats()), labels)


@seeded
@fuzz_settings()
@given(call=op_calls())
def test_fuzz_ops(call):
    name, args = call
    contract("ops", getattr(ops, name), *args)


# Crashing inputs found by the target above, fixed in the ops: a meta tensor is refused by
# name, outputs sized by an argument are bounded.

_POINT = torch.tensor([[0.5, 0.5, 0.5, 1.0]])
_VOXEL, _RANGE = [0.5, 0.5, 4.0], [-20.0, -20.0, -3.0, 20.0, 20.0, 1.0]


def test_meta_device_boxes_are_an_ops_error():
    with pytest.raises(OpsError):
        ops.boxes_iou_bev(torch.zeros((2, 7), device="meta"), torch.zeros((1, 7)))


def test_meta_device_points_are_an_ops_error():
    with pytest.raises(OpsError):
        ops.voxelize_hard(_POINT.to("meta"), _VOXEL, _RANGE, 4, 8)


def test_bev_pool_grid_too_large_is_an_ops_error():
    with memory_cap(), pytest.raises(OpsError):
        ops.bev_pool(torch.ones((1, 3)), torch.zeros((1, 4), dtype=torch.int32), 1,
                     [1, 2**15, 2**15])


def test_voxelize_hard_buffer_too_large_is_an_ops_error():
    with memory_cap(), pytest.raises(OpsError, match="max_points"):
        ops.voxelize_hard(_POINT, _VOXEL, _RANGE, 2**31 - 1, 1)
    voxels, _, counts = ops.voxelize_hard(_POINT, _VOXEL, _RANGE, 32, 1)
    assert voxels.shape == (1, 32, 4) and int(counts[0]) == 1
