"""lss_pool: the frustum sum without the frustum, against bev_pool's reference of the
explicit frustum, forward and backward; plan reuse; refusals."""

from __future__ import annotations

import pytest
import torch

from perception import ops
from perception.errors import OpsError
from perception.ops import reference as ref


def _case(seed: int, N: int = 3, D: int = 7, h: int = 5, w: int = 6, C: int = 8,
          B: int = 2, Z: int = 1, H: int = 9, W: int = 11, outside: float = 0.2,
          dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    n = N * D * h * w
    # few cells, so that several bins of one pixel (and several pixels) share a cell
    geo = torch.stack([torch.randint(0, size, (n,), generator=g) for size in (B, Z, H, W)], 1)
    bad = torch.rand(n, generator=g) < outside
    geo[bad, 2] = torch.where(torch.rand(int(bad.sum()), generator=g) < 0.5, -1, H)
    depth = torch.rand((N, D, h, w), generator=g, dtype=dtype).softmax(1)
    context = torch.randn((N, C, h, w), generator=g, dtype=dtype)
    return geo, depth, context, (B, Z, H, W)


def _explicit(geo, depth, context, B, Z, H, W):
    frustum = depth.unsqueeze(-1) * context.permute(0, 2, 3, 1).unsqueeze(1)
    return ref.bev_pool(frustum.reshape(-1, context.shape[1]), geo, B, (Z, H, W))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("Z", [1, 3])
def test_equals_the_explicit_frustum(seed, Z):
    geo, depth, context, (B, Z, H, W) = _case(seed, Z=Z)
    plan = ops.lss_pool_plan(geo, depth.shape, B, (Z, H, W))
    out = ops.lss_pool(depth, context, plan)
    assert out.shape == (B, context.shape[1], Z, H, W) and out.is_contiguous()
    torch.testing.assert_close(out, _explicit(geo, depth, context, B, Z, H, W),
                               rtol=1e-12, atol=1e-12)
    # bins of one pixel that land in one cell were merged into one matrix entry
    inside = int(((geo[:, 2] >= 0) & (geo[:, 2] < H)).sum())
    assert plan.num_entries < inside if Z == 1 else plan.num_entries <= inside


def test_plan_reused_for_new_depths_and_features():
    geo, depth, context, (B, Z, H, W) = _case(3, dtype=torch.float32)
    plan = ops.lss_pool_plan(geo, depth.shape, B, (H, W))
    for seed in range(3):
        g = torch.Generator().manual_seed(100 + seed)
        d = torch.rand(depth.shape, generator=g).softmax(1)
        c = torch.randn(context.shape, generator=g)
        torch.testing.assert_close(ops.lss_pool(d, c, plan), _explicit(geo, d, c, B, Z, H, W),
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", [0, 1])
def test_gradients_equal_autograd_through_the_explicit_frustum(seed):
    geo, depth, context, (B, Z, H, W) = _case(seed, Z=2)
    plan = ops.lss_pool_plan(geo, depth.shape, B, (Z, H, W))
    weight = torch.randn((B, context.shape[1], Z, H, W), dtype=depth.dtype,
                         generator=torch.Generator().manual_seed(50 + seed))
    grads = []
    for pool in (lambda d, c: ops.lss_pool(d, c, plan),
                 lambda d, c: _explicit(geo, d, c, B, Z, H, W)):
        d = depth.clone().requires_grad_()
        c = context.clone().requires_grad_()
        (pool(d, c) * weight).sum().backward()
        grads.append((d.grad, c.grad))
    (d_sparse, c_sparse), (d_dense, c_dense) = grads
    torch.testing.assert_close(d_sparse, d_dense, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c_sparse, c_dense, rtol=1e-12, atol=1e-12)
    # points outside the grid get no gradient
    outside = ((geo[:, 2] < 0) | (geo[:, 2] >= H)).view(depth.shape)
    assert bool(outside.any()) and d_sparse[outside].abs().sum() == 0
    assert d_sparse[~outside].abs().sum() > 0


def test_gradcheck_in_float64():
    geo, depth, context, (B, Z, H, W) = _case(7, N=2, D=4, h=3, w=4, C=3, H=5, W=6)
    plan = ops.lss_pool_plan(geo, depth.shape, B, (Z, H, W))
    assert torch.autograd.gradcheck(lambda d, c: ops.lss_pool(d, c, plan),
                                    (depth.requires_grad_(), context.requires_grad_()))


def test_gradient_only_where_asked():
    geo, depth, context, (B, Z, H, W) = _case(8)
    plan = ops.lss_pool_plan(geo, depth.shape, B, (Z, H, W))
    d = depth.clone().requires_grad_()
    ops.lss_pool(d, context, plan).sum().backward()
    assert d.grad is not None and context.grad is None
    with torch.no_grad():
        assert not ops.lss_pool(d, context, plan).requires_grad


def test_nothing_inside_gives_zeros():
    geo, depth, context, (B, Z, H, W) = _case(4)
    geo[:, 0] = B  # every point in a batch item that does not exist
    d = depth.clone().requires_grad_()
    out = ops.lss_pool(d, context, ops.lss_pool_plan(geo, depth.shape, B, (Z, H, W)))
    assert out.abs().sum() == 0
    out.sum().backward()
    assert d.grad.shape == depth.shape and d.grad.abs().sum() == 0


def test_refusals_name_the_argument():
    geo, depth, context, (B, Z, H, W) = _case(5)
    plan = ops.lss_pool_plan(geo, depth.shape, B, (Z, H, W))
    with pytest.raises(OpsError, match="geometry: .* rows"):
        ops.lss_pool_plan(geo[:-1], depth.shape, B, (Z, H, W))
    with pytest.raises(OpsError, match="depth_shape"):
        ops.lss_pool_plan(geo, depth.shape[:3], B, (Z, H, W))
    with pytest.raises(OpsError, match="depth: .* plan was built"):
        ops.lss_pool(depth[:, :-1], context, plan)
    with pytest.raises(OpsError, match="context: expected shape"):
        ops.lss_pool(depth, context[:, :, :-1], plan)
    with pytest.raises(OpsError, match="context: expected shape"):
        ops.lss_pool(depth, context.float(), plan)
    with pytest.raises(OpsError, match="depth: expected a floating dtype"):
        ops.lss_pool(depth.to(torch.int64), context, plan)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_equals_cpu():
    geo, depth, context, (B, Z, H, W) = _case(6, dtype=torch.float32)
    cpu = ops.lss_pool(depth, context, ops.lss_pool_plan(geo, depth.shape, B, (Z, H, W)))
    plan = ops.lss_pool_plan(geo.cuda(), depth.shape, B, (Z, H, W))
    torch.testing.assert_close(ops.lss_pool(depth.cuda(), context.cuda(), plan).cpu(), cpu,
                               rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_gradients_equal_cpu():
    geo, depth, context, (B, Z, H, W) = _case(9, dtype=torch.float32)
    weight = torch.randn((B, context.shape[1], Z, H, W))
    grads = []
    for device in ("cpu", "cuda"):
        d = depth.to(device).requires_grad_()
        c = context.to(device).requires_grad_()
        plan = ops.lss_pool_plan(geo.to(device), depth.shape, B, (Z, H, W))
        (ops.lss_pool(d, c, plan) * weight.to(device)).sum().backward()
        grads.append((d.grad.cpu(), c.grad.cpu()))
    for cpu, cuda in zip(*grads):
        torch.testing.assert_close(cuda, cpu, rtol=1e-4, atol=1e-5)
