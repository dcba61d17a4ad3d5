"""Pure-PyTorch reference implementations of the custom ops.

They define the semantics the C++ and CUDA code must reproduce, serve as the fallback when the
extension is not built, and are what the tests compare against. They are written for clarity
and device independence (they run on CPU and CUDA tensors alike), with algorithms deliberately
different from the compiled ones: hard voxelization by a stable sort of voxel keys instead of a
hash table, reductions with ``torch.unique`` and ``index_add_``, IoU by vectorised polygon
clipping in float64 over all candidate pairs.

Inputs are checked the same way as in the public functions (:mod:`perception.ops`).
"""

from __future__ import annotations

import torch

from . import _checks as C

# --------------------------------------------------------------------------------------------
# voxelization


def voxel_indices(points: torch.Tensor, grid: C.VoxelGrid) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-point integer voxel index (N, 3) as (x, y, z), int64, and the validity mask.

    ``floor((p - lo) / size)`` in float32; a point is valid when every index is in
    ``[0, grid)`` (NaN and inf never are).
    """
    dev = points.device
    size = torch.tensor(grid.size, dtype=torch.float32, device=dev)
    lo = torch.tensor(grid.lo, dtype=torch.float32, device=dev)
    dims = torch.tensor(grid.grid, dtype=torch.float32, device=dev)
    f = torch.floor((points[:, :3] - lo) / size)
    valid = ((f >= 0) & (f < dims)).all(dim=1)
    idx = torch.where(valid[:, None], f, torch.zeros_like(f)).to(torch.int64)
    return idx, valid


def voxelize_dynamic(points, voxel_size, point_range) -> torch.Tensor:
    """(N, 3) int32 (z, y, x) voxel coordinates, rows of -1 for dropped points."""
    pts = C.check_points(points)
    grid = C.voxel_grid(voxel_size, point_range)
    idx, valid = voxel_indices(pts, grid)
    zyx = idx.flip(1).to(torch.int32)
    zyx[~valid] = -1
    return zyx


def voxelize_hard(points, voxel_size, point_range, max_points: int, max_voxels: int | None
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard voxelization by stable sort (first-come voxel order, input order inside a voxel)."""
    pts = C.check_points(points)
    grid = C.voxel_grid(voxel_size, point_range)
    P = C.as_int("max_points", max_points, minimum=1, maximum=C.INT32_MAX)
    Mmax = C.as_int("max_voxels", max_voxels, minimum=0, maximum=C.INT32_MAX, allow_none=True)
    dev, Ch = pts.device, pts.shape[1]
    gx, gy, _ = grid.grid
    idx, valid = voxel_indices(pts, grid)
    key = (idx[:, 2] * gy + idx[:, 1]) * gx + idx[:, 0]
    pidx = torch.nonzero(valid).squeeze(1)
    skey, perm = torch.sort(key[pidx], stable=True)
    spidx = pidx[perm]                                   # point indices grouped by voxel
    n = skey.numel()
    new = torch.ones(n, dtype=torch.bool, device=dev)
    if n > 1:
        new[1:] = skey[1:] != skey[:-1]
    seg = torch.cumsum(new.to(torch.int64), 0) - 1       # voxel segment of each sorted entry
    seg_start = torch.nonzero(new).squeeze(1)
    rank = torch.arange(n, device=dev) - seg_start[seg]  # position inside the voxel
    first = spidx[seg_start]                             # first point of each voxel
    vorder = torch.argsort(first)                        # segments by first occurrence
    vid_of_seg = torch.empty_like(vorder)
    vid_of_seg[vorder] = torch.arange(vorder.numel(), device=dev)
    vid = vid_of_seg[seg]
    S = seg_start.numel()
    M = S if Mmax is None else min(S, Mmax)
    keep = (vid < M) & (rank < P)
    voxels = torch.zeros((M, P, Ch), dtype=torch.float32, device=dev)
    voxels[vid[keep], rank[keep]] = pts[spidx[keep]]
    counts = torch.bincount(vid[vid < M], minlength=M).clamp(max=P).to(torch.int32)
    vkey = skey[seg_start][vorder[:M]]
    x = vkey % gx
    y = (vkey // gx) % gy
    z = vkey // (gx * gy)
    coords = torch.stack([z, y, x], dim=1).to(torch.int32)
    return voxels, coords, counts


# --------------------------------------------------------------------------------------------
# scatter reductions


def scatter_reduce(features, coords, reduce: str = "mean"
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reduce point features per voxel; voxels sorted lexicographically by coordinates.

    Rows of ``coords`` with any negative entry are ignored (inverse -1). ``max`` passes the
    gradient to the first point (lowest index) holding the maximum of each channel.
    """
    feats = C.as_tensor("features", features)
    crd = C.as_tensor("coords", coords)
    valid = (crd >= 0).all(dim=1)
    vidx = torch.nonzero(valid).squeeze(1)
    uniq, inv = torch.unique(crd[vidx].to(torch.int64), dim=0, return_inverse=True)
    M, N, Ch = uniq.shape[0], feats.shape[0], feats.shape[1]
    inverse = torch.full((N,), -1, dtype=torch.int64, device=feats.device)
    inverse[vidx] = inv
    fv = feats[vidx]
    if reduce == "sum" or reduce == "mean":
        out = torch.zeros((M, Ch), dtype=feats.dtype, device=feats.device).index_add(0, inv, fv)
        if reduce == "mean":
            cnt = torch.bincount(inv, minlength=M).to(feats.dtype)
            out = out / cnt[:, None]
    elif reduce == "max":
        idx = inv[:, None].expand(-1, Ch)
        mx = torch.full((M, Ch), float("-inf"), dtype=feats.dtype, device=feats.device)
        mx = mx.scatter_reduce(0, idx, fv.detach(), "amax", include_self=False)
        is_max = fv.detach() == mx[inv]
        cand = torch.where(is_max, vidx[:, None].expand(-1, Ch), N)
        first = torch.full((M, Ch), N, dtype=torch.int64, device=feats.device)
        first = first.scatter_reduce(0, idx, cand, "amin", include_self=True)
        out = feats.gather(0, first.clamp(max=max(N - 1, 0)))
    else:
        raise C.OpsError(f"reduce: expected 'mean', 'max' or 'sum', got {reduce!r}")
    return out, uniq.to(crd.dtype), inverse


# --------------------------------------------------------------------------------------------
# bev_pool


def bev_pool(features, geometry, batch_size: int, grid_shape) -> torch.Tensor:
    """Sum (N, C) features into a (B, C, Z, H, W) grid at (b, z, y, x); outside points dropped."""
    feats = C.as_tensor("features", features)
    geo = C.as_tensor("geometry", geometry).to(torch.int64)
    Z, H, W = (1, *grid_shape) if len(grid_shape) == 2 else tuple(grid_shape)
    B = int(batch_size)
    b, z, y, x = geo.unbind(1)
    valid = (b >= 0) & (b < B) & (z >= 0) & (z < Z) & (y >= 0) & (y < H) & (x >= 0) & (x < W)
    rank = ((b * Z + z) * H + y) * W + x
    out = torch.zeros((B * Z * H * W, feats.shape[1]), dtype=feats.dtype, device=feats.device)
    out = out.index_add(0, rank[valid], feats[valid])
    return out.view(B, Z, H, W, -1).permute(0, 4, 1, 2, 3).contiguous()


# --------------------------------------------------------------------------------------------
# rotated IoU and NMS

_CORNER_SIGNS = ((0.5, 0.5), (-0.5, 0.5), (-0.5, -0.5), (0.5, -0.5))


def bev_corners(boxes: torch.Tensor) -> torch.Tensor:
    """(N, 7) -> (N, 4, 2) float64 BEV corners, counter-clockwise, front-left first."""
    b = boxes.to(torch.float64)
    signs = torch.tensor(_CORNER_SIGNS, dtype=torch.float64, device=b.device)
    local = signs[None] * b[:, None, 3:5]
    c, s = torch.cos(b[:, 6])[:, None], torch.sin(b[:, 6])[:, None]
    x = local[..., 0] * c - local[..., 1] * s + b[:, None, 0]
    y = local[..., 0] * s + local[..., 1] * c + b[:, None, 1]
    return torch.stack([x, y], dim=-1)


def _polygon_area(poly: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    V = poly.shape[1]
    idx = torch.arange(V, device=poly.device)[None]
    nxt = torch.where(idx + 1 < count[:, None], idx + 1, torch.zeros_like(idx))
    nxt_pts = torch.gather(poly, 1, nxt[..., None].expand(-1, -1, 2))
    cross = poly[..., 0] * nxt_pts[..., 1] - poly[..., 1] * nxt_pts[..., 0]
    cross = torch.where(idx < count[:, None], cross, torch.zeros_like(cross))
    area = 0.5 * cross.sum(dim=1).abs()
    return torch.where(count >= 3, area, torch.zeros_like(area))


def _clip(poly: torch.Tensor, count: torch.Tensor, e0: torch.Tensor, e1: torch.Tensor
          ) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the part of each convex polygon on the left of the directed edge e0 -> e1."""
    P, V, _ = poly.shape
    edge = e1 - e0
    scale = edge.abs().sum(dim=1).clamp(min=1e-12)
    side = (edge[:, None, 0] * (poly[..., 1] - e0[:, None, 1])
            - edge[:, None, 1] * (poly[..., 0] - e0[:, None, 0]))
    inside = side >= -1e-12 * scale[:, None]
    idx = torch.arange(V, device=poly.device)[None].expand(P, -1)
    valid = idx < count[:, None]
    prev_idx = torch.where(idx == 0, (count[:, None] - 1).clamp(min=0), idx - 1)
    prev = torch.gather(poly, 1, prev_idx[..., None].expand(-1, -1, 2))
    side_prev = torch.gather(side, 1, prev_idx)
    inside_prev = torch.gather(inside, 1, prev_idx)
    denom = side_prev - side
    t = torch.where(denom != 0, side_prev / torch.where(denom == 0, torch.ones_like(denom), denom),
                    torch.zeros_like(denom)).clamp(0.0, 1.0)[..., None]
    crossing = prev + t * (poly - prev)
    out = torch.stack([crossing, poly], dim=2).reshape(P, 2 * V, 2)
    keep = torch.stack([valid & (inside != inside_prev), valid & inside], dim=2).reshape(P, 2 * V)
    # Compact the kept vertices to the front, in order (at most 8 for convex input).
    pos = torch.where(keep, torch.cumsum(keep, dim=1) - 1, torch.full_like(idx[:, :1], 2 * V))
    pos = pos.clamp(max=2 * V)
    new_poly = out.new_zeros((P, 2 * V + 1, 2))
    new_poly.scatter_(1, pos[..., None].expand(-1, -1, 2), out)
    new_count = keep.sum(dim=1).clamp(max=8)
    return new_poly[:, :8], new_count


def bev_intersection(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(N, M) float64 BEV intersection areas of rotated boxes (N, 7) and (M, 7)."""
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    N, M = a64.shape[0], b64.shape[0]
    inter = torch.zeros((N, M), dtype=torch.float64, device=a.device)
    if N == 0 or M == 0:
        return inter
    ra = 0.5 * torch.hypot(a64[:, 3], a64[:, 4])
    rb = 0.5 * torch.hypot(b64[:, 3], b64[:, 4])
    d2 = ((a64[:, None, :2] - b64[None, :, :2]) ** 2).sum(-1)
    ii, jj = torch.nonzero(d2 <= (ra[:, None] + rb[None]) ** 2 * (1 + 1e-9), as_tuple=True)
    ca, cb = bev_corners(a64), bev_corners(b64)
    for start in range(0, ii.numel(), 65536):
        i, j = ii[start:start + 65536], jj[start:start + 65536]
        poly = torch.zeros((i.numel(), 8, 2), dtype=torch.float64, device=a.device)
        poly[:, :4] = ca[i]
        count = torch.full((i.numel(),), 4, dtype=torch.int64, device=a.device)
        for k in range(4):
            poly, count = _clip(poly, count, cb[j, k], cb[j, (k + 1) % 4])
        inter[i, j] = _polygon_area(poly, count)
    return inter


def boxes_iou_bev(a, b) -> torch.Tensor:
    """(N, M) BEV IoU, computed in float64, returned in the dtype of the boxes."""
    a, b = C.as_tensor("a", a), C.as_tensor("b", b)
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    inter = bev_intersection(a64, b64)
    union = (a64[:, 3] * a64[:, 4])[:, None] + (b64[:, 3] * b64[:, 4])[None] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))
    return iou.to(torch.promote_types(a.dtype, b.dtype))


def boxes_iou_3d(a, b) -> torch.Tensor:
    """(N, M) 3D IoU of yaw-only, centre-z boxes, computed in float64."""
    a, b = C.as_tensor("a", a), C.as_tensor("b", b)
    a64, b64 = a.to(torch.float64), b.to(torch.float64)
    inter_bev = bev_intersection(a64, b64)
    top = torch.minimum(a64[:, None, 2] + a64[:, None, 5] / 2,
                        b64[None, :, 2] + b64[None, :, 5] / 2)
    bottom = torch.maximum(a64[:, None, 2] - a64[:, None, 5] / 2,
                           b64[None, :, 2] - b64[None, :, 5] / 2)
    inter = inter_bev * (top - bottom).clamp(min=0.0)
    vol_a = a64[:, 3] * a64[:, 4] * a64[:, 5]
    vol_b = b64[:, 3] * b64[:, 4] * b64[:, 5]
    union = vol_a[:, None] + vol_b[None] - inter
    iou = torch.where(union > 0, inter / union.clamp(min=1e-12), torch.zeros_like(inter))
    return iou.to(torch.promote_types(a.dtype, b.dtype))


def _greedy(suppress: torch.Tensor) -> list[int]:
    n = suppress.shape[0]
    removed = torch.zeros(n, dtype=torch.bool, device=suppress.device)
    keep = []
    for i in range(n):
        if bool(removed[i]):
            continue
        keep.append(i)
        removed |= suppress[i]
    return keep


def _score_order(scores: torch.Tensor) -> torch.Tensor:
    return torch.sort(scores, descending=True, stable=True).indices


def nms_bev(boxes, scores, iou_threshold: float, labels=None) -> torch.Tensor:
    """Greedy rotated BEV NMS (suppress when IoU > threshold), kept indices by score."""
    boxes, scores = C.as_tensor("boxes", boxes), C.as_tensor("scores", scores)
    order = _score_order(scores)
    sb = boxes[order]
    sup = boxes_iou_bev(sb, sb).to(torch.float64) > iou_threshold
    if labels is not None:
        sl = C.as_tensor("labels", labels).to(boxes.device)[order]
        sup &= sl[:, None] == sl[None]
    keep = _greedy(sup)
    return order[torch.tensor(keep, dtype=torch.int64, device=boxes.device)]


def circle_nms(centers_xy, scores, distance: float, labels=None) -> torch.Tensor:
    """Greedy circle NMS (suppress when centre distance <= distance), kept indices by score."""
    centers, scores = C.as_tensor("centers_xy", centers_xy), C.as_tensor("scores", scores)
    order = _score_order(scores)
    c = centers[order, :2].to(torch.float64)
    d2 = ((c[:, None] - c[None]) ** 2).sum(-1)
    sup = d2 <= float(distance) ** 2
    if labels is not None:
        sl = C.as_tensor("labels", labels).to(centers.device)[order]
        sup &= sl[:, None] == sl[None]
    keep = _greedy(sup)
    return order[torch.tensor(keep, dtype=torch.int64, device=centers.device)]
