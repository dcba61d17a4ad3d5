"""SECOND-FPN-style 2D BEV backbone."""

from __future__ import annotations

import torch
from torch import nn

from .common import conv_bn_relu
from .config import BackboneConfig


class SecondFPN(nn.Module):
    """Strided conv stages, each upsampled (transposed conv) to the first stage's resolution
    and concatenated.

    Input (B, C_in, H, W); output (B, sum(upsample_channels), H / s, W / s) with
    ``s = layer_strides[0] / upsample_strides[0]`` (x stays along H).
    """

    def __init__(self, in_channels: int, config: BackboneConfig):
        super().__init__()
        stages, ups = [], []
        c_prev = in_channels
        total_stride = 1
        for n, stride, c, c_up in zip(config.layer_nums, config.layer_strides,
                                      config.channels, config.upsample_channels):
            layers = [conv_bn_relu(c_prev, c, stride)] + [conv_bn_relu(c, c) for _ in range(n)]
            stages.append(nn.Sequential(*layers))
            total_stride *= stride
            # Upsample each stage to the resolution of the first stage.
            factor = total_stride // config.layer_strides[0]
            if factor >= 1:
                ups.append(nn.Sequential(nn.ConvTranspose2d(c, c_up, factor, factor, bias=False)
                                         if factor > 1 else nn.Conv2d(c, c_up, 1, bias=False),
                                         nn.BatchNorm2d(c_up), nn.ReLU(inplace=True)))
            c_prev = c
        self.stages = nn.ModuleList(stages)
        self.ups = nn.ModuleList(ups)
        self.out_channels = sum(config.upsample_channels)
        self.out_stride = config.layer_strides[0]

    def forward(self, bev: torch.Tensor) -> torch.Tensor:
        outs = []
        x = bev
        for stage, up in zip(self.stages, self.ups):
            x = stage(x)
            outs.append(up(x))
        return torch.cat(outs, 1)
