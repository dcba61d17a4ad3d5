"""Early fusion: point painting.

Each lidar point is projected into every camera of its sample; image features (a small CNN
trained end to end with the detector) are bilinearly sampled at the projection and appended
to the point, followed by a 0/1 "painted" flag. Points seen by no camera (or samples without
cameras) get the flag 0, so the encoder can tell "not painted" from a painted zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..types import Modality
from .batch import Batch
from .camera import ImageBackbone, SmallFPN
from .config import PaintingConfig


class PointPainter(nn.Module):
    """Appends ``channels + 1`` columns to every lidar point."""

    def __init__(self, config: PaintingConfig):
        super().__init__()
        chans = tuple(config.backbone_channels)
        self.backbone = ImageBackbone(chans)
        self.neck = SmallFPN(chans, config.channels * 2, 8)
        self.head = nn.Conv2d(config.channels * 2, config.channels, 1)
        self.extra_channels = config.channels + 1

    def forward(self, batch: Batch, points: list[torch.Tensor]) -> list[torch.Tensor]:
        """points: B tensors (N_i, C) vehicle frame. Returns B tensors (N_i, C + channels + 1)."""
        index = painted_cameras(batch)
        maps = None
        if index.shape[0]:
            maps = self.head(self.neck(*self.backbone(batch.images[index[:, 0], index[:, 1]])))
        return paint_points(batch, points, index, maps, self.extra_channels)


def painted_cameras(batch: Batch) -> torch.Tensor:
    """(K, 2) ``(sample, camera)`` indices of the images that paint points: valid cameras of
    samples that have the camera modality."""
    use = batch.camera_valid & batch.has(Modality.CAMERA)[:, None]
    return use.nonzero()


def paint_points(batch: Batch, points: list[torch.Tensor], index: torch.Tensor,
                 maps: torch.Tensor | None, extra_channels: int) -> list[torch.Tensor]:
    """Project ``points`` (B tensors (N_i, C), vehicle frame) into the cameras of ``index``
    (:func:`painted_cameras`) and append the bilinearly sampled features of ``maps`` (K, C_f,
    h, w), one map per row of ``index``, and a painted flag: B tensors
    (N_i, C + extra_channels), ``extra_channels = C_f + 1``.

    The ONNX Runtime detector runs this too, around the image features of its painter graph:
    the projection stays outside ONNX (docs/export.md).
    """
    H_img, W_img = batch.images.shape[-2:]
    out = []
    for b, pts in enumerate(points):
        paint = pts.new_zeros((pts.shape[0], extra_channels))
        for n in (index[:, 0] == b).nonzero().flatten().tolist():
            c = int(index[n, 1])
            T = torch.linalg.inv(batch.T_vehicle_optical[b, c])
            cam = pts[:, :3] @ T[:3, :3].T + T[:3, 3]
            uvw = cam @ batch.intrinsics[b, c].T
            z = cam[:, 2]
            u = uvw[:, 0] / z.clamp(min=1e-3)
            v = uvw[:, 1] / z.clamp(min=1e-3)
            seen = (z > 0.1) & (u >= 0) & (u < W_img) & (v >= 0) & (v < H_img)
            seen = seen & (paint[:, -1] == 0)  # first camera that sees a point paints it
            if not bool(seen.any()):
                continue
            # grid_sample's normalised coords: -1 and 1 are the image's outer edges.
            grid = torch.stack([u[seen] / W_img * 2 - 1, v[seen] / H_img * 2 - 1], -1)
            sampled = F.grid_sample(maps[n:n + 1], grid.view(1, 1, -1, 2),
                                    align_corners=False)[0, :, 0].T
            flag = torch.ones_like(sampled[:, :1])
            paint = paint.index_put((seen.nonzero().flatten(),),
                                    torch.cat([sampled, flag], 1))
        out.append(torch.cat([pts, paint], 1))
    return out
