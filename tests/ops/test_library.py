"""The ops as torch operators (``torch.ops.perception.*``, registered with torch.library):
schema, fake (meta) implementations and autograd pass ``torch.library.opcheck``, and
``torch.export`` / ``torch.compile`` see one node per op call."""

from __future__ import annotations

import pytest
import torch

from perception import ops
from perception.ops import _library

from ._helpers import compiled, random_boxes, uniform_points

pytestmark = pytest.mark.skipif(not compiled(), reason="extension not built")

VS, RANGE = [0.5, 0.5, 0.5], [-4.0, -4.0, -4.0, 4.0, 4.0, 4.0]


def _geometry(n: int = 400):
    g = torch.Generator().manual_seed(3)
    geo = torch.randint(-1, 6, (n, 4), generator=g)
    geo[:, 0] = geo[:, 0].clamp(0, 1)
    geo[:, 1] = 0
    return geo


def _cases():
    pts = uniform_points(500, 0, 4, lo=-5, hi=5)
    coords = ops.voxelize_dynamic(pts, VS, RANGE)
    feats = torch.randn((500, 3), dtype=torch.float64, requires_grad=True)
    geo = _geometry(500)
    plan = ops.bev_pool_plan(geo, 2, (6, 6))
    boxes, scores = random_boxes(40, 0, spread=5), torch.rand(40)
    labels = torch.randint(0, 3, (40,))
    grid = [16, 16, 16]
    return {
        "hard_voxelize": (pts, VS, RANGE[:3], grid, 4, 100),
        "dynamic_voxelize": (pts, VS, RANGE[:3], grid),
        "scatter_reduce": (feats, coords, 2),
        "bev_pool_plan": (geo, 2, 1, 6, 6),
        "bev_pool_forward": (feats, plan.order, plan.starts, plan.lengths, plan.ranks,
                             plan.point_rank, [], 2, 1, 6, 6),
        "bev_pool_backward": (torch.randn((2, 3, 1, 6, 6), dtype=torch.float64), plan.order,
                              plan.starts, plan.lengths, plan.ranks, plan.point_rank, 500),
        "boxes_iou": (boxes, boxes, 0),
        "nms_bev": (boxes, scores, labels, 0.2),
        "circle_nms": (boxes[:, :2].contiguous(), scores, labels, 1.0),
    }


@pytest.mark.parametrize("name", [op._name for op in _library.OPS])
def test_opcheck(name):
    op = getattr(torch.ops.perception, name).default
    args = _cases()[name]
    # Data-dependent output sizes (voxels, intervals, kept boxes) cannot be traced with
    # dynamic shapes by AOT dispatch; the schema, fake and autograd checks still run.
    dynamic_out = name in ("hard_voxelize", "scatter_reduce", "bev_pool_plan", "nms_bev",
                           "circle_nms")
    tests = ("test_schema", "test_autograd_registration", "test_faketensor")
    if not dynamic_out:
        tests += ("test_aot_dispatch_dynamic",)
    torch.library.opcheck(op, args, test_utils=tests)


def test_every_public_op_goes_through_the_registered_operators():
    names = {op._qualname for op in _library.OPS}
    assert names == {f"perception::{n}" for n in (
        "hard_voxelize", "dynamic_voxelize", "scatter_reduce", "bev_pool_plan",
        "bev_pool_forward", "bev_pool_backward", "boxes_iou", "nms_bev", "circle_nms")}


class _Pool(torch.nn.Module):
    def __init__(self, plan):
        super().__init__()
        self.plan = plan
        for k in ("order", "starts", "lengths", "ranks", "point_rank"):
            self.register_buffer(k, getattr(plan, k))

    def forward(self, feats):
        Z, H, W = self.plan.grid_shape
        out = torch.ops.perception.bev_pool_forward(feats, self.order, self.starts, self.lengths,
                                                    self.ranks, self.point_rank, [], 2, Z, H, W)
        return out.relu().sum(1)


def test_export_and_compile_see_the_op():
    geo = _geometry()
    plan = ops.bev_pool_plan(geo, 2, (6, 6))
    module = _Pool(plan)
    feats = torch.randn((geo.shape[0], 8))
    exported = torch.export.export(module, (feats,))
    targets = [str(n.target) for n in exported.graph.nodes if n.op == "call_function"]
    assert "perception.bev_pool_forward.default" in targets
    torch.testing.assert_close(exported.module()(feats), module(feats))
    compiled_fn = torch.compile(module, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled_fn(feats), module(feats))
    x = feats.clone().requires_grad_()
    (g,) = torch.autograd.grad(compiled_fn(x).sum(), x)
    y = feats.clone().requires_grad_()
    (g_ref,) = torch.autograd.grad(module(y).sum(), y)
    torch.testing.assert_close(g, g_ref)
