"""Hard and dynamic voxelization: reference, peers (spconv, mmcv), edge cases, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from perception import ops
from perception.errors import OpsError
from perception.ops import _dispatch
from perception.ops import reference as ref

from ._helpers import (WAYMO_RANGE, WAYMO_VOXEL, compiled, lidar_points, mmcv_hard_voxelize,
                       num_threads, uniform_points, voxel_dict)

SMALL_RANGE = [-10.0, -10.0, -4.0, 10.0, 10.0, 4.0]
SMALL_VOXEL = [0.8, 0.8, 1.0]


def _case(n: int, seed: int, channels: int):
    """Inputs for n points: a lidar sweep for big n, a dense uniform cloud (many points per
    voxel, some outside the range) otherwise."""
    if n >= 100_000:
        return lidar_points(n, seed, channels), WAYMO_VOXEL, WAYMO_RANGE
    return uniform_points(n, seed, channels), SMALL_VOXEL, SMALL_RANGE


def _assert_same(a, b):
    for x, y, name in zip(a, b, ("voxels", "coords", "num_points")):
        assert x.dtype == y.dtype, name
        assert x.shape == y.shape, (name, x.shape, y.shape)
        assert torch.equal(x, y), name


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n", [0, 1, 1000, 150_000])
@pytest.mark.parametrize("channels", [3, 4, 7])
def test_hard_matches_reference(n, seed, channels):
    pts, vs, rng = _case(n, seed, channels)
    for max_points, max_voxels in ((5, 200_000), (3, 500)):
        out = ops.voxelize_hard(pts, vs, rng, max_points, max_voxels)
        _assert_same(out, ref.voxelize_hard(pts, vs, rng, max_points, max_voxels))
        voxels, coords, num = out
        assert voxels.dtype == torch.float32 and coords.dtype == torch.int32
        assert num.dtype == torch.int32
        assert voxels.shape[1:] == (max_points, channels)
        if voxels.shape[0]:
            assert int(num.min()) >= 1 and int(num.max()) <= max_points


@pytest.mark.parametrize("seed", [0, 3])
@pytest.mark.parametrize("n", [0, 1, 1000, 150_000])
@pytest.mark.parametrize("channels", [3, 5])
def test_dynamic_matches_reference(n, seed, channels):
    pts, vs, rng = _case(n, seed, channels)
    out = ops.voxelize_dynamic(pts, vs, rng)
    assert out.dtype == torch.int32 and out.shape == (n, 3)
    assert torch.equal(out, ref.voxelize_dynamic(pts, vs, rng))


def test_hard_and_dynamic_agree():
    pts = lidar_points(30_000, 4)
    dyn = ops.voxelize_dynamic(pts, WAYMO_VOXEL, WAYMO_RANGE)
    kept = dyn[(dyn >= 0).all(1)]
    most = int(torch.unique(kept, dim=0, return_counts=True)[1].max())
    voxels, coords, num = ops.voxelize_hard(pts, WAYMO_VOXEL, WAYMO_RANGE, most, None)
    assert set(map(tuple, kept.tolist())) == set(map(tuple, coords.tolist()))
    assert int(num.sum()) == kept.shape[0]


def test_first_come_order_and_truncation():
    # Voxels met in the order A, B, A, C, A, B with max_voxels=2, max_points=2.
    A, B, Cc = [0.5, 0.5, 0.5], [1.5, 0.5, 0.5], [0.5, 2.5, 0.5]
    seq = [A, B, A, Cc, A, B]
    pts = torch.tensor([p + [float(i)] for i, p in enumerate(seq)], dtype=torch.float32)
    voxels, coords, num = ops.voxelize_hard(pts, [1, 1, 1], [0, 0, 0, 4, 4, 4], 2, 2)
    assert coords.tolist() == [[0, 0, 0], [0, 0, 1]]       # (z, y, x) of A then B; C dropped
    assert num.tolist() == [2, 2]                            # A keeps its first 2 of 3 points
    assert voxels[0, :, 3].tolist() == [0.0, 2.0]            # input order inside the voxel
    assert voxels[1, :, 3].tolist() == [1.0, 5.0]            # B's later point still counts
    _assert_same((voxels, coords, num), ref.voxelize_hard(pts, [1, 1, 1], [0, 0, 0, 4, 4, 4], 2, 2))


def test_truncation_by_max_voxels_keeps_first_voxels():
    pts = lidar_points(60_000, 5)
    full = ops.voxelize_hard(pts, WAYMO_VOXEL, WAYMO_RANGE, 4, None)
    cut = ops.voxelize_hard(pts, WAYMO_VOXEL, WAYMO_RANGE, 4, 1000)
    assert cut[0].shape[0] == 1000
    # The first voxels are the same; a voxel's points do not depend on later voxels.
    for x, y in zip(full, cut):
        assert torch.equal(x[:1000], y)
    assert ops.voxelize_hard(pts, WAYMO_VOXEL, WAYMO_RANGE, 4, 0)[0].shape == (0, 4, 4)


def test_truncation_by_max_points_zero_pads():
    pts = torch.zeros((7, 4), dtype=torch.float32)
    pts[:, 3] = torch.arange(7, dtype=torch.float32)
    pts[:, :3] = 0.25
    voxels, coords, num = ops.voxelize_hard(pts, [1, 1, 1], [0, 0, 0, 1, 1, 1], 3, 10)
    assert num.tolist() == [3] and coords.tolist() == [[0, 0, 0]]
    assert voxels[0, :, 3].tolist() == [0.0, 1.0, 2.0]
    voxels, _, num = ops.voxelize_hard(pts[:2], [1, 1, 1], [0, 0, 0, 1, 1, 1], 5, 10)
    assert num.tolist() == [2]
    assert torch.equal(voxels[0, 2:], torch.zeros((3, 4)))   # unused slots are zero


def test_duplicated_points():
    p = torch.tensor([[1.2, -3.4, 0.5, 0.7]], dtype=torch.float32).repeat(12, 1)
    voxels, coords, num = ops.voxelize_hard(p, SMALL_VOXEL, SMALL_RANGE, 5, 100)
    assert voxels.shape == (1, 5, 4) and num.tolist() == [5]
    assert torch.equal(voxels[0], p[:5])
    dyn = ops.voxelize_dynamic(p, SMALL_VOXEL, SMALL_RANGE)
    assert (dyn == dyn[0]).all()


def test_empty_and_all_outside():
    empty = torch.zeros((0, 4), dtype=torch.float32)
    voxels, coords, num = ops.voxelize_hard(empty, SMALL_VOXEL, SMALL_RANGE, 5, 100)
    assert voxels.shape == (0, 5, 4) and coords.shape == (0, 3) and num.shape == (0,)
    assert ops.voxelize_dynamic(empty, SMALL_VOXEL, SMALL_RANGE).shape == (0, 3)
    outside = uniform_points(500, 0, 4, lo=20.0, hi=30.0)
    voxels, coords, num = ops.voxelize_hard(outside, SMALL_VOXEL, SMALL_RANGE, 5, 100)
    assert voxels.shape == (0, 5, 4)
    assert (ops.voxelize_dynamic(outside, SMALL_VOXEL, SMALL_RANGE) == -1).all()


def test_range_bounds_lower_inclusive_upper_exclusive():
    below = float(np.nextafter(np.float32(4.0), np.float32(0.0)))
    pts = torch.tensor([
        [0.0, 0.0, 0.0, 0],        # exactly at the lower corner: kept, voxel (0, 0, 0)
        [4.0, 1.0, 1.0, 1],        # x exactly at the upper bound: dropped
        [1.0, 4.0, 1.0, 2],        # y at the upper bound: dropped
        [1.0, 1.0, 4.0, 3],        # z at the upper bound: dropped
        [below, below, below, 4],  # just inside the upper corner: kept, last voxel
        [-1e-6, 1.0, 1.0, 5],      # just below the lower bound: dropped
        [2.0, 2.0, 2.0, 6],        # on an inner voxel boundary: the upper voxel
    ], dtype=torch.float32)
    dyn = ops.voxelize_dynamic(pts, [1, 1, 1], [0, 0, 0, 4, 4, 4])
    assert dyn.tolist() == [[0, 0, 0], [-1] * 3, [-1] * 3, [-1] * 3, [3, 3, 3], [-1] * 3,
                            [2, 2, 2]]
    voxels, coords, num = ops.voxelize_hard(pts, [1, 1, 1], [0, 0, 0, 4, 4, 4], 2, 10)
    assert coords.tolist() == [[0, 0, 0], [3, 3, 3], [2, 2, 2]]
    assert voxels[:, 0, 3].tolist() == [0.0, 4.0, 6.0]


def test_non_finite_coordinates_are_dropped():
    pts = uniform_points(200, 1, 4, lo=-3.9, hi=3.9)  # all inside SMALL_RANGE
    pts[3, 0] = float("nan")
    pts[7, 2] = float("inf")
    pts[9, 1] = float("-inf")
    pts[11, 3] = float("nan")                     # a NaN feature is copied, not a reason to drop
    dyn = ops.voxelize_dynamic(pts, SMALL_VOXEL, SMALL_RANGE)
    assert (dyn[[3, 7, 9]] == -1).all() and (dyn[11] >= 0).all()
    out = ops.voxelize_hard(pts, SMALL_VOXEL, SMALL_RANGE, 200, 1000)
    assert int(out[2].sum()) == 197
    assert torch.isnan(out[0][..., 3]).sum() == 1
    ref_out = ref.voxelize_hard(pts, SMALL_VOXEL, SMALL_RANGE, 200, 1000)
    assert torch.equal(out[1], ref_out[1]) and torch.equal(out[2], ref_out[2])
    assert torch.allclose(out[0], ref_out[0], equal_nan=True)


def test_grid_rounding_matches_mmcv_convention():
    # 1.5 / 1.0 rounds half away from zero to 2 voxels (not to the even 2 by luck: 2.5 -> 3).
    g = ops._checks.voxel_grid([1.0, 1.0, 1.0], [0, 0, 0, 2.5, 1.5, 0.5])
    assert g.grid == (3, 2, 1)


def test_deterministic_and_thread_independent():
    pts = lidar_points(150_000, 6)
    outs = []
    for n in (1, 2, 1, 2):
        with num_threads(n):
            outs.append(ops.voxelize_hard(pts, WAYMO_VOXEL, WAYMO_RANGE, 3, 30_000))
            outs.append(ops.voxelize_hard(pts, WAYMO_VOXEL, WAYMO_RANGE, 5, None))
            outs.append(ops.voxelize_dynamic(pts, WAYMO_VOXEL, WAYMO_RANGE))
    for k in range(3, len(outs)):
        a, b = outs[k % 3], outs[k]
        if isinstance(a, tuple):
            _assert_same(a, b)
        else:
            assert torch.equal(a, b)


def test_equals_spconv_point_to_voxel():
    utils = pytest.importorskip("spconv.pytorch.utils")
    cases = [(lidar_points(150_000, 7), WAYMO_VOXEL, WAYMO_RANGE, 5),
             (uniform_points(20_000, 8, 4), SMALL_VOXEL, SMALL_RANGE, 8)]
    for pts, vs, rng, max_points in cases:
        max_voxels = 200_000
        gen = utils.PointToVoxel(vsize_xyz=vs, coors_range_xyz=rng, num_point_features=4,
                                 max_num_voxels=max_voxels, max_num_points_per_voxel=max_points)
        with num_threads(1):
            peer = gen(pts)
        ours = ops.voxelize_hard(pts, vs, rng, max_points, max_voxels)
        assert ours[0].shape[0] == peer[0].shape[0] > 0
        assert voxel_dict(*ours) == voxel_dict(*peer)


def test_equals_mmcv_deterministic(mmcv):
    for pts, vs, rng, P, M in [(lidar_points(150_000, 9), WAYMO_VOXEL, WAYMO_RANGE, 5, 150_000),
                               (lidar_points(150_000, 9), WAYMO_VOXEL, WAYMO_RANGE, 3, 20_000),
                               (uniform_points(5000, 10, 5), SMALL_VOXEL, SMALL_RANGE, 4, 300)]:
        _assert_same(ops.voxelize_hard(pts, vs, rng, P, M),
                     mmcv_hard_voxelize(mmcv, pts, vs, rng, P, M))


def test_batched_forms():
    a, b = uniform_points(3000, 11, 4), uniform_points(2000, 12, 4)
    voxels, coords, num = ops.voxelize_hard_batch([a, b], SMALL_VOXEL, SMALL_RANGE, 4, 50)
    va, ca, na = ops.voxelize_hard(a, SMALL_VOXEL, SMALL_RANGE, 4, 50)
    vb, cb, nb = ops.voxelize_hard(b, SMALL_VOXEL, SMALL_RANGE, 4, 50)
    assert coords.shape[1] == 4 and coords.dtype == torch.int32
    assert torch.equal(coords[:, 0], torch.tensor([0] * len(ca) + [1] * len(cb),
                                                  dtype=torch.int32))
    assert torch.equal(coords[:, 1:], torch.cat([ca, cb]))
    assert torch.equal(voxels, torch.cat([va, vb])) and torch.equal(num, torch.cat([na, nb]))
    dyn = ops.voxelize_dynamic_batch([a, b], SMALL_VOXEL, SMALL_RANGE)
    assert dyn.shape == (5000, 4)
    inside = (dyn[:, 1:] >= 0).all(1)
    assert (dyn[inside, 0] == torch.tensor([0] * 3000 + [1] * 2000)[inside]).all()
    assert (dyn[~inside] == -1).all()


def test_numpy_non_contiguous_and_float64_inputs():
    pts = uniform_points(4000, 13, 4)
    expect = ops.voxelize_hard(pts, SMALL_VOXEL, SMALL_RANGE, 5, 1000)
    _assert_same(ops.voxelize_hard(pts.numpy(), SMALL_VOXEL, SMALL_RANGE, 5, 1000), expect)
    strided = torch.zeros((4000, 8), dtype=torch.float32)
    strided[:, ::2] = pts
    _assert_same(ops.voxelize_hard(strided[:, ::2], SMALL_VOXEL, SMALL_RANGE, 5, 1000), expect)
    _assert_same(ops.voxelize_hard(pts.t().contiguous().t(), SMALL_VOXEL, SMALL_RANGE, 5, 1000),
                 expect)
    _assert_same(ops.voxelize_hard(pts.double().numpy(), np.array(SMALL_VOXEL),
                                   torch.tensor(SMALL_RANGE), 5, 1000), expect)


def test_reference_fallback_without_extension(monkeypatch):
    pts = uniform_points(3000, 14, 4)
    expect = ops.voxelize_hard(pts, SMALL_VOXEL, SMALL_RANGE, 5, 100)
    monkeypatch.setattr(_dispatch._ext, "load_extension", lambda: None)
    assert not _dispatch.compiled(torch.device("cpu"))
    _assert_same(ops.voxelize_hard(pts, SMALL_VOXEL, SMALL_RANGE, 5, 100), expect)


@pytest.mark.skipif(not compiled(), reason="extension not built")
def test_compiled_kernel_is_used():
    assert _dispatch.compiled(torch.device("cpu"))
    assert ops.extension_status()["compiled"] is True


@pytest.mark.parametrize("kwargs, match", [
    (dict(points=torch.zeros((5, 4), dtype=torch.int64)),
     r"points: expected a floating dtype.*int64"),
    (dict(points=torch.zeros((5, 2))), r"points: expected shape \(N, C>=3\).*\(5, 2\)"),
    (dict(points=torch.zeros(12)), r"points: expected shape .*\(12,\)"),
    (dict(points=[[0.0, 0.0, 0.0]]), r"points: expected a torch.Tensor or numpy.ndarray, got list"),
    (dict(voxel_size=[0.1, 0.0, 0.1]), r"voxel_size: every value must be > 0.*0\.0"),
    (dict(voxel_size=[0.1, -0.1, 0.1]), r"voxel_size: every value must be > 0"),
    (dict(voxel_size=[0.1, 0.1]), r"voxel_size: expected 3 numbers, got shape \(2,\)"),
    (dict(voxel_size=[0.1, float("nan"), 0.1]), r"voxel_size: values must be finite"),
    (dict(point_range=[-1, -1, -1, 1, -2, 1]), r"point_range: inverted or empty on axis y"),
    (dict(point_range=[0, 0, 0, 0, 1, 1]), r"point_range: inverted or empty on axis x"),
    (dict(point_range=[0, 0, float("inf"), 1, 1, 1]), r"point_range: values must be finite"),
    (dict(voxel_size=[1e-9, 1e-9, 1e-9]),
     r"voxel_size: grid \[.*\] \(x, y, z\) too large for int32"),
    (dict(voxel_size=[50.0, 0.1, 0.1]), r"voxel_size: .* larger than the point_range extent"),
    (dict(max_points=0), r"max_points: expected an integer in \[1, .*got 0"),
    (dict(max_points=2.5), r"max_points: expected an integer >= 1, got 2.5"),
    (dict(max_voxels=-1), r"max_voxels: expected an integer in \[0, .*got -1"),
])
def test_bad_arguments(kwargs, match):
    args = dict(points=uniform_points(10, 0, 4), voxel_size=SMALL_VOXEL, point_range=SMALL_RANGE,
                max_points=5, max_voxels=10)
    args.update(kwargs)
    with pytest.raises(OpsError, match=match) as info:
        ops.voxelize_hard(**args)
    assert isinstance(info.value, ValueError)
    if "max_" not in next(iter(kwargs)):
        with pytest.raises(ValueError, match=match):
            ops.voxelize_dynamic(args["points"], args["voxel_size"], args["point_range"])
