"""Shape and contract tests of each encoder, the backbone and the head."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from perception.models.backbone import SecondFPN
from perception.models.batch import collate_frames
from perception.models.camera import LSSCameraEncoder
from perception.models.heads import REGRESSION_CHANNELS, CenterHead
from perception.models.lidar import PillarLidarEncoder
from perception.models.radar import RadarPillarEncoder
from perception.types import Modality

from ._helpers import small_model_config


def _batch(frames, config):
    from perception.models.detector import batch_spec
    return collate_frames(frames, batch_spec(config))


def test_pillar_encoder_shape_and_empty_cells(tiny_frames):
    config = small_model_config()
    enc = PillarLidarEncoder(config.lidar, config.grid).eval()
    batch = _batch(tiny_frames[:2], config)
    bev = enc(batch.lidar_points)
    H, W = config.grid.shape_hw
    assert bev.shape == (2, enc.out_channels, H, W) and bev.dtype == torch.float32
    # Cells with lidar points are non-zero somewhere; a sample without points is all zero.
    assert bev[0].abs().sum() > 0
    empty = enc([batch.lidar_points[0], batch.lidar_points[1][:0]])
    assert torch.equal(empty[1], torch.zeros_like(empty[1]))
    assert torch.allclose(empty[0], bev[0], atol=1e-5)


def test_pillar_encoder_puts_features_where_the_points_are(tiny_frames):
    config = small_model_config()
    enc = PillarLidarEncoder(config.lidar, config.grid).eval()
    # One point at x = 10.1, y = -5.3:
    # cell h = (10.1 + 25.6) / 0.8 = 44, w = (-5.3 + 25.6) / 0.8 = 25.
    pts = torch.tensor([[10.1, -5.3, 0.5, 0.7, 0.0]])
    bev = enc([pts])
    nonzero = (bev[0].abs().sum(0) > 0).nonzero().tolist()
    assert nonzero == [[44, 25]]


@pytest.mark.parametrize("stride", [4, 8, 16])
def test_camera_encoder_shapes_and_geometry(tiny_frames, stride):
    config = small_model_config()
    config.camera = dataclasses.replace(config.camera, feature_stride=stride)
    enc = LSSCameraEncoder(config.camera, config.grid).eval()
    batch = _batch(tiny_frames[:2], config)
    out = enc(batch)
    H, W = config.grid.shape_hw
    assert out.bev.shape == (2, config.camera.out_channels, H, W)
    image_hw = tuple(batch.images.shape[-2:])
    assert out.depth.shape == (2, config.camera.num_depth_bins,
                               image_hw[0] // stride, image_hw[1] // stride)
    assert enc.feature_hw(image_hw) == tuple(out.depth.shape[-2:])
    assert torch.allclose(out.depth.sum(1), torch.ones_like(out.depth.sum(1)), atol=1e-5)
    # Frustum points project back onto their own feature-pixel centres.
    pts = enc.frustum_points(batch, out.index, out.depth.shape[-2:])  # (N, D, h, w, 3)
    T = torch.linalg.inv(batch.T_vehicle_optical[0, 0])
    cam = pts[0].reshape(-1, 3) @ T[:3, :3].T + T[:3, 3]
    uv = (cam @ batch.intrinsics[0, 0].T)
    uv = uv[:, :2] / uv[:, 2:]
    h, w = out.depth.shape[-2:]
    stride = batch.images.shape[-1] / w
    expect_u = (torch.arange(w) + 0.5) * stride
    assert torch.allclose(uv[:, 0].reshape(-1, h, w)[0, 0], expect_u, atol=1e-3)
    # Depth of the frustum equals the bin centres.
    assert torch.allclose(cam[:, 2].reshape(-1, h, w)[:, 0, 0], enc.depth_centres_m, atol=1e-3)


def test_camera_fpn_of_each_stride_merges_only_the_maps_it_needs():
    """A stride-8 encoder keeps the parameters it always had (shipped checkpoints load
    strictly); stride 4 adds the lateral of the stride-4 map, which starts at zero (the map
    begins as the upsampled stride-8 one) and, once trained, reaches the output."""
    config = small_model_config()
    keys = {stride: {k for k in LSSCameraEncoder(
        dataclasses.replace(config.camera, feature_stride=stride), config.grid).state_dict()
        if k.startswith("neck.")} for stride in (4, 8, 16)}
    lateral = lambda name: {f"neck.{name}.weight", f"neck.{name}.bias"}  # noqa: E731
    assert keys[8] - keys[16] == lateral("lateral8")
    assert keys[4] - keys[8] == lateral("lateral4")
    neck = LSSCameraEncoder(dataclasses.replace(config.camera, feature_stride=4),
                            config.grid).neck.eval()
    f4, f8, f16 = (torch.randn(1, c, 16 // s, 24 // s) for c, s in zip((8, 16, 32), (1, 2, 4)))
    out = neck(f4, f8, f16)
    assert out.shape == (1, 16, 16, 24)
    top8 = neck.lateral8(f8) + F.interpolate(neck.lateral16(f16), size=(8, 12),
                                             mode="bilinear", align_corners=False)
    upsampled = F.interpolate(top8, size=(16, 24), mode="bilinear", align_corners=False)
    torch.testing.assert_close(out, neck.out(upsampled))
    with torch.no_grad():
        neck.lateral4.weight.normal_()
    assert not torch.allclose(neck(f4 + 1.0, f8, f16), neck(f4, f8, f16))


def test_camera_encoder_skips_absent_cameras(tiny_frames):
    config = small_model_config()
    enc = LSSCameraEncoder(config.camera, config.grid).eval()
    batch = _batch(tiny_frames[:2], config).without({Modality.CAMERA})
    out = enc(batch)
    assert out.index.shape[0] == 0 and torch.count_nonzero(out.bev) == 0
    partial = dataclasses.replace(batch, present=torch.tensor([[True, True, True],
                                                               [True, False, True]]))
    out = enc(partial)
    assert out.index[:, 0].tolist() == [0]
    assert torch.count_nonzero(out.bev[1]) == 0 and torch.count_nonzero(out.bev[0]) > 0


def test_camera_aware_depth_sees_each_pixel_ray_and_the_mount_height(tiny_frames):
    config = small_model_config()
    camera = dataclasses.replace(config.camera, camera_aware_depth=True)
    enc = LSSCameraEncoder(camera, config.grid).eval()
    batch = _batch(tiny_frames[:1], config)
    out = enc(batch)
    h, w = out.depth.shape[-2:]
    assert enc.feature_hw(tuple(batch.images.shape[-2:])) == (h, w)
    geometry = enc.pixel_geometry(batch, out.index, (h, w))  # (N, 4, h, w)
    assert geometry.shape == (out.index.shape[0], 4, h, w)
    assert torch.allclose(geometry[:, :3].norm(dim=1), torch.ones(1), atol=1e-5)
    T = batch.T_vehicle_optical[0, 0]
    assert torch.allclose(geometry[0, 3], T[2, 3].expand(h, w))
    # The ray of a pixel is the direction from the camera to its frustum points.
    pts = enc.frustum_points(batch, out.index, (h, w))[0, -1]  # (h, w, 3), farthest bin
    direction = torch.nn.functional.normalize(pts - T[:3, 3], dim=-1).permute(2, 0, 1)
    assert torch.allclose(geometry[0, :3], direction, atol=1e-4)
    # Rows lower in the image look further down: the ray's z falls from top to bottom.
    assert bool((geometry[0, 2, 1:, :] < geometry[0, 2, :-1, :]).all())
    # The depth head reads it: the same image on a camera mounted 1 m higher gets another
    # depth distribution.
    raised = batch.T_vehicle_optical.clone()
    raised[..., 2, 3] += 1.0
    moved = enc(dataclasses.replace(batch, T_vehicle_optical=raised))
    assert not torch.allclose(moved.depth, out.depth, atol=1e-4)
    plain = LSSCameraEncoder(config.camera, config.grid).eval()
    same = plain(dataclasses.replace(batch, T_vehicle_optical=raised)).depth
    assert torch.allclose(same, plain(batch).depth)


def test_camera_depth_targets_from_lidar(tiny_frames):
    config = small_model_config()
    enc = LSSCameraEncoder(config.camera, config.grid).eval()
    batch = _batch(tiny_frames[:1], config)
    out = enc(batch)
    target, mask = enc.lidar_depth_targets(batch, out.index, out.depth.shape[-2:])
    assert mask.any() and target.min() >= 0 and target.max() < enc.D
    loss = enc.depth_loss(out, batch)
    assert torch.isfinite(loss) and loss > 0


def test_lidar_depth_prior_starts_at_zero_and_reads_the_lidar(tiny_frames):
    config = small_model_config()
    plain = LSSCameraEncoder(config.camera, config.grid).eval()
    camera = dataclasses.replace(config.camera, lidar_depth_prior=True)
    enc = LSSCameraEncoder(camera, config.grid).eval()
    missing, unexpected = enc.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["depth_prior.conv.weight", "depth_prior.conv.bias"] and not unexpected
    batch = _batch(tiny_frames[:1], config)
    # Zero at the start: the same depth as the encoder without the prior.
    out = enc(batch)
    assert torch.allclose(out.depth, plain(batch).depth)
    # The input: the nearest lidar point's bin, one-hot, and a mask channel.
    h, w = out.depth.shape[-2:]
    lidar = enc.lidar_depth_input(batch, out.index, (h, w))
    target, mask = enc.lidar_depth_targets(batch, out.index, (h, w))
    assert lidar.shape == (1, enc.D + 1, h, w)
    assert torch.equal(lidar[:, -1].bool(), mask) and 0 < int(mask.sum()) < h * w
    assert torch.equal(lidar[:, :-1].sum(1), mask.float())
    assert torch.equal(lidar[:, :-1].argmax(1)[mask], target[mask])
    # A prior that boosts the lidar's bin puts the depth there where lidar projects...
    with torch.no_grad():
        enc.depth_prior.conv.weight[:, :enc.D, 1, 1] = torch.eye(enc.D)
    boosted = enc(batch).depth
    assert torch.equal(boosted.argmax(1)[mask], target[mask])
    far = _far_from(mask)  # out of the 3x3 prior's reach: the camera's own depth
    assert bool(far.any())
    assert torch.allclose(boosted.permute(0, 2, 3, 1)[far], out.depth.permute(0, 2, 3, 1)[far])
    # ...and changes nothing in a sample without lidar.
    no_lidar = batch.without({Modality.LIDAR})
    assert torch.allclose(enc(no_lidar).depth, plain(no_lidar).depth)


def _far_from(mask: torch.Tensor) -> torch.Tensor:
    """Pixels with no masked pixel among their 3x3 neighbours (out of a 3x3 prior's reach)."""
    near = torch.nn.functional.max_pool2d(mask[:, None].float(), 3, 1, 1)[:, 0]
    return near == 0


def test_lidar_depth_prior_needs_lidar_in_the_model():
    config = small_model_config(lidar=None)
    camera = dataclasses.replace(config.camera, lidar_depth_prior=True)
    with pytest.raises(ValueError, match="lidar_depth_prior"):
        dataclasses.replace(config, camera=camera).validate()


def test_radar_encoder_shape_and_velocity_channels(tiny_frames):
    config = small_model_config()
    enc = RadarPillarEncoder(config.radar, config.grid).eval()
    batch = _batch(tiny_frames[:2], config)
    assert batch.radar_points[0].shape[1] == 7
    bev = enc(batch.radar_points)
    H, W = config.grid.shape_hw
    assert bev.shape == (2, enc.out_channels, H, W)
    moved = [p.clone() for p in batch.radar_points]
    moved[0][:, 3] += 5.0  # a different Doppler velocity changes the features
    assert not torch.allclose(enc(moved)[0], bev[0])


def test_backbone_and_head_shapes():
    config = small_model_config()
    bb = SecondFPN(16, config.backbone)
    x = torch.randn(2, 16, 64, 64)
    y = bb(x)
    assert y.shape == (2, 32, 64, 64)
    head = CenterHead(32, config.head)
    with torch.no_grad():
        outs = head(y)
    assert len(outs) == 2
    assert outs[0].heatmap.shape == (2, 1, 64, 64) and outs[1].heatmap.shape == (2, 2, 64, 64)
    assert outs[0].regression.shape == (2, REGRESSION_CHANNELS, 64, 64)
    # The CenterPoint prior: initial heatmap probabilities near 0.1.
    assert abs(float(outs[0].heatmap.sigmoid().mean()) - 0.1) < 0.05


def test_radar_velocity_is_radial_from_the_sensor(tiny_frames):
    from perception.models.batch import radar_point_features
    frame = tiny_frames[0]
    feats = radar_point_features(frame)
    scan = next(iter(frame.radars.values()))
    origin = scan.calibration.T_vehicle_sensor[:2, 3]
    ray = feats[:, :2] - origin
    cross = ray[:, 0] * feats[:, 4] - ray[:, 1] * feats[:, 3]
    assert np.allclose(cross, 0.0, atol=1e-3)
    speed = np.linalg.norm(feats[:, 3:5], axis=1)
    assert np.allclose(speed, np.abs(scan.column("doppler_compensated_mps")), atol=1e-4)
