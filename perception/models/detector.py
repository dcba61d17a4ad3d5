"""Detector assembly: encoders -> fuser -> BEV backbone -> CenterPoint head -> decode.

:func:`build_detector` builds, from a :class:`~perception.models.config.ModelConfig`:

- ``fusion: intermediate`` -> :class:`FusionDetector` (one encoder per modality, a BEV fuser);
- ``fusion: early`` -> :class:`FusionDetector` whose lidar points are painted with image
  features (:class:`~perception.models.painting.PointPainter`) before the lidar encoder;
- ``fusion: late`` -> :class:`LateFusionDetector` (one single-modality detector per modality,
  boxes merged by NMS or weighted box fusion).

Every detector has the same face: ``forward(batch)``, ``loss(batch, output)``,
``decode(batch, output) -> list[Detections]`` and ``predict(frames)``, and reports in each
:class:`~perception.types.Detections` the modalities it actually used for that frame.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, ValidationError
from ..types import Detections, Modality, SensorFrame
from .backbone import SecondFPN
from .batch import MODALITY_ORDER, Batch, BatchSpec, collate_frames
from .camera import CameraFeatures, LSSCameraEncoder
from .config import FuserConfig, ModelConfig
from .fuser import PresenceFilm, build_fuser, modality_dropout
from .heads import CenterHead, DecodedBoxes, TaskOutput, decode
from .late_fusion import merge_boxes
from .lidar import build_lidar_encoder
from .losses import LossBreakdown, center_losses
from .painting import PointPainter
from .radar import RadarPillarEncoder
from .subset_decoder import BevDecoder, decode_rows
from .targets import build_targets


@dataclass
class DetectorOutput:
    """Raw output of one forward pass.

    Attributes:
        tasks: head output per class group (late fusion: of the first branch).
        present: (B, 3) bool, modalities used per sample (:data:`MODALITY_ORDER` columns),
            after modality dropout.
        camera: camera features (for the depth loss), or None.
        branches: late fusion only: modality -> head output of that branch.
    """

    tasks: list[TaskOutput]
    present: torch.Tensor
    camera: CameraFeatures | None = None
    branches: dict[Modality, list[TaskOutput]] | None = None


def batch_spec(config: ModelConfig) -> BatchSpec:
    """What a model built from ``config`` needs collated."""
    image_size = None
    if config.camera is not None:
        image_size = tuple(config.camera.image_size_hw)
    elif config.painting is not None:
        image_size = tuple(config.painting.image_size_hw)
    lidar_columns = tuple(config.lidar.columns) if config.lidar is not None else None
    if lidar_columns is None and config.camera is not None and config.camera.depth_loss_weight > 0:
        lidar_columns = ()  # x, y, z only: depth targets for the camera, never a model input
    return BatchSpec(lidar_columns=lidar_columns, image_size_hw=image_size,
                     radar=config.radar is not None)


def spconv_build() -> dict[str, object]:
    """The installed spconv: ``{"package": "spconv-cu126" | "spconv" | None, "version",
    "cuda": "12.6" | None}`` (read from the package metadata, without importing spconv)."""
    import re
    from importlib import metadata

    for dist in metadata.distributions():
        name = (dist.metadata.get("Name") or "").lower()
        m = re.fullmatch(r"spconv(?:-cu(\d+)(\d))?", name)
        if m:
            cuda = f"{m.group(1)}.{m.group(2)}" if m.group(1) else None
            return {"package": name, "version": dist.version, "cuda": cuda}
    return {"package": None, "version": None, "cuda": None}


def check_device(config: ModelConfig, device: torch.device | str | None) -> None:
    """Refuse, with a clear error, a sparse (spconv) lidar encoder on CUDA when the installed
    spconv is a CPU-only build: it would otherwise fail deep inside spconv."""
    if device is None or config.lidar is None or config.lidar.encoder != "sparse":
        return
    if torch.device(device).type != "cuda":
        return
    build = spconv_build()
    if build["package"] is not None and build["cuda"] is None:
        raise ConfigError(
            f"lidar.encoder: sparse on {device} needs a CUDA build of spconv, but "
            f"{build['package']} {build['version']} (CPU only) is installed; run "
            f"`make setup CUDA=<version>` (e.g. CUDA=12.6) or pip install spconv-cu126")


class _DetectorBase(nn.Module):
    config: ModelConfig

    def to(self, *args, **kwargs):
        device = torch._C._nn._parse_to(*args, **kwargs)[0]
        check_device(self.config, device)
        return super().to(*args, **kwargs)

    def cuda(self, device=None):
        check_device(self.config, torch.device("cuda", device) if isinstance(device, int)
                     else (device or "cuda"))
        return super().cuda(device)

    def drop_modalities(self, used: torch.Tensor) -> torch.Tensor:
        """``used`` (B, 3) after the config's modality dropout (training only)."""
        fuser = self.config.fuser
        if not self.training or fuser.modality_dropout <= 0:
            return used
        return modality_dropout(used, fuser.modality_dropout, mode=fuser.modality_dropout_mode,
                                size_weights=fuser.subset_size_weights,
                                droppable=droppable_columns(fuser))

    @property
    def spec(self) -> BatchSpec:
        return batch_spec(self.config)

    @property
    def modalities(self) -> tuple[Modality, ...]:
        have = self.config.modalities()
        return tuple(m for m in MODALITY_ORDER if m in have)

    def used_mask(self, batch: Batch) -> torch.Tensor:
        """(B, 3) bool: present in the sample and consumed by this model."""
        cols = torch.tensor([m in self.modalities for m in MODALITY_ORDER],
                            device=batch.present.device)
        return batch.present & cols[None, :]

    @torch.no_grad()
    def predict(self, frames: Sequence[SensorFrame],
                drop: frozenset[Modality] = frozenset()) -> list[Detections]:
        """Detect in ``frames`` (eval mode), optionally ignoring the ``drop`` modalities."""
        device = next(self.parameters()).device
        batch = collate_frames(frames, self.spec, device=device)  # images resized there
        if drop:
            batch = batch.without(drop)
        was_training = self.training
        self.eval()
        try:
            return self.decode(batch, self(batch))
        finally:
            self.train(was_training)

    def _detections(self, batch: Batch, decoded: list[DecodedBoxes], used: torch.Tensor
                    ) -> list[Detections]:
        out = []
        for b, d in enumerate(decoded):
            mods = frozenset(m for i, m in enumerate(MODALITY_ORDER) if bool(used[b, i]))
            if not self._can_detect(used[b]):
                out.append(Detections.empty(batch.stamps_ns[b], frozenset()))
                continue
            out.append(to_detections(batch.stamps_ns[b], d, mods))
        return out

    def _can_detect(self, used_row: torch.Tensor) -> bool:
        return bool(used_row.any())


class FusionDetector(_DetectorBase):
    """Encoders -> fuser -> SECOND-FPN -> CenterPoint head (intermediate or early fusion)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        grid = config.grid
        self.painter = PointPainter(config.painting) if config.painting is not None else None
        extra = self.painter.extra_channels if self.painter is not None else 0
        self.lidar = (build_lidar_encoder(config.lidar, grid, extra)
                      if config.lidar is not None else None)
        self.camera = LSSCameraEncoder(config.camera, grid) if config.camera is not None else None
        self.radar = RadarPillarEncoder(config.radar, grid) if config.radar is not None else None
        channels = {Modality.LIDAR: getattr(self.lidar, "out_channels", 0),
                    Modality.CAMERA: getattr(self.camera, "out_channels", 0),
                    Modality.RADAR: getattr(self.radar, "out_channels", 0)}
        self.bev_modalities = tuple(m for m, enc in zip(MODALITY_ORDER,
                                                        (self.lidar, self.camera, self.radar))
                                    if enc is not None)
        self.fuser = build_fuser(self.bev_modalities, channels, config.fuser)
        self.presence_film = (PresenceFilm(len(self.bev_modalities), self.fuser.out_channels)
                              if config.fuser.presence_film else None)
        self.backbone = SecondFPN(self.fuser.out_channels, config.backbone)
        self.head = CenterHead(self.backbone.out_channels, config.head)
        self.head_stride = self.backbone.out_stride
        self.without_lidar = (BevDecoder(self.fuser.out_channels, config.backbone, config.head)
                              if config.decoder_without_lidar else None)

    def _can_detect(self, used_row: torch.Tensor) -> bool:
        # Early fusion paints lidar points: without lidar there is nothing to detect from.
        if self.painter is not None:
            return bool(used_row[MODALITY_ORDER.index(Modality.LIDAR)])
        return bool(used_row.any())

    def forward(self, batch: Batch) -> DetectorOutput:
        used = self.used_mask(batch)
        used = self.drop_modalities(used)
        batch = dataclasses.replace(batch, present=used)
        features, camera_features = self.encode(batch)
        return DetectorOutput(self.fuse_and_detect(features, used), used, camera_features)

    def encode(self, batch: Batch) -> tuple[dict[Modality, torch.Tensor], CameraFeatures | None]:
        """Each encoder's BEV map (B, C_m, H, W), reading only samples where its modality is
        present (``batch.present``), and the camera features (for the depth loss)."""
        features: dict[Modality, torch.Tensor] = {}
        camera_features = None
        if self.lidar is not None:
            points = _only_present(batch.lidar_points, batch.has(Modality.LIDAR))
            if self.painter is not None:
                points = self.painter(batch, points)
            features[Modality.LIDAR] = self.lidar(points)
        if self.camera is not None:
            camera_features = self.camera(batch)
            features[Modality.CAMERA] = camera_features.bev
        if self.radar is not None:
            features[Modality.RADAR] = self.radar(
                _only_present(batch.radar_points, batch.has(Modality.RADAR)))
        return features, camera_features

    def fuse(self, features: dict[Modality, torch.Tensor], used: torch.Tensor) -> torch.Tensor:
        """Fused BEV map (B, C, H, W) of the encoders' maps; used: (B, 3) bool
        (:data:`MODALITY_ORDER` columns) says which modalities each sample has."""
        cols = [MODALITY_ORDER.index(m) for m in self.bev_modalities]
        fused = self.fuser(features, used[:, cols])
        if self.presence_film is not None:
            fused = self.presence_film(fused, used[:, cols])
        return fused

    def fuse_and_detect(self, features: dict[Modality, torch.Tensor], used: torch.Tensor
                        ) -> list[TaskOutput]:
        """Fuser -> BEV backbone -> head."""
        return self.decode_fused(self.fuse(features, used), used)

    def decode_fused(self, fused: torch.Tensor, used: torch.Tensor) -> list[TaskOutput]:
        """BEV backbone -> head of the fused map (B, C, H, W); the samples without lidar in
        ``used`` (B, 3) go through ``without_lidar`` when the model has it."""
        if self.without_lidar is None:
            return self._shared_decoder(fused)
        return decode_rows(fused, ~used[:, MODALITY_ORDER.index(Modality.LIDAR)],
                           self._shared_decoder, self.without_lidar)

    def _shared_decoder(self, fused: torch.Tensor) -> list[TaskOutput]:
        return self.head(self.backbone(fused))

    def loss(self, batch: Batch, output: DetectorOutput):
        targets = build_targets(batch.gt_boxes, batch.gt_labels, batch.gt_velocities,
                                self.config.head, self.config.grid, self.head_stride)
        result = center_losses(output.tasks, targets, self.config.head, self.config.grid,
                               self.head_stride)
        weight = self.config.camera.depth_loss_weight if self.config.camera is not None else 0
        if weight > 0 and output.camera is not None:
            depth = self.camera.depth_loss(output.camera, batch)
            result.total = result.total + weight * depth
            result.parts["depth"] = float(depth.detach())
            result.parts["total"] = float(result.total.detach())
        return result

    def decode(self, batch: Batch, output: DetectorOutput) -> list[Detections]:
        decoded = decode(output.tasks, self.config.head, self.config.grid, self.head_stride)
        return self._detections(batch, decoded, output.present)


class LateFusionDetector(_DetectorBase):
    """One single-modality :class:`FusionDetector` per modality; boxes merged per frame."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        branches = {}
        for m in MODALITY_ORDER:
            if m not in config.modalities():
                continue
            single = dataclasses.replace(
                config, fusion="intermediate",
                lidar=config.lidar if m is Modality.LIDAR else None,
                camera=config.camera if m is Modality.CAMERA else None,
                radar=config.radar if m is Modality.RADAR else None)
            branches[m.value] = FusionDetector(single)
        self.branches = nn.ModuleDict(branches)

    def forward(self, batch: Batch) -> DetectorOutput:
        used = self.used_mask(batch)
        used = self.drop_modalities(used)
        batch = dataclasses.replace(batch, present=used)
        outs = {Modality(k): branch(batch) for k, branch in self.branches.items()}
        first = next(iter(outs.values()))
        return DetectorOutput(first.tasks, used, None,
                              {m: o.tasks for m, o in outs.items()})

    def loss(self, batch: Batch, output: DetectorOutput):
        total = None
        parts: dict[str, float] = {}
        for k, branch in self.branches.items():
            m = Modality(k)
            # A branch learns only from samples where its modality was present.
            keep = output.present[:, MODALITY_ORDER.index(m)]
            if not bool(keep.any()):
                continue
            idx = keep.nonzero().flatten()
            sub_batch = batch.rows(idx)
            sub_out = DetectorOutput([TaskOutput(t.heatmap[idx], t.regression[idx])
                                      for t in output.branches[m]], output.present[idx])
            res = branch.loss(sub_batch, sub_out)
            total = res.total if total is None else total + res.total
            parts.update({f"{k}/{name}": v for name, v in res.parts.items()})
        if total is None:  # nothing present anywhere: a zero that still reaches every param
            total = sum(p.sum() * 0.0 for p in self.parameters())
        parts["total"] = float(total.detach())
        return LossBreakdown(total, parts)

    def decode_branches(self, output: DetectorOutput) -> dict[Modality, list[DecodedBoxes]]:
        """Each branch's decoded boxes per sample, before the merge (absent ones included)."""
        return {Modality(k): decode(output.branches[Modality(k)], branch.config.head,
                                    branch.config.grid, branch.head_stride)
                for k, branch in self.branches.items()}

    def decode(self, batch: Batch, output: DetectorOutput) -> list[Detections]:
        per_branch = self.decode_branches(output)
        merged = []
        for b in range(batch.batch_size):
            parts = [per_branch[m][b] for m in per_branch
                     if bool(output.present[b, MODALITY_ORDER.index(m)])]
            merged.append(merge_boxes(parts, self.config.late_merge,
                                      self.config.late_iou_threshold,
                                      self.config.head.max_detections))
        return self._detections(batch, merged, output.present)


def to_detections(stamp_ns: int, decoded: DecodedBoxes, modalities: frozenset[Modality]
                  ) -> Detections:
    """The typed, NumPy :class:`Detections` of one sample's decoded boxes."""
    return Detections(
        stamp_ns=stamp_ns,
        boxes=decoded.boxes.detach().cpu().numpy().astype(np.float32),
        scores=decoded.scores.detach().cpu().numpy().astype(np.float32).clip(0, 1),
        labels=decoded.labels.detach().cpu().numpy().astype(np.int32),
        velocities=decoded.velocities.detach().cpu().numpy().astype(np.float32),
        modalities=modalities)


def droppable_columns(config: FuserConfig) -> torch.Tensor | None:
    """(3,) bool over :data:`MODALITY_ORDER`: the modalities modality dropout may remove
    (None: any)."""
    if not config.dropout_modalities:
        return None
    return torch.tensor([m in config.dropout_modalities for m in MODALITY_ORDER])


def _only_present(points: list[torch.Tensor], present: torch.Tensor) -> list[torch.Tensor]:
    """Absent samples get an empty tensor: their data is never read."""
    return [p if bool(present[b]) else p[:0] for b, p in enumerate(points)]


def build_detector(config: ModelConfig, device: torch.device | str | None = None
                   ) -> _DetectorBase:
    """The detector described by ``config`` (explicit: no registry), checked against the
    ``device`` it is meant for (see :func:`check_device`; moving it there with ``.to`` checks
    too)."""
    if not isinstance(config, ModelConfig):
        raise ValidationError(f"build_detector: expected a ModelConfig, got "
                              f"{type(config).__name__}")
    check_device(config, device)
    if config.fusion == "late":
        return LateFusionDetector(config)
    return FusionDetector(config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
