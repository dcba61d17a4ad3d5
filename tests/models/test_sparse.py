"""The spconv layers (with the project's CPU workarounds) against a dense ``conv3d``,
forward and backward, with several threads (the scatter-add race needs > 1)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

spconv = pytest.importorskip("spconv.pytorch")

from perception.models.config import GridConfig, LidarConfig  # noqa: E402
from perception.models.sparse import SparseLidarEncoder, install_spconv_cpu_workarounds  # noqa: E402


def _random_sparse(shape, n, channels, gen):
    flat = torch.randperm(shape[0] * shape[1] * shape[2], generator=gen)[:n]
    z = flat // (shape[1] * shape[2])
    y = (flat // shape[2]) % shape[1]
    x = flat % shape[2]
    coords = torch.stack([torch.zeros_like(z), z, y, x], 1).int()
    feats = torch.randn(n, channels, generator=gen, dtype=torch.float64)
    return feats, coords


def _dense(feats, coords, shape):
    dense = torch.zeros((1, feats.shape[1]) + tuple(shape), dtype=feats.dtype)
    c = coords.long()
    dense[0, :, c[:, 1], c[:, 2], c[:, 3]] = feats.T
    return dense


def _dense_weight(conv):
    # spconv 2.x stores (out, kz, ky, kx, in); conv3d wants (out, in, kz, ky, kx).
    return conv.weight.permute(0, 4, 1, 2, 3)


@pytest.mark.parametrize("kind", ["subm", "strided"])
def test_sparse_conv_matches_dense_conv3d(kind):
    install_spconv_cpu_workarounds()
    threads = torch.get_num_threads()
    torch.set_num_threads(max(2, threads))
    try:
        gen = torch.Generator().manual_seed(1)
        shape = (6, 9, 11)
        for trial in range(5):
            feats, coords = _random_sparse(shape, 120, 4, gen)
            feats.requires_grad_(True)
            if kind == "subm":
                conv = spconv.SubMConv3d(4, 5, 3, padding=1, bias=False, indice_key="k")
            else:
                conv = spconv.SparseConv3d(4, 5, 3, stride=2, padding=1, bias=False)
            conv = conv.double()
            x = spconv.SparseConvTensor(feats, coords, list(shape), 1)
            y = conv(x)
            dense_in = _dense(feats, coords, shape)
            ref = F.conv3d(dense_in, _dense_weight(conv), stride=conv.stride,
                           padding=conv.padding)
            oc = y.indices.long()
            ref_at = ref[0, :, oc[:, 1], oc[:, 2], oc[:, 3]].T
            assert torch.allclose(y.features, ref_at, atol=1e-10), trial
            if kind == "strided":  # every non-zero dense output is an active sparse site
                active = torch.zeros(ref.shape[2:], dtype=torch.bool)
                active[oc[:, 1], oc[:, 2], oc[:, 3]] = True
                assert ref[0][:, ~active].abs().max() < 1e-12
            # Backward: same upstream gradient through both.
            g = torch.randn(y.features.shape, generator=gen, dtype=torch.float64)
            gx, gw = torch.autograd.grad(y.features, (feats, conv.weight), g)
            ref_gx, ref_gw = torch.autograd.grad(ref_at, (feats, conv.weight), g)
            assert torch.allclose(gx, ref_gx, atol=1e-10), trial
            assert torch.allclose(gw, ref_gw, atol=1e-10), trial
    finally:
        torch.set_num_threads(threads)


def test_sparse_encoder_shape_and_backward():
    grid = GridConfig(point_range_m=(-12.8, -12.8, -2.0, 12.8, 12.8, 2.0), cell_size_m=(0.8, 0.8))
    config = LidarConfig(encoder="sparse", columns=("intensity",), voxel_size_z_m=0.5,
                         sparse_channels=(8, 16, 16), max_voxels=5000)
    enc = SparseLidarEncoder(config, grid)
    gen = torch.Generator().manual_seed(0)
    pts = [torch.rand(800, 4, generator=gen) * torch.tensor([25.0, 25.0, 3.8, 1.0])
           - torch.tensor([12.5, 12.5, 1.9, 0.0]) for _ in range(2)]
    bev = enc(pts)
    assert bev.shape == (2, enc.out_channels, 32, 32)
    bev.sum().backward()
    grads = [p.grad for p in enc.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
