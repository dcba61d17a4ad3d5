"""The dense parts of a detector as small modules with tensor-only inputs: what goes into
ONNX. Everything between them (voxelization, per-pillar reductions, frustum geometry and
bev_pool, decoding and NMS) stays with :mod:`perception.ops` and runs in
:mod:`perception.export.runtime`, as in Autoware's CenterPoint and NVIDIA's CUDA-BEVFusion.

Graph names (``<prefix>`` is empty, or ``late.<modality>.`` for a branch of a late-fusion
model):

====================================  ========================================================
``<prefix>lidar.pfn.<i>``             pillar feature net layer i of the lidar encoder: per
                                      point ``x (N, c_in) -> (N, c_out)``; between layers the
                                      per-pillar max (``ops.scatter_reduce``) runs outside
``<prefix>radar.pfn.<i>``             the same for the radar encoder
``<prefix>camera.net``                image backbone + FPN + depth net:
                                      ``images (N, 3, H, W)`` RGB in [0, 1] ->
                                      ``depth (N, D, h, w)`` (softmax over D), ``context
                                      (N, C, h, w)``
``<prefix>painter.net``               early fusion: ``images (N, 3, H, W) -> features
                                      (N, C, h, w)`` sampled at projected lidar points
``<prefix>bev``                       fuser + BEV backbone + head: ``bev_<modality>
                                      (B, C_m, H, W)`` per encoder and ``present (B, M)``
                                      bool (a missing sensor's map is ignored) ->
                                      ``heatmap_<t> (B, n_cls, h, w)`` logits,
                                      ``regression_<t> (B, 10, h, w)`` per task t
====================================  ========================================================
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..models.camera import RAY_CHANNELS
from ..models.fuser import ConcatFuser
from ..models.subset_decoder import select_rows
from ..types import Modality


GRAPHS_REVISION = 2
"""Raised when the graphs exported for the same weights change (2: the split fuser), so the
exports cached by :func:`~perception.export.runtime.onnx_detector_for` are made again."""


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph: its module, sample inputs, and input/output names with dynamic axes.

    Attributes:
        name: graph name (file ``<name>.onnx``).
        module: the module to export (eval mode).
        inputs: sample input tensors, in order.
        input_names, output_names: ONNX names.
        dynamic_axes: ``{name: {axis: label}}`` for inputs and outputs.
    """

    name: str
    module: nn.Module
    inputs: tuple[torch.Tensor, ...]
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: dict[str, dict[int, str]] = field(default_factory=dict)


class CameraNet(nn.Module):
    """Backbone + FPN + depth net of an LSS camera encoder; the view transform stays out.

    Inputs after the images, computed by the runtime as it does the frustum:
    - with camera-aware depth, the (N, 4, h, w) pixel geometry
      (:meth:`~perception.models.camera.LSSCameraEncoder.pixel_geometry`), from the
      calibration;
    - with the lidar depth prior, the (N, D + 1, h, w) lidar depth
      (:meth:`~perception.models.camera.LSSCameraEncoder.lidar_depth_input`), from the points.
    """

    def __init__(self, encoder: nn.Module):
        super().__init__()
        self.backbone, self.neck, self.depth_net = encoder.backbone, encoder.neck, encoder.depth_net
        self.depth_prior = encoder.depth_prior
        self.aware = encoder.config.camera_aware_depth
        self.D = encoder.D

    def forward(self, images: torch.Tensor, *extra: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.neck(*self.backbone(images))
        if self.aware:
            feats = torch.cat([feats, extra[0]], 1)
        out = self.depth_net(feats)
        logits = out[:, :self.D]
        if self.depth_prior is not None:
            logits = logits + self.depth_prior(extra[-1])
        return logits.softmax(1), out[:, self.D:]


class PainterNet(nn.Module):
    """Image features of point painting (backbone + FPN + 1x1 head)."""

    def __init__(self, painter: nn.Module):
        super().__init__()
        self.backbone, self.neck, self.head = painter.backbone, painter.neck, painter.head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.neck(*self.backbone(images)))


class SplitInputConcatFuser(nn.Module):
    """A :class:`~perception.models.fuser.ConcatFuser` whose first convolution is split in
    two, one over the concatenated maps and one over the presence flags, summed.

    The same function up to the order of the float sums (a convolution is linear in its input
    channels). The maps' channels are a multiple of 8, so ONNX Runtime runs both parts in its
    blocked (NCHWc) kernels; one convolution over maps and flags (64 + 64 + 32 + 3 channels)
    falls back to its generic kernel, 1.2x slower for the shipped model (25 + 1 vs 32 ms on
    2 threads).
    """

    def __init__(self, fuser: ConcatFuser):
        super().__init__()
        self.fuser = fuser
        conv, self.rest = fuser.fuse[0][0], nn.Sequential(*fuser.fuse[0][1:], *fuser.fuse[1:])
        maps = conv.in_channels - len(fuser.modalities)  # the presence flags come last
        self.maps_conv = _conv_like(conv, conv.weight[:, :maps])
        self.flags_conv = _conv_like(conv, conv.weight[:, maps:])

    def forward(self, features: dict[Modality, torch.Tensor], present: torch.Tensor
                ) -> torch.Tensor:
        maps, flags = self.fuser.fuser_inputs(features, present)
        return self.rest(self.maps_conv(maps) + self.flags_conv(flags))


def _conv_like(conv: nn.Conv2d, weight: torch.Tensor) -> nn.Conv2d:
    out = nn.Conv2d(weight.shape[1], conv.out_channels, conv.kernel_size, conv.stride,
                    conv.padding, bias=False)
    out.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)
    return out


class BevNet(nn.Module):
    """Fuser + SECOND-FPN + CenterPoint head of a :class:`FusionDetector`, one BEV map per
    encoder in ``detector.bev_modalities`` order and the presence mask as inputs."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.modalities: tuple[Modality, ...] = tuple(detector.bev_modalities)
        fuser = detector.fuser
        if isinstance(fuser, ConcatFuser):
            fuser = SplitInputConcatFuser(fuser)
        self.fuser, self.backbone, self.head = fuser, detector.backbone, detector.head
        self.presence_film = detector.presence_film
        self.without_lidar = detector.without_lidar

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *maps, present = inputs
        features = dict(zip(self.modalities, maps))
        fused = self.fuser(features, present)
        if self.presence_film is not None:
            fused = self.presence_film(fused, present)
        outs = self.head(self.backbone(fused))
        if self.without_lidar is not None:  # both decoders run; each sample takes its own
            has_lidar = present[:, self.modalities.index(Modality.LIDAR)]
            outs = select_rows(~has_lidar, outs, self.without_lidar(fused))
        return tuple(t for task in outs for t in (task.heatmap, task.regression))


def bev_input_names(modalities: tuple[Modality, ...]) -> tuple[str, ...]:
    return tuple(f"bev_{m.value}" for m in modalities) + ("present",)


def bev_output_names(num_tasks: int) -> tuple[str, ...]:
    return tuple(n for t in range(num_tasks) for n in (f"heatmap_{t}", f"regression_{t}"))


def detector_graphs(detector: nn.Module, prefix: str = "", batch: int = 2) -> list[GraphSpec]:
    """Every dense graph of a :class:`~perception.models.detector.FusionDetector` (one branch
    of a late-fusion model), with sample inputs of the right shapes."""
    specs: list[GraphSpec] = []
    config = detector.config
    H, W = config.grid.shape_hw
    encoders = {Modality.LIDAR: detector.lidar, Modality.CAMERA: detector.camera,
                Modality.RADAR: detector.radar}
    for modality in (Modality.LIDAR, Modality.RADAR):
        encoder = encoders[modality]
        if encoder is None or not hasattr(encoder, "pfn"):
            continue  # the sparse (spconv) lidar encoder runs in torch
        widths = [layer[0].in_features for layer in encoder.pfn.layers]
        for i, (layer, c_in) in enumerate(zip(encoder.pfn.layers, widths)):
            specs.append(GraphSpec(
                f"{prefix}{modality.value}.pfn.{i}", layer, (torch.randn(64, c_in),), ("x",),
                ("y",), {"x": {0: "points"}, "y": {0: "points"}}))
    image_hw = None
    if detector.camera is not None:
        image_hw = tuple(config.camera.image_size_hw)
        inputs, names = (torch.rand(2, 3, *image_hw),), ("images",)
        h, w = detector.camera.feature_hw(image_hw)
        if config.camera.camera_aware_depth:
            inputs += (torch.randn(2, RAY_CHANNELS, h, w),)
            names += ("pixel_geometry",)
        if config.camera.lidar_depth_prior:
            inputs += (torch.rand(2, detector.camera.D + 1, h, w),)
            names += ("lidar_depth",)
        specs.append(GraphSpec(
            f"{prefix}camera.net", CameraNet(detector.camera), inputs, names,
            ("depth", "context"), {n: {0: "images"} for n in names + ("depth", "context")}))
    if detector.painter is not None:
        image_hw = tuple(config.painting.image_size_hw)
        specs.append(GraphSpec(
            f"{prefix}painter.net", PainterNet(detector.painter), (torch.rand(2, 3, *image_hw),),
            ("images",), ("features",), {n: {0: "images"} for n in ("images", "features")}))
    bev = BevNet(detector)
    channels = {m: getattr(encoders[m], "out_channels") for m in bev.modalities}
    maps = tuple(torch.randn(batch, channels[m], H, W) for m in bev.modalities)
    present = torch.ones(batch, len(bev.modalities), dtype=torch.bool)
    present[0, 0] = len(bev.modalities) == 1  # a sample without its first modality
    names_in = bev_input_names(bev.modalities)
    names_out = bev_output_names(len(config.head.tasks))
    specs.append(GraphSpec(f"{prefix}bev", bev, maps + (present,), names_in, names_out,
                           {n: {0: "batch"} for n in names_in + names_out}))
    return specs
