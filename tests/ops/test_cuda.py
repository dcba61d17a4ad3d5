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


def _skewed_geometry(n: int, H: int, W: int, seed: int = 0) -> torch.Tensor:
    # Dense near the centre as camera frustums are: intervals of thousands of points.
    g = torch.Generator().manual_seed(seed)
    r = torch.rand(n, generator=g) ** 4 * 0.6 * H
    a = torch.rand(n, generator=g) * 6.2832
    geo = torch.zeros((n, 4), dtype=torch.int64)
    geo[:, 0] = torch.randint(0, 2, (n,), generator=g)
    geo[:, 2] = (H / 2 + r * torch.sin(a)).floor().long()
    geo[:, 3] = (W / 2 + r * torch.cos(a)).floor().long()
    return geo


@pytest.mark.parametrize("channels", [1, 3, 64, 80])
def test_bev_pool_skewed_intervals_multi_level(channels):
    geo = _skewed_geometry(300_000, 60, 50)
    feats = torch.randn((300_000, channels))
    plan = ops.bev_pool_plan(geo.to(DEV), 2, (60, 50))
    assert len(plan.levels) >= 6  # at least three levels of chunk sums
    assert int(plan.lengths.max()) > 32 ** 2
    cpu = ops.bev_pool(feats, geo, 2, (60, 50))
    gpu = ops.bev_pool(feats.to(DEV), None, 2, (60, 50), plan=plan)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=2e-3, rtol=1e-5)
    again = ops.bev_pool(feats.to(DEV), None, 2, (60, 50), plan=plan)
    assert torch.equal(gpu, again)  # no atomics: bit-identical on every run
    # A CPU plan moved to the GPU gets its chunk tables; so does one built without them.
    moved = ops.bev_pool_plan(geo, 2, (60, 50)).to(DEV)
    assert torch.equal(ops.bev_pool(feats.to(DEV), None, 2, (60, 50), plan=moved), gpu)
    # float16 (partial rows in float32) and float64.
    half = ops.bev_pool(feats.to(DEV, torch.float16), None, 2, (60, 50), plan=plan)
    torch.testing.assert_close(half.float().cpu(), cpu, atol=0.25, rtol=2e-2)
    dbl = ops.bev_pool(feats.double().to(DEV), None, 2, (60, 50), plan=plan)
    torch.testing.assert_close(dbl.cpu(), ops.bev_pool(feats.double(), geo, 2, (60, 50)))
    # Backward: each point gets its cell's gradient, dropped points zero (CPU bit-exact).
    grad = torch.randn_like(cpu)
    x = feats.to(DEV).requires_grad_()
    (g,) = torch.autograd.grad(ops.bev_pool(x, None, 2, (60, 50), plan=plan), x, grad.to(DEV))
    y = feats.clone().requires_grad_()
    (g_cpu,) = torch.autograd.grad(ops.bev_pool(y, geo, 2, (60, 50)), y, grad)
    assert torch.equal(g.cpu(), g_cpu)


def test_bev_pool_unaligned_and_odd_widths():
    # Views at odd offsets take the scalar path instead of float4 rows.
    geo = _skewed_geometry(20_000, 30, 30, seed=1)
    base = torch.randn((20_000 * 5 + 1,))
    feats = base[1:].view(20_000, 5)
    cpu = ops.bev_pool(feats, geo, 2, (30, 30))
    gpu = ops.bev_pool(feats.to(DEV), geo.to(DEV), 2, (30, 30))
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-4, rtol=1e-5)
    geo[:] = -1  # nothing inside
    assert not ops.bev_pool(feats.to(DEV), geo.to(DEV), 2, (30, 30)).any()


def test_registered_ops_on_cuda():
    from perception.ops import _library

    pts = uniform_points(2000, 0, 4).to(DEV)
    voxels, coords, num = torch.ops.perception.hard_voxelize(pts, [0.8, 0.8, 1.0],
                                                             [-10.0, -10.0, -4.0], [25, 25, 8],
                                                             5, 1000)
    assert voxels.is_cuda and coords.dtype == torch.int32
    geo = _skewed_geometry(5000, 20, 20).to(DEV)
    plan = ops.bev_pool_plan(geo, 2, (20, 20))
    feats = torch.randn((5000, 8), device=DEV, dtype=torch.float64)
    torch.library.opcheck(_library.bev_pool_forward, (feats, plan.order, plan.starts,
                                                      plan.lengths, plan.ranks, plan.point_rank,
                                                      list(plan.levels), 2, 1, 20, 20),
                          test_utils=("test_schema", "test_autograd_registration",
                                      "test_faketensor"))


def test_detector_on_cuda_matches_cpu():
    # The decode, NMS and collation paths on the device (batched top-K, device-side resize).
    from perception.models.batch import collate_frames
    from perception.models.checkpoint import read_detector
    from perception.models.shipped import shipped_weights_path

    frames = _carried_frames()
    model = read_detector(shipped_weights_path()).model
    cpu = model.predict(frames[:1])
    gpu = model.to(DEV).predict(frames[:1])
    assert len(cpu[0]) == len(gpu[0]) > 0
    assert (cpu[0].labels == gpu[0].labels).all()
    torch.testing.assert_close(torch.from_numpy(gpu[0].boxes), torch.from_numpy(cpu[0].boxes),
                               atol=2e-3, rtol=1e-4)
    a = collate_frames(frames[:1], model.spec)
    b = collate_frames(frames[:1], model.spec, device=DEV)
    torch.testing.assert_close(b.images.cpu(), a.images, atol=1e-5, rtol=1e-5)


def _carried_frames():
    import os
    from pathlib import Path

    from perception.data.frame_npz import load_frame_npz

    root = Path(os.environ.get("GPU_CHECK_FRAMES", Path(__file__).resolve().parents[2]
                               / "outputs" / "gpu_frames"))
    files = sorted(root.glob("nuscenes_like_*.npz"))
    if not files:
        pytest.skip(f"no carried frames under {root} (python -m benchmarks.gpu_check prepare)")
    return [load_frame_npz(p) for p in files]
