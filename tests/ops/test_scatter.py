"""scatter_reduce (mean / max / sum per voxel): reference, gradients, edge cases, threads."""

from __future__ import annotations

import pytest
import torch

from perception import ops
from perception.errors import OpsError
from perception.ops import reference as ref

from ._helpers import WAYMO_RANGE, WAYMO_VOXEL, lidar_points, num_threads, uniform_points

REDUCES = ["mean", "max", "sum"]


def _coords(n: int, seed: int, dims: int = 3, extent: int = 6, invalid: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    c = torch.randint(0, extent, (n, dims), generator=g, dtype=torch.int32)
    drop = torch.rand(n, generator=g) < invalid
    c[drop] = -1
    return c


def _check(out, expect, atol=1e-5):
    (f, c, i), (rf, rc, ri) = out, expect
    assert torch.equal(c, rc) and c.dtype == rc.dtype
    assert torch.equal(i, ri) and i.dtype == torch.int64
    assert f.shape == rf.shape and f.dtype == rf.dtype
    torch.testing.assert_close(f, rf, atol=atol, rtol=1e-5)


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("n", [0, 1, 1000, 150_000])
@pytest.mark.parametrize("channels", [1, 4, 9])
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_reference(reduce, n, channels, seed):
    g = torch.Generator().manual_seed(100 + seed)
    feats = torch.randn((n, channels), generator=g)
    coords = _coords(n, seed, extent=40 if n > 10_000 else 6)
    _check(ops.scatter_reduce(feats, coords, reduce), ref.scatter_reduce(feats, coords, reduce))


@pytest.mark.parametrize("reduce", REDUCES)
def test_on_dynamic_voxels_with_batch_column(reduce):
    pts = [lidar_points(20_000, 1), lidar_points(15_000, 2)]
    coords = ops.voxelize_dynamic_batch(pts, WAYMO_VOXEL, WAYMO_RANGE)
    feats = torch.cat(pts)
    out = ops.scatter_reduce(feats, coords, reduce)
    _check(out, ref.scatter_reduce(feats, coords, reduce))
    f, c, inv = out
    assert c.shape[1] == 4 and c.dtype == torch.int32
    inside = inv >= 0
    assert torch.equal(c[inv[inside]], coords[inside])           # inverse maps back
    assert (inv[~inside] == -1).all()
    keys = ((c[:, 0].long() * 1000 + c[:, 1]) * 2000 + c[:, 2]) * 2000 + c[:, 3]
    assert (keys[1:] > keys[:-1]).all()                           # sorted, unique


def test_known_values_and_ties():
    feats = torch.tensor([[1.0, 5.0], [3.0, 5.0], [2.0, -1.0], [7.0, 0.0]], requires_grad=True)
    coords = torch.tensor([[0, 1], [0, 1], [2, 0], [-1, 4]], dtype=torch.int32)
    f, c, inv = ops.scatter_reduce(feats, coords, "mean")
    assert c.tolist() == [[0, 1], [2, 0]] and inv.tolist() == [0, 0, 1, -1]
    assert f.tolist() == [[2.0, 5.0], [2.0, -1.0]]
    f, _, _ = ops.scatter_reduce(feats, coords, "max")
    assert f.tolist() == [[3.0, 5.0], [2.0, -1.0]]
    (g,) = torch.autograd.grad(f.sum(), feats)
    # The tie in channel 1 (5.0 twice) sends the gradient to the first point.
    assert g.tolist() == [[0.0, 1.0], [1.0, 0.0], [1.0, 1.0], [0.0, 0.0]]
    f, _, _ = ops.scatter_reduce(feats, coords, "sum")
    assert f.tolist() == [[4.0, 10.0], [2.0, -1.0]]


@pytest.mark.parametrize("reduce", REDUCES)
@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_gradcheck_float64(reduce, dtype):
    g = torch.Generator().manual_seed(7)
    feats = torch.randn((60, 3), generator=g, dtype=torch.float64, requires_grad=True)
    coords = _coords(60, 7, extent=4).to(dtype)
    assert torch.autograd.gradcheck(lambda x: ops.scatter_reduce(x, coords, reduce)[0], (feats,))
    out = ops.scatter_reduce(feats, coords, reduce)[0]
    expect = ref.scatter_reduce(feats, coords, reduce)[0]
    w = torch.randn(out.shape, generator=g, dtype=torch.float64)
    (ga,) = torch.autograd.grad((out * w).sum(), feats)
    (gb,) = torch.autograd.grad((expect * w).sum(), feats)
    torch.testing.assert_close(ga, gb)


def test_all_rows_invalid_and_empty():
    feats = torch.randn((5, 2), requires_grad=True)
    coords = torch.full((5, 3), -1, dtype=torch.int32)
    for reduce in REDUCES:
        f, c, inv = ops.scatter_reduce(feats, coords, reduce)
        assert f.shape == (0, 2) and c.shape == (0, 3) and (inv == -1).all()
        (g,) = torch.autograd.grad(f.sum(), feats, allow_unused=True)
        assert g is None or (g == 0).all()
    f, c, inv = ops.scatter_reduce(torch.zeros((0, 3)), torch.zeros((0, 4), dtype=torch.int64))
    assert f.shape == (0, 3) and c.shape == (0, 4) and inv.shape == (0,)


def test_thread_independent():
    feats = torch.randn((150_000, 5), generator=torch.Generator().manual_seed(3))
    coords = _coords(150_000, 3, extent=50)
    outs = []
    for n in (1, 2, 2):
        with num_threads(n):
            outs.append(ops.scatter_reduce(feats, coords, "mean"))
    for o in outs[1:]:
        for a, b in zip(outs[0], o):
            assert torch.equal(a, b)


def test_numpy_inputs():
    feats = uniform_points(100, 0, 3)
    coords = _coords(100, 0)
    a = ops.scatter_reduce(feats.numpy(), coords.numpy(), "sum")
    b = ops.scatter_reduce(feats, coords, "sum")
    for x, y in zip(a, b):
        assert torch.equal(x, y)


@pytest.mark.parametrize("features, coords, reduce, match", [
    (torch.zeros((4, 2)), torch.zeros((4, 3), dtype=torch.int32), "median",
     r"reduce: expected 'mean', 'max' or 'sum', got 'median'"),
    (torch.zeros((4, 2), dtype=torch.int32), torch.zeros((4, 3), dtype=torch.int32), "mean",
     r"features: expected a floating dtype .*int32"),
    (torch.zeros((4, 2), dtype=torch.float16), torch.zeros((4, 3), dtype=torch.int32), "mean",
     r"features: expected a floating dtype \(float32, float64\), got .*float16"),
    (torch.zeros((4, 2)), torch.zeros((4, 3)), "mean", r"coords: expected an integer dtype"),
    (torch.zeros((4, 2)), torch.zeros((5, 3), dtype=torch.int32), "mean",
     r"coords: 5 rows, but features has 4"),
    (torch.zeros(4), torch.zeros((4, 3), dtype=torch.int32), "mean",
     r"features: expected shape \(N, C\), got shape \(4,\)"),
    (torch.zeros((4, 2)), torch.zeros(4, dtype=torch.int32), "mean",
     r"coords: expected shape \(N, D\), got shape \(4,\)"),
    (torch.zeros((2, 2)), torch.tensor([[2**40, 2**40], [1, 1]]), "mean",
     r"coords: extents .* too many cells"),
])
def test_bad_arguments(features, coords, reduce, match):
    with pytest.raises(OpsError, match=match):
        ops.scatter_reduce(features, coords, reduce)
