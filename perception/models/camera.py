"""Camera encoder: ResNet-like backbone + small FPN + LSS view transform (BEVFusion-style).

Each valid camera image ``(3, H, W)`` becomes features at stride ``s``; a depth head predicts,
per feature pixel, a distribution over D depth bins and C context features; their outer
product is lifted to frustum points with the camera's own K and ``T_vehicle_optical`` and
summed into BEV cells with :func:`perception.ops.lss_pool`, which computes that sum (and its
gradient) without building the (N, D, h, w, C) frustum.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .. import ops
from ..types import Modality
from .batch import Batch
from .common import conv_bn_relu
from .config import CameraConfig, GridConfig


class BasicBlock(nn.Module):
    """ResNet basic block (two 3x3 convs and a shortcut)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out else nn.Sequential(
            nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        return F.relu(self.bn2(self.conv2(y)) + self.shortcut(x), inplace=True)


class ImageBackbone(nn.Module):
    """ResNet-like: stem (stride 2) and three stages at strides 4, 8, 16.

    Input (N, 3, H, W) float32 RGB in [0, 1]; output the stride-4, 8 and 16 maps.
    """

    def __init__(self, channels: tuple[int, ...]):
        super().__init__()
        c4, c8, c16 = channels
        self.stem = conv_bn_relu(3, c4 // 2 if c4 >= 16 else c4, stride=2)
        stem_out = c4 // 2 if c4 >= 16 else c4
        self.stage4 = nn.Sequential(BasicBlock(stem_out, c4, 2), BasicBlock(c4, c4, 1))
        self.stage8 = nn.Sequential(BasicBlock(c4, c8, 2), BasicBlock(c8, c8, 1))
        self.stage16 = nn.Sequential(BasicBlock(c8, c16, 2), BasicBlock(c16, c16, 1))
        self.register_buffer("mean", torch.tensor([0.45, 0.45, 0.45]).view(1, 3, 1, 1),
                             persistent=False)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.stem((images - self.mean) / 0.25)
        f4 = self.stage4(x)
        f8 = self.stage8(f4)
        return f4, f8, self.stage16(f8)


class SmallFPN(nn.Module):
    """Top-down merge of the stride-16 map into each finer map down to ``stride`` (4, 8 or
    16): ``neck(*backbone(images))`` is the (N, out_channels, H / stride, W / stride) map."""

    def __init__(self, channels: tuple[int, ...], out_channels: int, stride: int):
        super().__init__()
        self.stride = stride
        self.lateral16 = nn.Conv2d(channels[2], out_channels, 1)
        self.lateral8 = nn.Conv2d(channels[1], out_channels, 1) if stride <= 8 else None
        self.lateral4 = nn.Conv2d(channels[0], out_channels, 1) if stride == 4 else None
        if self.lateral4 is not None:
            # Zero at the start: the stride-4 map begins as the upsampled stride-8 one, so a
            # camera trained at stride 8 can be fine-tuned at stride 4 from where it was.
            nn.init.zeros_(self.lateral4.weight)
            nn.init.zeros_(self.lateral4.bias)
        self.out = conv_bn_relu(out_channels, out_channels)

    def forward(self, f4: torch.Tensor, f8: torch.Tensor, f16: torch.Tensor) -> torch.Tensor:
        top = self.lateral16(f16)
        for lateral, finer in ((self.lateral8, f8), (self.lateral4, f4)):
            if lateral is None:
                break
            up = F.interpolate(top, size=finer.shape[-2:], mode="bilinear", align_corners=False)
            top = lateral(finer) + up
        return self.out(top)


@dataclass
class CameraFeatures:
    """Output of :class:`LSSCameraEncoder`.

    Attributes:
        bev: (B, C, H, W) float32, x along H; samples without a camera are all 0 and masked by
            the fuser.
        depth: (N_valid, D, h, w) float32 depth distribution of each encoded image.
        index: (N_valid, 2) int64 ``(b, camera)`` of each encoded image.
    """

    bev: torch.Tensor
    depth: torch.Tensor
    index: torch.Tensor


class LidarDepthPrior(nn.Module):
    """Depth logits from lidar: (N, D + 1, h, w) lidar depth
    (:meth:`LSSCameraEncoder.lidar_depth_input`) -> (N, D, h, w), added to the camera's.

    A 3x3 convolution that starts at zero, times ``GAIN``: AdamW moves each weight by about
    the learning rate per step, so a fine-tune of a few hundred steps at 5e-4 could move
    unscaled logits by 0.2 at most, where a softmax over tens of bins needs several.
    """

    GAIN = 30.0

    def __init__(self, num_bins: int):
        super().__init__()
        self.conv = nn.Conv2d(num_bins + 1, num_bins, 3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, lidar_depth: torch.Tensor) -> torch.Tensor:
        return self.GAIN * self.conv(lidar_depth)


RAY_CHANNELS = 4
"""Channels of :meth:`LSSCameraEncoder.pixel_geometry`: unit ray (x, y, z) and camera height."""


class LSSCameraEncoder(nn.Module):
    """Lift-splat-shoot view transform over any number of cameras per sample.

    ``FRESH_PREFIXES``: tensors that start at zero and that a source checkpoint trained
    without them lacks (the lidar depth prior; the stride-4 lateral of a camera trained at
    stride 8); ``train.init_from`` keeps their initialisation.
    """

    FRESH_PREFIXES: tuple[str, ...] = ("depth_prior.", "neck.lateral4.")

    def __init__(self, config: CameraConfig, grid: GridConfig):
        super().__init__()
        self.config = config
        self.grid = grid
        self.backbone = ImageBackbone(tuple(config.backbone_channels))
        self.neck = SmallFPN(tuple(config.backbone_channels), config.fpn_channels,
                             config.feature_stride)
        self.D = config.num_depth_bins
        self.out_channels = config.out_channels
        self.out_stride = 1
        geometry = RAY_CHANNELS if config.camera_aware_depth else 0
        self.depth_net = nn.Sequential(
            conv_bn_relu(config.fpn_channels + geometry, config.fpn_channels),
            nn.Conv2d(config.fpn_channels, self.D + self.out_channels, 1))
        # Zero at the start: the encoder computes what it did without the prior.
        self.depth_prior = LidarDepthPrior(self.D) if config.lidar_depth_prior else None
        lo, _, step = config.depth_m
        self.register_buffer("depth_centres_m",
                             lo + step * (torch.arange(self.D, dtype=torch.float32) + 0.5),
                             persistent=False)

    def forward(self, batch: Batch) -> CameraFeatures:
        B = batch.batch_size
        H, W = self.grid.shape_hw
        use = batch.camera_valid & batch.has(Modality.CAMERA)[:, None]
        index = use.nonzero()
        if index.shape[0] == 0:
            z = batch.images.new_zeros((B, self.out_channels, H, W))
            return CameraFeatures(z, z.new_zeros((0, self.D, 1, 1)), index)
        images = batch.images[index[:, 0], index[:, 1]]
        feats = self.neck(*self.backbone(images))
        if self.config.camera_aware_depth:
            with torch.autocast(batch.images.device.type, enabled=False):
                rays = self.pixel_geometry(batch, index, feats.shape[-2:])
            feats = torch.cat([feats, rays.to(feats.dtype)], 1)
        out = self.depth_net(feats)
        logits = out[:, :self.D]
        if self.depth_prior is not None:
            lidar_depth = self.lidar_depth_input(batch, index, feats.shape[-2:])
            logits = logits + self.depth_prior(lidar_depth.to(logits.dtype))
        depth = logits.softmax(1)
        context = out[:, self.D:]
        # Geometry in float32 even under AMP: half precision would move far points by cells.
        # The pooled sum of depth x context is a sparse product in float32 as well.
        with torch.autocast(batch.images.device.type, enabled=False):
            plan = self.frustum_plan(batch, index, tuple(depth.shape))
            pooled = ops.lss_pool(depth.float(), context.float(), plan)
        return CameraFeatures(pooled[:, :, 0], depth, index)

    def feature_hw(self, image_hw: tuple[int, int]) -> tuple[int, int]:
        """(h, w) of the depth net's map for images of ``image_hw``: each stride-2 convolution
        (kernel 3, padding 1) maps n pixels to ceil(n / 2)."""
        halvings = self.config.feature_stride.bit_length() - 1
        h, w = image_hw
        for _ in range(halvings):
            h, w = -(-h // 2), -(-w // 2)
        return h, w

    def optical_rays(self, batch: Batch, index: torch.Tensor, feature_hw
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, h, w, 3) float32 ray through each feature-pixel centre in the optical frame,
        scaled to z = 1, and the (N, 4, 4) ``T_vehicle_optical`` of each image."""
        h, w = feature_hw
        s_y = batch.images.shape[-2] / h
        s_x = batch.images.shape[-1] / w
        dev = batch.images.device
        v = (torch.arange(h, device=dev, dtype=torch.float32) + 0.5) * s_y
        u = (torch.arange(w, device=dev, dtype=torch.float32) + 0.5) * s_x
        vv, uu = torch.meshgrid(v, u, indexing="ij")
        pix = torch.stack([uu, vv, torch.ones_like(uu)], -1)  # (h, w, 3)
        K = batch.intrinsics[index[:, 0], index[:, 1]]
        T = batch.T_vehicle_optical[index[:, 0], index[:, 1]]
        return torch.einsum("nij,hwj->nhwi", torch.linalg.inv(K), pix), T

    def frustum_points(self, batch: Batch, index: torch.Tensor, feature_hw) -> torch.Tensor:
        """(N, D, h, w, 3) float32 vehicle-frame centre of every frustum cell."""
        rays, T = self.optical_rays(batch, index, feature_hw)
        pts = rays[:, None] * self.depth_centres_m.view(1, -1, 1, 1, 1)
        return torch.einsum("nij,ndhwj->ndhwi", T[:, :3, :3], pts) + T[:, None, None, None, :3, 3]

    def pixel_geometry(self, batch: Batch, index: torch.Tensor, feature_hw) -> torch.Tensor:
        """(N, 4, h, w) float32 input of the camera-aware depth head: each feature pixel's
        unit ray in the vehicle frame (x, y, z) and the camera's height z (m) in the vehicle
        frame."""
        rays, T = self.optical_rays(batch, index, feature_hw)
        unit = F.normalize(torch.einsum("nij,nhwj->nihw", T[:, :3, :3], rays), dim=1)
        height = T[:, 2, 3].view(-1, 1, 1, 1).expand(-1, 1, *unit.shape[-2:])
        return torch.cat([unit, height], 1)

    def lidar_depth_input(self, batch: Batch, index: torch.Tensor, feature_hw) -> torch.Tensor:
        """(N, D + 1, h, w) float32 input of the lidar depth prior: a one-hot of the depth
        bin of the nearest lidar point in each feature pixel, then a channel that is 1 where
        one projects; all 0 for samples without lidar."""
        target, mask = self.lidar_depth_targets(batch, index, feature_hw)
        onehot = F.one_hot(target, self.D).permute(0, 3, 1, 2).float()
        mask = mask[:, None].float()
        return torch.cat([onehot * mask, mask], 1)

    def frustum_cells(self, batch: Batch, index: torch.Tensor, feature_hw
                      ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N*D*h*w, 4) int64 ``(b, 0, h_cell, w_cell)`` geometry for bev_pool and a validity
        mask (inside the grid range, z included)."""
        pts = self.frustum_points(batch, index, feature_hw)
        r = self.grid.point_range_m
        dx, dy = self.grid.cell_size_m
        H, W = self.grid.shape_hw
        hx = torch.floor((pts[..., 0] - r[0]) / dx).long()
        wy = torch.floor((pts[..., 1] - r[1]) / dy).long()
        valid = ((hx >= 0) & (hx < H) & (wy >= 0) & (wy < W)
                 & (pts[..., 2] >= r[2]) & (pts[..., 2] < r[5]))
        b = index[:, 0].view(-1, 1, 1, 1).expand_as(hx)
        cells = torch.stack([b, torch.zeros_like(hx), hx, wy], -1).reshape(-1, 4)
        return cells, valid.reshape(-1)

    def frustum_plan(self, batch: Batch, index: torch.Tensor,
                     depth_shape: tuple[int, int, int, int]) -> ops.LssPoolPlan:
        """The :func:`~perception.ops.lss_pool` layout of the frustum of the images ``index``
        for (N, D, h, w) depths; points outside the grid are dropped. Call with autocast off."""
        cells, valid = self.frustum_cells(batch, index, depth_shape[-2:])
        H, W = self.grid.shape_hw
        return ops.lss_pool_plan(cells.masked_fill(~valid[:, None], -1), depth_shape,
                                 batch.batch_size, (1, H, W))

    def depth_loss(self, features: CameraFeatures, batch: Batch) -> torch.Tensor:
        """Depth supervision from lidar: binary cross-entropy of the depth distribution
        against the bin of the nearest lidar point projected into each feature pixel, summed
        over the D bins and averaged over supervised pixels (as in BEVDepth), so that its
        scale does not shrink as D grows."""
        if features.index.shape[0] == 0:
            return features.bev.sum() * 0.0
        target, mask = self.lidar_depth_targets(batch, features.index, features.depth.shape[-2:])
        if not bool(mask.any()):
            return features.depth.sum() * 0.0
        probs = features.depth.float().permute(0, 2, 3, 1)[mask].clamp(1e-6, 1 - 1e-6)
        onehot = F.one_hot(target[mask], self.D).to(probs.dtype)
        return F.binary_cross_entropy(probs, onehot, reduction="sum") / probs.shape[0]

    @torch.no_grad()
    def lidar_depth_targets(self, batch: Batch, index: torch.Tensor, feature_hw
                            ) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, h, w) int64 depth bin of the nearest projected lidar point, and (N, h, w) bool
        where a lidar point projects (and the sample has lidar)."""
        h, w = feature_hw
        N = index.shape[0]
        big = torch.full((N, h * w), float("inf"), device=batch.images.device)
        lo, hi, step = self.config.depth_m
        for n in range(N):
            b, c = int(index[n, 0]), int(index[n, 1])
            if not bool(batch.has(Modality.LIDAR)[b]):
                continue
            pts = batch.lidar_points[b][:, :3]
            T_opt_vehicle = torch.linalg.inv(batch.T_vehicle_optical[b, c])
            cam = pts @ T_opt_vehicle[:3, :3].T + T_opt_vehicle[:3, 3]
            z = cam[:, 2]
            uvw = cam @ batch.intrinsics[b, c].T
            u = uvw[:, 0] / z.clamp(min=1e-3) * w / batch.images.shape[-1]
            v = uvw[:, 1] / z.clamp(min=1e-3) * h / batch.images.shape[-2]
            ok = (z >= lo) & (z < hi) & (u >= 0) & (u < w) & (v >= 0) & (v < h)
            pix = v[ok].long() * w + u[ok].long()
            big[n].scatter_reduce_(0, pix, z[ok], reduce="amin")
        mask = torch.isfinite(big)
        target = ((big.clamp(lo, hi - 1e-3) - lo) / step).long().clamp(0, self.D - 1)
        return target.view(N, h, w), mask.view(N, h, w)
