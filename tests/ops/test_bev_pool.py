"""bev_pool: reference, gradients, plan reuse, dropped points, both sort paths, threads."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from perception import ops
from perception.errors import OpsError
from perception.ops import _dispatch
from perception.ops import reference as ref

from ._helpers import num_threads


def _geometry(n: int, seed: int, B: int, Z: int, H: int, W: int, outside: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    geo = torch.stack([torch.randint(0, B, (n,), generator=g),
                       torch.randint(0, Z, (n,), generator=g),
                       torch.randint(0, H, (n,), generator=g),
                       torch.randint(0, W, (n,), generator=g)], dim=1)
    bad = torch.rand(n, generator=g) < outside
    col = torch.randint(0, 4, (n,), generator=g)
    shift = torch.tensor([B, Z, H, W])[col]
    geo[bad, col[bad]] = torch.where(torch.rand(int(bad.sum()), generator=g) < 0.5,
                                     -1 - geo[bad, col[bad]], shift[bad] + geo[bad, col[bad]])
    return geo.to(torch.int32)


@pytest.mark.parametrize("n", [0, 1, 1000, 150_000])
@pytest.mark.parametrize("channels", [1, 8, 80])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_reference(n, channels, seed):
    B, Z, H, W = 2, 1, 60, 50
    geo = _geometry(n, seed, B, Z, H, W)
    feats = torch.randn((n, channels), generator=torch.Generator().manual_seed(seed))
    out = ops.bev_pool(feats, geo, B, (H, W))
    assert out.shape == (B, channels, Z, H, W) and out.dtype == torch.float32
    torch.testing.assert_close(out, ref.bev_pool(feats, geo, B, (H, W)), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("grid", [(3, 20, 30), (1, 700, 900)])
def test_sort_paths_3d_grid(grid):
    # (1, 700, 900) x B=2 has far more cells than points: the comparison-sort path.
    B = 2
    geo = _geometry(5000, 3, B, *grid).to(torch.int64)
    feats = torch.randn((5000, 6), dtype=torch.float64)
    out = ops.bev_pool(feats, geo, B, grid)
    torch.testing.assert_close(out, ref.bev_pool(feats, geo, B, grid))
    plan = ops.bev_pool_plan(geo, B, grid)
    srt = geo[plan.order].long()
    rank = ((srt[:, 0] * grid[0] + srt[:, 1]) * grid[1] + srt[:, 2]) * grid[2] + srt[:, 3]
    assert (rank[1:] >= rank[:-1]).all()
    same = rank[1:] == rank[:-1]
    assert (plan.order[1:][same] > plan.order[:-1][same]).all()   # stable
    assert int(plan.lengths.sum()) + plan.dropped.numel() == 5000


def test_gradcheck_float64():
    geo = _geometry(80, 5, 2, 2, 4, 5, outside=0.2)
    feats = torch.randn((80, 3), dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: ops.bev_pool(x, geo, 2, (2, 4, 5)), (feats,))
    plan = ops.bev_pool_plan(geo, 2, (2, 4, 5))
    assert torch.autograd.gradcheck(lambda x: ops.bev_pool(x, None, 2, (2, 4, 5), plan=plan),
                                    (feats,))


def test_backward_matches_reference_and_dropped_points_get_zero():
    B, H, W = 2, 30, 40
    geo = _geometry(20_000, 6, B, 1, H, W, outside=0.2)
    feats = torch.randn((20_000, 16), requires_grad=True)
    out = ops.bev_pool(feats, geo, B, (H, W))
    w = torch.randn_like(out)
    (g,) = torch.autograd.grad((out * w).sum(), feats)
    (gr,) = torch.autograd.grad((ref.bev_pool(feats, geo, B, (H, W)) * w).sum(), feats)
    torch.testing.assert_close(g, gr)
    plan = ops.bev_pool_plan(geo, B, (H, W))
    assert plan.dropped.numel() > 0 and (g[plan.dropped] == 0).all()


def test_plan_reuse():
    B, H, W = 1, 25, 25
    geo = _geometry(3000, 7, B, 1, H, W)
    plan = ops.bev_pool_plan(geo, B, (H, W))
    for seed in range(3):
        feats = torch.randn((3000, 4), generator=torch.Generator().manual_seed(seed))
        a = ops.bev_pool(feats, geo, B, (H, W), plan=plan)
        b = ops.bev_pool(feats, None, B, (H, W), plan=plan)
        c = ops.bev_pool(feats, geo, B, (H, W))
        assert torch.equal(a, b) and torch.equal(a, c)
    with pytest.raises(OpsError, match=r"plan: built for batch 1 and grid \(1, 25, 25\)"):
        ops.bev_pool(torch.zeros((3000, 4)), None, 1, (25, 26), plan=plan)
    with pytest.raises(OpsError, match=r"plan: built for 3000 points, but features has 10 rows"):
        ops.bev_pool(torch.zeros((10, 4)), None, 1, (25, 25), plan=plan)


def test_all_outside_and_empty():
    geo = torch.tensor([[0, 0, 5, 0], [1, 0, 0, 0], [0, 0, -1, 2]], dtype=torch.int32)
    feats = torch.ones((3, 2), requires_grad=True)
    out = ops.bev_pool(feats, geo, 1, (5, 5))
    assert out.shape == (1, 2, 1, 5, 5) and (out == 0).all()
    (g,) = torch.autograd.grad(out.sum(), feats)
    assert (g == 0).all()
    out = ops.bev_pool(torch.zeros((0, 3)), torch.zeros((0, 4), dtype=torch.int64), 2, (1, 4, 4))
    assert out.shape == (2, 3, 1, 4, 4)


def test_thread_independent():
    geo = _geometry(200_000, 8, 1, 1, 180, 180)
    feats = torch.randn((200_000, 8), generator=torch.Generator().manual_seed(8),
                        requires_grad=True)
    results = []
    for n in (1, 2, 2):
        with num_threads(n):
            out = ops.bev_pool(feats, geo, 1, (180, 180))
            (g,) = torch.autograd.grad((out * out).sum(), feats)
            results.append((out, g, ops.bev_pool_plan(geo, 1, (180, 180)).order))
    for r in results[1:]:
        for a, b in zip(results[0], r):
            assert torch.equal(a, b)


def test_reference_fallback(monkeypatch):
    geo = _geometry(2000, 9, 2, 1, 10, 10)
    feats = torch.randn((2000, 3), dtype=torch.float64, requires_grad=True)
    expect = ops.bev_pool(feats, geo, 2, (10, 10))
    monkeypatch.setattr(_dispatch._ext, "load_extension", lambda: None)
    plan = ops.bev_pool_plan(geo, 2, (10, 10))
    out = ops.bev_pool(feats, geo, 2, (10, 10), plan=plan)
    torch.testing.assert_close(out, expect)
    small = feats[:50].detach().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: ops.bev_pool(x, geo[:50], 2, (10, 10)), (small,))


@pytest.mark.parametrize("features, geometry, batch, grid, match", [
    (torch.zeros((4, 2), dtype=torch.int32), torch.zeros((4, 4), dtype=torch.int32), 1, (2, 2),
     r"features: expected a floating dtype"),
    (torch.zeros((4, 2), dtype=torch.float16), torch.zeros((4, 4), dtype=torch.int32), 1, (2, 2),
     r"features: expected a floating dtype \(float32, float64\), got .*float16"),
    (torch.zeros((4, 2)), torch.zeros((4, 3), dtype=torch.int32), 1, (2, 2),
     r"geometry: expected shape \(N, 4\) as \(b, z, y, x\), got shape \(4, 3\)"),
    (torch.zeros((4, 2)), torch.zeros((4, 4)), 1, (2, 2), r"geometry: expected an integer dtype"),
    (torch.zeros((4, 2)), torch.zeros((5, 4), dtype=torch.int32), 1, (2, 2),
     r"geometry: 5 rows, but features has 4"),
    (torch.zeros((4, 2)), torch.zeros((4, 4), dtype=torch.int32), 0, (2, 2),
     r"batch_size: expected an integer in \[1, "),
    (torch.zeros((4, 2)), torch.zeros((4, 4), dtype=torch.int32), 1, (2, 0),
     r"grid_shape\[2\]: expected an integer in \[1, "),
    (torch.zeros((4, 2)), torch.zeros((4, 4), dtype=torch.int32), 1, (2, 2, 2, 2),
     r"grid_shape: expected \(Z, H, W\) or \(H, W\)"),
    (torch.zeros((4, 2)), None, 1, (2, 2), r"geometry: None, and no plan was given"),
])
def test_bad_arguments(features, geometry, batch, grid, match):
    with pytest.raises(OpsError, match=match):
        ops.bev_pool(features, geometry, batch, grid)


def _emulate_cuda_levels(features: torch.Tensor, plan) -> torch.Tensor:
    """The CUDA forward's algorithm in plain torch: chunk sums level by level over the plan's
    chunk tables, the last level written to the cells."""
    B, (Z, H, W), C = plan.batch_size, plan.grid_shape, features.shape[1]
    levels = plan.levels
    src = features
    for lv in range(len(levels) // 2):
        start, length = levels[2 * lv], levels[2 * lv + 1]
        assert int(length.min()) >= 1 and int(length.max()) <= ops.CUDA_CHUNK
        chunk = torch.repeat_interleave(torch.arange(start.numel()), length)
        offset = torch.arange(int(length.sum())) - (torch.cumsum(length, 0) - length)[chunk]
        pos = start[chunk] + offset
        rows = src[plan.order[pos]] if lv == 0 else src[pos]
        src = torch.zeros((start.numel(), C), dtype=features.dtype).index_add_(0, chunk, rows)
    out = torch.zeros((B * Z * H * W, C), dtype=features.dtype)
    if levels:
        assert levels[-2].numel() == plan.ranks.numel()
        out[plan.ranks] = src
    return out.view(B, Z * H * W, C).permute(0, 2, 1).reshape(B, C, Z, H, W)


@pytest.mark.parametrize("case", ["uniform", "skewed", "one_cell", "empty"])
def test_cuda_chunk_levels_cover_every_point_once(case):
    # The chunk tables the CUDA kernels run on (built here on the CPU): every sorted point is
    # summed exactly once into its own interval, however long the interval.
    g = torch.Generator().manual_seed(7)
    n, B, H, W = 50_000, 2, 40, 30
    geo = torch.zeros((n, 4), dtype=torch.int64)
    geo[:, 0] = torch.randint(0, B, (n,), generator=g)
    if case == "uniform":
        geo[:, 2] = torch.randint(0, H, (n,), generator=g)
        geo[:, 3] = torch.randint(0, W, (n,), generator=g)
    elif case == "skewed":  # dense near the centre, as camera frustums are: intervals of 1e4
        r = torch.rand(n, generator=g) ** 6 * 25
        a = torch.rand(n, generator=g) * 6.283
        geo[:, 2] = (H / 2 + r * torch.sin(a)).floor().long()
        geo[:, 3] = (W / 2 + r * torch.cos(a)).floor().long()
    elif case == "one_cell":
        geo[:, 2:] = 5
    elif case == "empty":
        geo[:, 2] = -1
    feats = torch.randn((n, 5), dtype=torch.float64, generator=g)
    plan = ops.bev_pool_plan(geo, B, (H, W))
    plan = dataclasses.replace(plan, levels=ops.chunk_levels(plan.starts, plan.lengths))
    if case == "one_cell":  # two intervals of ~25k points: 32^2 < 25k < 32^3, three levels
        assert len(plan.levels) // 2 == 3
    torch.testing.assert_close(_emulate_cuda_levels(feats, plan),
                               ops.bev_pool(feats, geo, B, (H, W)))


def test_chunk_levels_shapes():
    starts = torch.tensor([0, 1, 40, 105])
    lengths = torch.tensor([1, 39, 65, 1000])
    levels = ops.chunk_levels(starts, lengths, chunk=32)
    # level 0: 1 + 2 + 3 + 32 chunks; level 1: 32 partial rows of the last interval -> 1 chunk
    assert [t.tolist() for t in levels[:2]] == [
        [0, 1, 33, 40, 72, 104] + [105 + 32 * i for i in range(32)],
        [1, 32, 7, 32, 32, 1] + [32] * 31 + [8]]
    assert [t.tolist() for t in levels[2:]] == [[0, 1, 3, 6], [1, 2, 3, 32]]
    assert ops.chunk_levels(starts[:0], lengths[:0]) == ()
