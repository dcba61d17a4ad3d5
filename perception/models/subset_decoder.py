"""A second BEV decoder for the samples that have no lidar (per-subset heads).

A fused map built without lidar (camera, radar or both) is far weaker and differently
distributed than one with lidar, yet a single SECOND-FPN + head must place boxes from both.
With ``ModelConfig.decoder_without_lidar`` the :class:`~perception.models.detector.FusionDetector`
keeps its backbone and head for samples with lidar and sends the others through a
:class:`BevDecoder` of the same shape, usually started from the shared one
(``train.init_from: {modules: [backbone, head], into: without_lidar}``) so that the model
starts as the shared-decoder one.

Each decoder sees only its own samples in eager mode (:func:`decode_rows`); an exported graph
runs both and picks per sample (:func:`select_rows`), which gives the same numbers.
"""

from __future__ import annotations

import torch
from torch import nn

from .backbone import SecondFPN
from .config import BackboneConfig, HeadConfig
from .heads import CenterHead, TaskOutput


class BevDecoder(nn.Module):
    """SECOND-FPN + CenterPoint head: fused BEV map (B, C, H, W) -> one
    :class:`~perception.models.heads.TaskOutput` per class group, at the backbone's stride."""

    def __init__(self, in_channels: int, backbone: BackboneConfig, head: HeadConfig):
        super().__init__()
        self.backbone = SecondFPN(in_channels, backbone)
        self.head = CenterHead(self.backbone.out_channels, head)

    def forward(self, fused: torch.Tensor) -> list[TaskOutput]:
        return self.head(self.backbone(fused))


def decode_rows(fused: torch.Tensor, rows: torch.Tensor, main: nn.Module, other: nn.Module
                ) -> list[TaskOutput]:
    """Decode ``fused`` (B, C, H, W): the samples where ``rows`` (B,) bool is True with
    ``other``, the rest with ``main``; each decoder runs on its own samples only."""
    if not bool(rows.any()):
        return main(fused)
    if bool(rows.all()):
        return other(fused)
    main_idx, other_idx = torch.nonzero(~rows).flatten(), torch.nonzero(rows).flatten()
    back = torch.argsort(torch.cat([main_idx, other_idx]))  # concatenated -> batch order
    return [TaskOutput(torch.cat([m.heatmap, o.heatmap])[back],
                       torch.cat([m.regression, o.regression])[back])
            for m, o in zip(main(fused[main_idx]), other(fused[other_idx]))]


def select_rows(rows: torch.Tensor, main: list[TaskOutput], other: list[TaskOutput]
                ) -> list[TaskOutput]:
    """Per sample, ``other``'s output where ``rows`` (B,) bool is True, else ``main``'s (both
    computed on every sample: the traceable form of :func:`decode_rows`)."""
    pick = rows.reshape(-1, 1, 1, 1)
    return [TaskOutput(torch.where(pick, o.heatmap, m.heatmap),
                       torch.where(pick, o.regression, m.regression))
            for m, o in zip(main, other)]

