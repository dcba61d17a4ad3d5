"""Rotated BEV / 3D IoU and NMS: known values, NumPy and PyTorch references, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from perception import ops
from perception.errors import OpsError
from perception.geometry import iou as np_iou
from perception.ops import reference as ref

from ._helpers import num_threads, random_boxes


def box(x=0.0, y=0.0, z=0.0, l=1.0, w=1.0, h=1.0, yaw=0.0):
    return [x, y, z, l, w, h, yaw]


IOU_FUNCS = [(ops.boxes_iou_bev, np_iou.boxes_iou_bev, ref.boxes_iou_bev),
             (ops.boxes_iou_3d, np_iou.boxes_iou_3d, ref.boxes_iou_3d)]


@pytest.mark.parametrize("fn", [ops.boxes_iou_bev, ops.boxes_iou_3d])
def test_known_values(fn):
    t = lambda rows: torch.tensor(rows, dtype=torch.float32)  # noqa: E731
    a = t([box(1, 2, 0.5, 4, 2, 1.5, 0.3)])
    assert fn(a, a).item() == pytest.approx(1.0, abs=1e-6)
    # The same box with heading + pi and - 2 pi.
    turned = t([box(1, 2, 0.5, 4, 2, 1.5, 0.3 + math.pi),
                box(1, 2, 0.5, 4, 2, 1.5, 0.3 - 2 * math.pi)])
    assert fn(a, turned).flatten().tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    # The second box is outside the first one, but their bounding circles overlap.
    far = t([box(10, 2, 0.5, 4, 2, 1.5, 0.3), box(3.5, 2, 0.5, 0.1, 2, 1.5, 0.0)])
    assert fn(a, far).flatten().tolist() == pytest.approx([0.0, 0.0], abs=1e-7)
    # A 45-degree-rotated square against the axis-aligned one: the intersection is a regular
    # octagon of area 2 (sqrt(2) - 1) a^2, so IoU = 1 / sqrt(2).
    sq, rot = t([box(l=2, w=2, h=2)]), t([box(l=2, w=2, h=2, yaw=math.pi / 4)])
    assert fn(sq, rot).item() == pytest.approx(1 / math.sqrt(2), abs=1e-6)
    # A tiny box inside a big one: the area (BEV) or volume (3D) ratio.
    big, tiny = t([box(l=10, w=8, h=4, yaw=0.4)]), t([box(0.5, -0.3, 0.2, 0.2, 0.1, 0.3, 1.1)])
    ratio = (0.2 * 0.1) / (10 * 8) if fn is ops.boxes_iou_bev else (0.2 * 0.1 * 0.3) / (10 * 8 * 4)
    assert fn(big, tiny).item() == pytest.approx(ratio, rel=1e-5)
    assert fn(tiny, big).item() == pytest.approx(ratio, rel=1e-5)


def test_3d_vertical_overlap():
    a = torch.tensor([box(h=2.0)])
    b = torch.tensor([box(z=1.0, h=2.0), box(z=2.0, h=2.0), box(z=2.5, h=2.0)])
    assert ops.boxes_iou_3d(a, b).flatten().tolist() == pytest.approx([1 / 3, 0.0, 0.0], abs=1e-7)
    assert ops.boxes_iou_bev(a, b).flatten().tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-7)


@pytest.mark.parametrize("ours, numpy_ref, torch_ref", IOU_FUNCS)
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n, m", [(0, 5), (1, 1), (150, 220)])
def test_matches_references(ours, numpy_ref, torch_ref, seed, n, m):
    a = random_boxes(n, seed, spread=8.0)
    b = random_boxes(m, seed + 10, spread=8.0)
    out = ours(a, b)
    assert out.shape == (n, m) and out.dtype == torch.float32
    expect = numpy_ref(a.numpy(), b.numpy())
    np.testing.assert_allclose(out.numpy(), expect, atol=2e-7)
    np.testing.assert_allclose(torch_ref(a, b).numpy(), expect, atol=2e-7)
    out64 = ours(a.double(), b.double())
    assert out64.dtype == torch.float64
    np.testing.assert_allclose(out64.numpy(), expect, atol=1e-12)


def test_touching_nested_and_far_from_origin():
    # Shared edges, shared corners, identical edges rotated, and coordinates far from 0.
    base = [box(0, 0, 0, 2, 2, 2), box(2, 0, 0, 2, 2, 2), box(2, 2, 0, 2, 2, 2),
            box(0.5, 0, 0, 1, 2, 2), box(0, 0, 0, 2, 2, 2, math.pi / 2),
            box(0.3, 0.1, 0, 2, 2, 2, 1e-9)]
    a = torch.tensor(base, dtype=torch.float64)
    for shift in (0.0, 5000.0):
        s = a.clone()
        s[:, :2] += shift
        np.testing.assert_allclose(ops.boxes_iou_bev(s, s).numpy(),
                                   np_iou.boxes_iou_bev(s.numpy(), s.numpy()), atol=1e-9)
        np.testing.assert_allclose(ops.boxes_iou_3d(s, s).numpy(),
                                   np_iou.boxes_iou_3d(s.numpy(), s.numpy()), atol=1e-9)
    iou = ops.boxes_iou_bev(a, a).numpy()
    assert iou[0, 1] == pytest.approx(0.0, abs=1e-12) and iou[0, 3] == pytest.approx(0.5)
    assert iou[0, 4] == pytest.approx(1.0)


def test_degenerate_boxes():
    a = torch.tensor([box(l=0.0, w=1.0), box(l=0.0, w=0.0), box()])
    iou = ops.boxes_iou_bev(a, a)
    assert torch.isfinite(iou).all()
    assert iou[0, 2].item() == 0.0 and iou[1, 1].item() == 0.0 and iou[2, 2].item() == 1.0


def test_iou_thread_independent():
    a, b = random_boxes(1000, 3), random_boxes(1000, 4)
    with num_threads(1):
        one = ops.boxes_iou_bev(a, b), ops.boxes_iou_3d(a, b)
    with num_threads(2):
        two = ops.boxes_iou_bev(a, b), ops.boxes_iou_3d(a, b)
    assert torch.equal(one[0], two[0]) and torch.equal(one[1], two[1])


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("thr", [0.01, 0.3, 0.7])
def test_nms_matches_reference(seed, thr):
    boxes = random_boxes(400, seed, spread=12.0)
    scores = torch.rand(400, generator=torch.Generator().manual_seed(seed))
    keep = ops.nms_bev(boxes, scores, thr)
    assert keep.dtype == torch.int64
    assert torch.equal(keep, ref.nms_bev(boxes, scores, thr))
    assert (scores[keep][1:] <= scores[keep][:-1]).all()
    iou = ops.boxes_iou_bev(boxes[keep], boxes[keep])
    assert (iou.triu(1) <= thr).all()                         # no kept pair overlaps above thr
    labels = torch.randint(0, 3, (400,), generator=torch.Generator().manual_seed(seed))
    keep_l = ops.nms_bev(boxes, scores, thr, labels=labels)
    assert torch.equal(keep_l, ref.nms_bev(boxes, scores, thr, labels))
    iou = ops.boxes_iou_bev(boxes[keep_l], boxes[keep_l])
    same = labels[keep_l][:, None] == labels[keep_l][None]
    assert (iou.triu(1)[same] <= thr).all()                   # only same-label pairs suppress


def test_nms_semantics():
    b = torch.tensor([box(), box(), box(x=0.5), box(x=5)], dtype=torch.float32)
    s = torch.tensor([0.5, 0.9, 0.8, 0.5])
    assert ops.nms_bev(b, s, 0.5).tolist() == [1, 2, 3]
    # IoU(box 1, box 2) = 1/3: suppressed only when the threshold is below it.
    assert ops.nms_bev(b, s, 0.3).tolist() == [1, 3]
    assert ops.nms_bev(b, s, 0.34).tolist() == [1, 2, 3]
    # Identical boxes have IoU 1: kept at threshold 1 (suppression needs IoU > threshold).
    assert ops.nms_bev(b, s, 1.0).tolist() == [1, 2, 0, 3]
    # Equal scores: lower index first.
    assert ops.nms_bev(b, torch.ones(4), 1.0).tolist() == [0, 1, 2, 3]
    # Class-aware: box 2 (another label) is no longer suppressed by box 1.
    assert ops.nms_bev(b, s, 0.3, labels=torch.tensor([1, 1, 0, 0])).tolist() == [1, 2, 3]
    empty = ops.nms_bev(torch.zeros((0, 7)), torch.zeros(0), 0.5)
    assert empty.shape == (0,) and empty.dtype == torch.int64


def test_nms_large_thread_independent():
    boxes = random_boxes(6000, 5, spread=60.0)
    scores = torch.rand(6000, generator=torch.Generator().manual_seed(5))
    with num_threads(1):
        one = ops.nms_bev(boxes, scores, 0.2)
    with num_threads(2):
        two = ops.nms_bev(boxes, scores, 0.2)
    assert torch.equal(one, two)
    iou = ops.boxes_iou_bev(boxes[one], boxes[one])
    assert (iou.triu(1) <= 0.2).all()
    # Every suppressed box overlaps a kept box of higher score above the threshold.
    gone = torch.ones(6000, dtype=torch.bool)
    gone[one] = False
    over = ops.boxes_iou_bev(boxes[gone], boxes[one]) > 0.2
    higher = scores[one][None] >= scores[gone][:, None]
    assert (over & higher).any(dim=1).all()


@pytest.mark.parametrize("seed", [0, 1])
def test_circle_nms(seed):
    boxes = random_boxes(500, seed, spread=15.0)
    scores = torch.rand(500, generator=torch.Generator().manual_seed(seed))
    for dist in (0.0, 0.5, 2.0):
        keep = ops.circle_nms(boxes[:, :2], scores, dist)
        assert torch.equal(keep, ref.circle_nms(boxes[:, :2], scores, dist))
        assert torch.equal(keep, ops.circle_nms(boxes, scores, dist))   # (N, 7) works
        c = boxes[keep, :2].double()
        d = torch.cdist(c, c) + torch.eye(len(keep), dtype=torch.float64) * 1e9
        assert (d > dist).all()
    labels = torch.randint(0, 2, (500,))
    assert torch.equal(ops.circle_nms(boxes, scores, 2.0, labels=labels),
                       ref.circle_nms(boxes, scores, 2.0, labels))
    # Exactly at the distance: suppressed (<=); CenterPoint's squared threshold is distance^2.
    c = torch.tensor([[0.0, 0.0], [3.0, 4.0]])
    assert ops.circle_nms(c, torch.tensor([1.0, 0.5]), 5.0).tolist() == [0]
    assert ops.circle_nms(c, torch.tensor([1.0, 0.5]), 4.999).tolist() == [0, 1]


@pytest.mark.parametrize("call, match", [
    (lambda: ops.boxes_iou_bev(torch.zeros((2, 6)), torch.zeros((2, 7))),
     r"a: expected shape \(N, 7\) as \(x, y, z, l, w, h, heading\), got shape \(2, 6\)"),
    (lambda: ops.boxes_iou_3d(torch.zeros((2, 7)), torch.zeros((2, 7), dtype=torch.int64)),
     r"b: expected a floating dtype .*int64"),
    (lambda: ops.boxes_iou_bev(torch.tensor([box(x=float("nan"))]), torch.zeros((1, 7))),
     r"a: 1 non-finite value\(s\)"),
    (lambda: ops.boxes_iou_bev(torch.tensor([box(w=-1.0)]), torch.zeros((1, 7))),
     r"a: 1 box\(es\) with a negative length, width or height"),
    (lambda: ops.nms_bev(torch.zeros((3, 7)), torch.zeros(4), 0.5),
     r"scores: expected shape \(N=3,\), got shape \(4,\)"),
    (lambda: ops.nms_bev(torch.zeros((3, 7)), torch.zeros(3), 1.5),
     r"iou_threshold: expected a value in \[0.0, 1.0\], got 1.5"),
    (lambda: ops.nms_bev(torch.zeros((3, 7)), torch.tensor([0.0, float("nan"), 1.0]), 0.5),
     r"scores: 1 non-finite"),
    (lambda: ops.nms_bev(torch.zeros((3, 7)), torch.zeros(3), 0.5, labels=torch.zeros(3)),
     r"labels: expected an integer dtype"),
    (lambda: ops.circle_nms(torch.zeros((3, 1)), torch.zeros(3), 1.0),
     r"centers_xy: expected shape \(N, 2\+\), got shape \(3, 1\)"),
    (lambda: ops.circle_nms(torch.zeros((3, 2)), torch.zeros(3), -1.0),
     r"distance: expected a value in \[0.0, None\], got -1.0"),
    (lambda: ops.circle_nms(torch.zeros((3, 2)), torch.zeros(3), "far"),
     r"distance: expected a real number, got 'far'"),
])
def test_bad_arguments(call, match):
    with pytest.raises(OpsError, match=match):
        call()


def test_numpy_inputs():
    a, b = random_boxes(20, 0), random_boxes(30, 1)
    assert torch.equal(ops.boxes_iou_bev(a.numpy(), b.numpy()), ops.boxes_iou_bev(a, b))
    s = np.linspace(0, 1, 20)
    assert torch.equal(ops.nms_bev(a.numpy(), s, 0.1), ops.nms_bev(a, torch.from_numpy(s), 0.1))
