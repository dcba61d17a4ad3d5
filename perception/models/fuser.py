"""BEV fusers that know which modalities each sample has.

A sample without a modality never sees that encoder's output: its BEV map is replaced by a
learned per-modality "absent" embedding (concat fuser) or excluded from the per-cell softmax
(gated fuser), and the presence mask itself is an input. Zeros are never passed off as
features of an absent sensor.
"""

from __future__ import annotations

import torch
from torch import nn

from ..types import Modality
from .common import conv_bn_relu
from .config import FuserConfig


class ConcatFuser(nn.Module):
    """BEVFusion's concatenation + conv, with absent modalities masked.

    ``forward(features, present)``: features maps each modality to (B, C_m, H, W) float32;
    present is (B, M) bool in the order of ``modalities``. Returns (B, C_out, H, W).
    """

    def __init__(self, modalities: tuple[Modality, ...], channels: dict[Modality, int],
                 config: FuserConfig):
        super().__init__()
        self.modalities = modalities
        self.absent = nn.ParameterDict({m.value: nn.Parameter(torch.zeros(channels[m]))
                                        for m in modalities})
        c_in = sum(channels[m] for m in modalities) + len(modalities)
        self.fuse = nn.Sequential(conv_bn_relu(c_in, config.out_channels),
                                  conv_bn_relu(config.out_channels, config.out_channels))
        self.out_channels = config.out_channels

    def forward(self, features: dict[Modality, torch.Tensor], present: torch.Tensor
                ) -> torch.Tensor:
        maps, flags = self.fuser_inputs(features, present)
        return self.fuse(torch.cat([maps, flags], 1))

    def fuser_inputs(self, features: dict[Modality, torch.Tensor], present: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, sum C_m, H, W) maps, an absent modality's replaced by its learnt embedding,
        and (B, M, H, W) presence flags (1.0 where present): the convolution's input."""
        parts = []
        for i, m in enumerate(self.modalities):
            f = features[m]
            here = present[:, i].view(-1, 1, 1, 1)
            parts.append(torch.where(here, f, self.absent[m.value].view(1, -1, 1, 1).to(f.dtype)))
        ref = parts[0]
        flags = present.to(ref.dtype)[:, :, None, None].expand(-1, -1, *ref.shape[-2:])
        return torch.cat(parts, 1), flags

    @torch.no_grad()
    def load_single_modality(self, modality: Modality, state: dict[str, torch.Tensor]) -> None:
        """Start from the fuser of a model trained on ``modality`` alone (``state``: its
        ConcatFuser's tensors, keys relative to the fuser).

        That modality's input channels and presence flag take the source's weights; every
        other modality's input weights are zero. Until training moves them, the fused model
        computes exactly what the single-modality model did whenever ``modality`` is present,
        so fine-tuning starts from its accuracy instead of from a random fuser.
        """
        if modality not in self.modalities:
            raise ValueError(f"{modality.value} is not an input of this fuser")
        widths = [self.absent[m.value].numel() for m in self.modalities]
        i = self.modalities.index(modality)
        start = sum(widths[:i])
        width = widths[i]
        conv = self.fuse[0][0].weight
        source = state["fuse.0.0.weight"]
        if tuple(source.shape) != (conv.shape[0], width + 1, *conv.shape[2:]):
            raise ValueError(f"fuse.0.0.weight is {tuple(source.shape)}, expected "
                             f"{(conv.shape[0], width + 1, *conv.shape[2:])} for a "
                             f"{modality.value}-only fuser")
        conv.zero_()
        conv[:, start:start + width] = source[:, :width]
        conv[:, sum(widths) + i] = source[:, width]
        self.absent[modality.value].copy_(state[f"absent.{modality.value}"])
        own = self.state_dict()
        for key, value in state.items():
            if key.startswith("absent.") or key == "fuse.0.0.weight":
                continue
            if key not in own or own[key].shape != value.shape:
                raise ValueError(f"{key}: not in this fuser or of another shape")
            own[key].copy_(value)


class GatedFuser(nn.Module):
    """Per-cell softmax weights over the present modalities (absent ones get weight 0)."""

    def __init__(self, modalities: tuple[Modality, ...], channels: dict[Modality, int],
                 config: FuserConfig):
        super().__init__()
        self.modalities = modalities
        C = config.out_channels
        self.project = nn.ModuleDict({m.value: conv_bn_relu(channels[m], C)
                                      for m in modalities})
        self.gate = nn.ModuleDict({m.value: nn.Conv2d(C, 1, 3, 1, 1) for m in modalities})
        self.out = conv_bn_relu(C, C)
        self.out_channels = C

    def forward(self, features: dict[Modality, torch.Tensor], present: torch.Tensor
                ) -> torch.Tensor:
        projected, weights, mask = self._weigh(features, present)
        # where() rather than a product: an absent modality's (possibly non-finite) features
        # must not leak through 0 * inf.
        fused = sum(torch.where(mask[:, i:i + 1], weights[:, i:i + 1] * p, torch.zeros_like(p))
                    for i, p in enumerate(projected))
        return self.out(fused)

    def modality_weights(self, features: dict[Modality, torch.Tensor], present: torch.Tensor
                         ) -> torch.Tensor:
        """(B, M, H, W) per-cell softmax weight of each modality (0 where absent): where
        each sensor drives the fused features."""
        return self._weigh(features, present)[1]

    def _weigh(self, features: dict[Modality, torch.Tensor], present: torch.Tensor
               ) -> tuple[list[torch.Tensor], torch.Tensor, torch.Tensor]:
        projected = [self.project[m.value](features[m]) for m in self.modalities]
        logits = torch.cat([self.gate[m.value](p) for m, p in zip(self.modalities, projected)],
                           1)  # (B, M, H, W)
        mask = present[:, :, None, None].expand_as(logits)
        logits = logits.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(logits, 1)
        # A sample with nothing present has NaN weights; it yields no detections anyway.
        return projected, torch.nan_to_num(weights, nan=0.0), mask


class PresenceFilm(nn.Module):
    """Feature-wise affine modulation of the fused BEV map by the sensor subset (FiLM on the
    presence flags): one learnt scale and shift per channel for each of the 2^M subsets.

    ``forward(fused, present)``: fused (B, C, H, W), present (B, M) bool in the fuser's
    modality order; returns ``fused * (1 + scale[subset]) + shift[subset]``. The fuser's
    presence flags only add a constant per subset before its first convolution; this lets the
    backbone and head see features rescaled for what each subset can deliver. The table
    starts at zero, so a model taking the rest of its weights from a checkpoint without it
    starts as that model.
    """

    def __init__(self, num_modalities: int, channels: int):
        super().__init__()
        self.table = nn.Embedding(2 ** num_modalities, 2 * channels)
        nn.init.zeros_(self.table.weight)
        self.register_buffer("bit", 2 ** torch.arange(num_modalities), persistent=False)

    def forward(self, fused: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        subset = (present.long() * self.bit).sum(1)  # (B,) subset index
        scale, shift = self.table(subset).to(fused.dtype)[:, :, None, None].chunk(2, 1)
        return fused * (1 + scale) + shift


def build_fuser(modalities: tuple[Modality, ...], channels: dict[Modality, int],
                config: FuserConfig) -> nn.Module:
    if config.kind == "gated":
        return GatedFuser(modalities, channels, config)
    return ConcatFuser(modalities, channels, config)


def modality_dropout(present: torch.Tensor, probability: float,
                     generator: torch.Generator | None = None, mode: str = "one",
                     size_weights: tuple[float, ...] = (),
                     droppable: torch.Tensor | None = None) -> torch.Tensor:
    """Training-time dropout. With ``probability``, a sample with >= 2 present modalities
    loses one of them (``mode="one"``, chosen uniformly) or keeps a non-empty proper subset of
    them (``mode="subset"``): uniformly over the subsets, or with ``size_weights`` the number
    kept first (``size_weights[n - 1]`` for n kept; missing entries weigh 0), then a subset of
    that size uniformly (uniformly over subsets when no possible size has weight).
    present: (B, M) bool; droppable: ``mode="one"`` only, (M,) bool, the columns that may be
    removed (None: every column); returns a new mask."""
    if probability <= 0.0:
        return present
    out = present.clone()
    for b in range(present.shape[0]):
        have = present[b].nonzero().flatten()
        k = have.numel()
        if k < 2 or float(torch.rand((), generator=generator)) >= probability:
            continue
        if mode == "subset":
            keep = have[_draw_subset(k, size_weights, generator)]
            out[b] = False
            out[b, keep] = True
        else:
            can = have if droppable is None else have[droppable[have]]
            if can.numel() > 0:
                out[b, can[int(torch.randint(can.numel(), (), generator=generator))]] = False
    return out


def _draw_subset(k: int, size_weights: tuple[float, ...],
                 generator: torch.Generator | None) -> torch.Tensor:
    """Indices (into 0 .. k-1) of a non-empty proper subset of k >= 2 items."""
    weights = torch.zeros(k - 1)
    given = size_weights[:k - 1]
    weights[:len(given)] = torch.tensor(given, dtype=torch.float32)
    if float(weights.sum()) <= 0:
        # Bit masks 1 .. 2^k - 2: every non-empty proper subset, uniformly.
        bits = 1 + int(torch.randint(2 ** k - 2, (), generator=generator))
        return torch.tensor([j for j in range(k) if bits >> j & 1])
    size = 1 + int(torch.multinomial(weights, 1, generator=generator))
    return torch.randperm(k, generator=generator)[:size]
