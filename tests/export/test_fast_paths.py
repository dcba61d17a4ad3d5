"""The fast inference paths give what the straightforward code gave: batched decoding against
a per-sample decode, vectorised weighted box fusion against the per-box loop, and image
collation with one batched resize."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from perception import ops
from perception.models.batch import BatchSpec, collate_frames
from perception.models.checkpoint import read_detector
from perception.models.heads import REGRESSION_CHANNELS, DecodedBoxes, decode, regression_to_boxes
from perception.models.late_fusion import merge_boxes
from perception.models.shipped import shipped_weights_path


def _decode_one_by_one(outputs, config, grid, stride):
    """Decoding as it was written first: every step per sample and per task."""
    results = []
    for b in range(outputs[0].heatmap.shape[0]):
        parts = []
        for t, (out, classes) in enumerate(zip(outputs, config.task_classes())):
            heat = out.heatmap[b].float().sigmoid()
            n_cls, h, w = heat.shape
            scores, flat = heat.reshape(-1).topk(min(config.top_k, heat.numel()))
            keep = scores >= config.score_threshold
            scores, flat = scores[keep], flat[keep]
            cls_idx, cell = flat // (h * w), flat % (h * w)
            cells_hw = torch.stack([cell // w, cell % w], -1).to(heat.dtype)
            reg = out.regression[b].float().reshape(REGRESSION_CHANNELS, -1)[:, cell].T
            boxes, vel = regression_to_boxes(reg, cells_hw, grid, stride)
            labels = torch.tensor([int(c) for c in classes])[cls_idx]
            keep_idx = ops.circle_nms(boxes[:, :2], scores, config.nms_radius_m[t],
                                      labels=labels) if len(boxes) else cls_idx[:0]
            parts.append((boxes[keep_idx], scores[keep_idx], labels[keep_idx]))
        boxes, scores, labels = (torch.cat(x) for x in zip(*parts))
        order = scores.argsort(descending=True)[:config.max_detections]
        results.append((boxes[order], scores[order], labels[order]))
    return results


def test_batched_decode_equals_per_sample_decode(nuscenes_frames):
    model = read_detector(shipped_weights_path()).model
    batch = collate_frames(nuscenes_frames, model.spec)
    with torch.no_grad():
        out = model(batch)
    config = model.config
    new = decode(out.tasks, config.head, config.grid, model.head_stride)
    old = _decode_one_by_one(out.tasks, config.head, config.grid, model.head_stride)
    assert sum(len(d.boxes) for d in new) > 0
    for d, (boxes, scores, labels) in zip(new, old):
        # Same boxes in the same order; exp/atan2 over batched (strided) tensors may take
        # another vector path, hence the last float32 bit.
        assert torch.equal(d.scores, scores) and torch.equal(d.labels, labels)
        torch.testing.assert_close(d.boxes, boxes, atol=1e-6, rtol=1e-6)


def _wbf_per_box(boxes, scores, labels, vels, source, n_parts, thr, max_det):
    """Weighted box fusion as first written: a loop over boxes with tensor ops."""
    order = scores.argsort(descending=True, stable=True)
    iou = ops.boxes_iou_bev(boxes, boxes)
    taken = torch.zeros(boxes.shape[0], dtype=torch.bool)
    out_b, out_s, out_l, out_v = [], [], [], []
    for i in order.tolist():
        if taken[i]:
            continue
        members = (~taken) & (labels == labels[i]) & (iou[i] > thr)
        members[i] = True
        taken |= members
        w = scores[members]
        wn = w / w.sum()
        b = boxes[members]
        mean = (b[:, :6] * wn[:, None]).sum(0)
        heading = torch.atan2((torch.sin(b[:, 6]) * wn).sum(), (torch.cos(b[:, 6]) * wn).sum())
        out_b.append(torch.cat([mean, heading[None]]))
        out_s.append(w.mean() * int(source[members].unique().numel()) / n_parts)
        out_l.append(labels[i])
        out_v.append((vels[members] * wn[:, None]).sum(0))
    fused_s = torch.stack(out_s)
    keep = fused_s.argsort(descending=True, stable=True)[:max_det]
    return (torch.stack(out_b)[keep], fused_s[keep], torch.stack(out_l)[keep],
            torch.stack(out_v)[keep])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_vectorised_wbf_equals_per_box_loop(seed):
    g = torch.Generator().manual_seed(seed)
    parts = []
    centres = torch.rand((40, 2), generator=g) * 60 - 30
    for _ in range(3):  # three branches seeing jittered copies of most objects
        n = 35
        pick = torch.randperm(40, generator=g)[:n]
        boxes = torch.zeros((n, 7))
        boxes[:, :2] = centres[pick] + torch.randn((n, 2), generator=g) * 0.3
        boxes[:, 3:6] = torch.tensor([4.0, 1.8, 1.5]) * (1 + torch.rand((n, 3), generator=g) * .2)
        boxes[:, 6] = torch.randn(n, generator=g) * 0.2
        parts.append(DecodedBoxes(boxes, torch.rand(n, generator=g),
                                  (pick % 3).to(torch.int64), torch.randn((n, 2), generator=g)))
    fused = merge_boxes(parts, "wbf", 0.3, 50)
    cat = [torch.cat(x) for x in zip(*((p.boxes, p.scores, p.labels, p.velocities)
                                       for p in parts))]
    source = torch.cat([torch.full((len(p.boxes),), i) for i, p in enumerate(parts)])
    ref = _wbf_per_box(*cat, source, 3, 0.3, 50)
    for x, y in zip((fused.boxes, fused.scores, fused.labels, fused.velocities), ref):
        torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)


def test_collate_resizes_on_the_target_device(nuscenes_frames):
    spec = BatchSpec(lidar_columns=("intensity",), image_size_hw=(128, 192), radar=True)
    a = collate_frames(nuscenes_frames, spec)
    b = collate_frames(nuscenes_frames, spec, device="cpu")
    assert a.images.shape == (2, 6, 3, 128, 192)
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, torch.Tensor):
            assert torch.equal(x, y), f.name
    # One camera at a different size than the others is resized on its own.
    frame = nuscenes_frames[0]
    name = sorted(frame.cameras)[0]
    cam = frame.cameras[name]
    small = dataclasses.replace(cam, pixels=np.ascontiguousarray(cam.image[::2, ::2]),
                                calibration=dataclasses.replace(
                                    cam.calibration, width=cam.image.shape[1] // 2,
                                    height=cam.image.shape[0] // 2))
    mixed = dataclasses.replace(frame, cameras={**frame.cameras, name: small})
    c = collate_frames([mixed], spec)
    assert not torch.equal(c.images[0, 0], a.images[0, 0])
    torch.testing.assert_close(c.images[0, 1:], a.images[0, 1:])


def test_fast_jpeg_decodes_at_a_reduced_scale(nuscenes_frames):
    import io

    from PIL import Image

    frame = nuscenes_frames[0]
    name = sorted(frame.cameras)[0]
    cam = frame.cameras[name]
    buf = io.BytesIO()
    Image.fromarray(cam.image).save(buf, format="JPEG", quality=95)
    jpeg = dataclasses.replace(cam, pixels=None, encoded=buf.getvalue())
    spec = BatchSpec(lidar_columns=None, image_size_hw=(128, 192))  # 480x320 >= 2x the target
    full = collate_frames([dataclasses.replace(frame, cameras={name: jpeg})],
                          dataclasses.replace(spec, fast_jpeg=False))
    fresh = dataclasses.replace(cam, pixels=None, encoded=buf.getvalue())
    fast = collate_frames([dataclasses.replace(frame, cameras={name: fresh})], spec)
    assert not fresh.is_decoded  # the reduced decode does not fill the full-size cache
    diff = (fast.images - full.images).abs()
    assert diff.mean() < 0.02 and diff.max() < 0.5
    torch.testing.assert_close(fast.intrinsics, full.intrinsics)


@pytest.mark.parametrize("batch", [1, 3])
def test_split_input_fuser_equals_the_concat_fuser(batch):
    """The exported fuser (first convolution split into maps and presence flags) computes the
    shipped ConcatFuser's function for every presence mask, absent maps non-finite."""
    from perception.export.graphs import SplitInputConcatFuser
    from perception.types import Modality

    fuser = read_detector(shipped_weights_path()).model.fuser.eval()
    split = SplitInputConcatFuser(fuser).eval()
    channels = {Modality.LIDAR: 64, Modality.CAMERA: 64, Modality.RADAR: 32}
    gen = torch.Generator().manual_seed(batch)
    features = {m: torch.randn(batch, channels[m], 24, 20, generator=gen)
                for m in fuser.modalities}
    for mask in range(1, 8):
        present = torch.tensor([[bool(mask >> i & 1) for i in range(3)]] * batch)
        present[0] = True  # samples of one batch with different sensors
        feats = {m: torch.where(present[:, i, None, None, None], f, torch.nan)
                 for i, (m, f) in enumerate(features.items())}
        with torch.no_grad():
            want, got = fuser(feats, present), split(feats, present)
        assert torch.isfinite(got).all()
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_scatter_to_bev_equals_rows_then_permute():
    """Pillar features written straight into the channels-first map equal the rows-then-
    permute placement, gradients included, for several samples with empty cells."""
    from perception.models.common import scatter_to_bev

    B, H, W, C = 3, 12, 10, 5
    gen = torch.Generator().manual_seed(0)
    flat_cells = torch.randperm(B * H * W, generator=gen)[:150]
    b, cell = flat_cells // (H * W), flat_cells % (H * W)
    coords = torch.stack([b, torch.zeros_like(b), cell % W, cell // W], 1).int()
    features = torch.randn(150, C, dtype=torch.float64, generator=gen, requires_grad=True)
    got = scatter_to_bev(features, coords, B, (H, W))
    rows = features.new_zeros((B * H * W, C)).index_copy(0, flat_cells, features)
    want = rows.view(B, H, W, C).permute(0, 3, 1, 2)
    assert torch.equal(got, want) and got.is_contiguous()
    weights = torch.randn(B, C, H, W, dtype=torch.float64, generator=gen)
    (grad_got,) = torch.autograd.grad((got * weights).sum(), features)
    (grad_want,) = torch.autograd.grad((want * weights).sum(), features)
    assert torch.equal(grad_got, grad_want)
