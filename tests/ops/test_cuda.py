"""CUDA kernels against the CPU implementation (runs only where torch has CUDA and the
extension was built with it; elsewhere test_cuda_compile.py checks that the code compiles)."""

from __future__ import annotations

import pytest
import torch

from perception import ops
from perception.ops import reference as ref

from ._helpers import WAYMO_RANGE, WAYMO_VOXEL, lidar_points, random_boxes, uniform_points

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() or not ops.extension_status().get("cuda"),
    reason="needs a CUDA device and the extension built with CUDA")

DEV = torch.device("cuda")


def _same(a, b):
    for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
        assert x.device.type == "cuda"
        torch.testing.assert_close(x.cpu(), y, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("n", [0, 1, 1000, 150_000])
def test_voxelize(n):
    pts = lidar_points(n, 1) if n >= 100_000 else uniform_points(n, 1, 4)
    vs, rng = (WAYMO_VOXEL, WAYMO_RANGE) if n >= 100_000 else ([0.8, 0.8, 1.0],
                                                                 [-10, -10, -4, 10, 10, 4])
    for P, M in ((5, 200_000), (3, 500)):
        cpu = ops.voxelize_hard(pts, vs, rng, P, M)
        gpu = ops.voxelize_hard(pts.to(DEV), vs, rng, P, M)
        for x, y in zip(gpu, cpu):
            assert torch.equal(x.cpu(), y)
    assert torch.equal(ops.voxelize_dynamic(pts.to(DEV), vs, rng).cpu(),
                       ops.voxelize_dynamic(pts, vs, rng))


@pytest.mark.parametrize("reduce", ["mean", "max", "sum"])
def test_scatter_reduce_and_grad(reduce):
    feats = torch.randn((20_000, 6), dtype=torch.float64)
    coords = torch.randint(-1, 30, (20_000, 3), dtype=torch.int32)
    cpu = ops.scatter_reduce(feats, coords, reduce)
    gpu = ops.scatter_reduce(feats.to(DEV), coords.to(DEV), reduce)
    _same(gpu, cpu)
    x = feats[:200].to(DEV).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: ops.scatter_reduce(t, coords[:200].to(DEV),
                                                                 reduce)[0], (x,))
    half = ops.scatter_reduce(feats.to(DEV, torch.float16), coords.to(DEV), reduce)[0]
    torch.testing.assert_close(half.float().cpu(), cpu[0].float(), atol=2e-2, rtol=1e-2)


def test_bev_pool_float32_float16_and_grad():
    geo = torch.randint(-2, 60, (100_000, 4), dtype=torch.int32)
    geo[:, 0] = geo[:, 0] % 2
    geo[:, 1] = 0
    feats = torch.randn((100_000, 16))
    cpu = ops.bev_pool(feats, geo, 2, (58, 58))
    gpu = ops.bev_pool(feats.to(DEV), geo.to(DEV), 2, (58, 58))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-5)
    half = ops.bev_pool(feats.to(DEV, torch.float16), geo.to(DEV), 2, (58, 58))
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float().cpu(), cpu, atol=5e-2, rtol=1e-2)
    x = torch.randn((300, 3), dtype=torch.float64, device=DEV, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: ops.bev_pool(t, geo[:300].to(DEV), 2, (58, 58)),
                                    (x,))


def test_boxes():
    a, b = random_boxes(500, 1, spread=10), random_boxes(400, 2, spread=10)
    _same(ops.boxes_iou_bev(a.to(DEV), b.to(DEV)), ops.boxes_iou_bev(a, b))
    _same(ops.boxes_iou_3d(a.to(DEV), b.to(DEV)), ops.boxes_iou_3d(a, b))
    scores = torch.rand(500)
    labels = torch.randint(0, 3, (500,))
    for lab in (None, labels):
        keep = ops.nms_bev(a.to(DEV), scores.to(DEV), 0.2,
                           labels=None if lab is None else lab.to(DEV))
        assert torch.equal(keep.cpu(), ops.nms_bev(a, scores, 0.2, labels=lab))
        keep = ops.circle_nms(a.to(DEV), scores.to(DEV), 1.5,
                              labels=None if lab is None else lab.to(DEV))
        assert torch.equal(keep.cpu(), ref.circle_nms(a, scores, 1.5, lab))
