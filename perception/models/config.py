"""Typed model configuration (the ``model:`` section of ``configs/models/*.yaml``).

Every size is in metres and every grid follows one convention: the BEV tensor is
``(B, C, H, W)`` with **x forward along H** and y left along W; cell ``(h, w)`` covers
``x in [x_min + h * dx, x_min + (h + 1) * dx)`` and ``y in [y_min + w * dy, ...)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ..types import Boxes3D, Modality, ObjectClass


@dataclass
class GridConfig:
    """The BEV grid shared by every encoder.

    Attributes:
        point_range_m: ``(x_min, y_min, z_min, x_max, y_max, z_max)`` in the vehicle frame.
        cell_size_m: ``(dx, dy)`` BEV cell size; the pillar size of the lidar encoder.
    """

    point_range_m: tuple[float, float, float, float, float, float] = (
        -32.0, -32.0, -3.0, 32.0, 32.0, 3.0)
    cell_size_m: tuple[float, float] = field(default=(0.5, 0.5), metadata={"gt": 0.0})

    @property
    def shape_hw(self) -> tuple[int, int]:
        """(H, W): cells along x and along y."""
        r = self.point_range_m
        return (int(round((r[3] - r[0]) / self.cell_size_m[0])),
                int(round((r[4] - r[1]) / self.cell_size_m[1])))

    def validate(self) -> None:
        r = self.point_range_m
        if not (r[3] > r[0] and r[4] > r[1] and r[5] > r[2]):
            raise ValueError(f"point_range_m: max must exceed min on every axis, got {r}")
        for axis, size in zip("xy", self.cell_size_m):
            span = r[3] - r[0] if axis == "x" else r[4] - r[1]
            if abs(span / size - round(span / size)) > 1e-6:
                raise ValueError(f"cell_size_m: the {axis} span {span} m is not a whole "
                                 f"number of {size} m cells")


@dataclass
class LidarConfig:
    """Lidar encoder.

    Attributes:
        encoder: ``pillar`` (dynamic pillars, default) or ``sparse`` (spconv SECOND-style).
        columns: point columns fed to the encoder besides x, y, z (missing ones read as 0).
        pillar_channels: widths of the pillar feature net layers.
        voxel_size_z_m: voxel height of the sparse encoder.
        sparse_channels: stage widths of the sparse encoder (each stage halves z, x, y after
            the first).
        max_voxels: bound on voxels per sample (sparse encoder).
        max_points_per_voxel: points kept per voxel (sparse encoder).
    """

    encoder: Literal["pillar", "sparse"] = "pillar"
    columns: tuple[str, ...] = ("intensity", "time_offset_s")
    pillar_channels: tuple[int, ...] = field(default=(32, 64), metadata={"gt": 0,
                                                                          "min_len": 1})
    voxel_size_z_m: float = field(default=0.25, metadata={"gt": 0.0})
    sparse_channels: tuple[int, ...] = field(default=(16, 32, 64), metadata={"gt": 0,
                                                                             "min_len": 2})
    max_voxels: int = field(default=40000, metadata={"gt": 0})
    max_points_per_voxel: int = field(default=8, metadata={"gt": 0})


@dataclass
class PaintingConfig:
    """Early fusion: lidar points painted with image features before the lidar encoder.

    Attributes:
        channels: image feature channels sampled at each point's projection.
        image_size_hw: images are resized to this before the painting network.
    """

    channels: int = field(default=8, metadata={"gt": 0})
    image_size_hw: tuple[int, int] = field(default=(64, 96), metadata={"gt": 0})
    backbone_channels: tuple[int, ...] = field(default=(16, 32, 64), metadata={"gt": 0,
                                                                                "min_len": 3})


@dataclass
class CameraConfig:
    """Camera encoder: ResNet-like backbone + FPN + LSS view transform.

    Attributes:
        image_size_hw: images are resized to (H, W) pixels (intrinsics scaled to match).
        backbone_channels: widths of the stride-4, 8 and 16 stages.
        feature_stride: stride of the image features lifted to 3D (4, 8 or 16). At stride 4
            each feature pixel covers a quarter of the image area it does at stride 8, so
            each is lifted along a narrower ray, at four times the frustum points.
        depth_m: ``(d_min, d_max, d_step)`` depth bins along the optical axis.
        out_channels: BEV channels.
        depth_loss_weight: weight of the lidar depth supervision (0 disables it).
        camera_aware_depth: the depth head also sees each feature pixel's geometry: its unit
            ray in the vehicle frame and the camera's height above the vehicle origin (m).
            Convolutions are blind to where a pixel sits in the image and to how the camera
            is mounted; for objects on the ground the ray's elevation and the height fix the
            depth.
        lidar_depth_prior: camera+lidar models only: the depth distribution also sees the
            lidar. Per feature pixel, the depth bin of the nearest lidar point that projects
            there (one-hot, and a mask) goes through a 3x3 convolution added to the depth
            logits (BEVFusion feeds lidar depth to its depth net the same way). The
            convolution starts at zero, so a camera taken from a camera-only model starts as
            it was; without lidar in a sample the logits are the camera's own.
    """

    image_size_hw: tuple[int, int] = field(default=(64, 96), metadata={"gt": 0})
    backbone_channels: tuple[int, ...] = field(default=(16, 32, 64), metadata={"gt": 0,
                                                                                "min_len": 3,
                                                                                "max_len": 3})
    feature_stride: int = field(default=8, metadata={"choices": [4, 8, 16]})
    fpn_channels: int = field(default=64, metadata={"gt": 0})
    depth_m: tuple[float, float, float] = field(default=(1.0, 45.0, 1.0), metadata={"gt": 0.0})
    out_channels: int = field(default=64, metadata={"gt": 0})
    depth_loss_weight: float = field(default=0.0, metadata={"ge": 0.0})
    camera_aware_depth: bool = False
    lidar_depth_prior: bool = False

    def validate(self) -> None:
        lo, hi, step = self.depth_m
        if hi <= lo:
            raise ValueError(f"depth_m: d_max must exceed d_min, got {self.depth_m}")
        for size in self.image_size_hw:
            if size % self.feature_stride:
                raise ValueError(f"image_size_hw: {self.image_size_hw} is not a multiple of "
                                 f"feature_stride {self.feature_stride}")

    @property
    def num_depth_bins(self) -> int:
        lo, hi, step = self.depth_m
        return int(round((hi - lo) / step))


@dataclass
class RadarConfig:
    """Radar encoder: radar pillars of (x, y, z, vx, vy, rcs, dt) points.

    Multi-scan input is accumulated by the data side (``data.radar_scans``); every point
    carries its time offset ``dt``.

    Attributes:
        pillar_channels: widths of the radar pillar feature net.
    """

    pillar_channels: tuple[int, ...] = field(default=(32, 32), metadata={"gt": 0,
                                                                          "min_len": 1})


@dataclass
class FuserConfig:
    """BEV fuser.

    Attributes:
        kind: ``concat`` (concatenate + conv, BEVFusion) or ``gated`` (per-cell softmax
            weights over the present modalities).
        out_channels: fused BEV channels.
        modality_dropout: probability, per training sample, of dropping modalities (never
            all of them).
        modality_dropout_mode: ``one`` removes one present modality, chosen uniformly;
            ``subset`` keeps a non-empty proper subset of the present modalities, drawn
            uniformly (with 3 present: each of the 6 smaller subsets), so the model also
            trains on a single sensor of a fused rig.
        subset_size_weights: ``subset`` mode only: relative weight of keeping 1, 2, ...
            modalities (the size first, then a subset of that size uniformly); empty draws
            every subset equally often. ``[3, 1]`` with 3 present keeps one sensor in 3 of 4
            dropped samples, to train the single-sensor cases more.
        dropout_modalities: ``one`` mode only: the modalities dropout may remove (empty: any).
            ``[camera]`` trains the camera+lidar case with and without the camera while the
            lidar path always sees lidar, as a lidar-only model does.
        presence_film: modulate the fused map with a learnt per-channel scale and shift for
            each sensor subset (:class:`~perception.models.fuser.PresenceFilm`); a module of
            its own (``presence_film``), so ``train.init_from`` can take the rest of the model
            from a checkpoint without it.
    """

    kind: Literal["concat", "gated"] = "concat"
    out_channels: int = field(default=64, metadata={"gt": 0})
    modality_dropout: float = field(default=0.0, metadata={"ge": 0.0, "le": 1.0})
    modality_dropout_mode: Literal["one", "subset"] = "one"
    subset_size_weights: tuple[float, ...] = field(default=(), metadata={"ge": 0.0})
    dropout_modalities: tuple[Modality, ...] = ()
    presence_film: bool = False

    def validate(self) -> None:
        if self.dropout_modalities and self.modality_dropout_mode != "one":
            raise ValueError("dropout_modalities: needs modality_dropout_mode: one")
        if self.subset_size_weights and self.modality_dropout_mode != "subset":
            raise ValueError("subset_size_weights: needs modality_dropout_mode: subset")
        if self.subset_size_weights and sum(self.subset_size_weights) <= 0:
            raise ValueError("subset_size_weights: at least one weight must be > 0")


@dataclass
class BackboneConfig:
    """SECOND-FPN-style 2D backbone: strided conv stages, each upsampled back to the first
    stage's resolution and concatenated; the output stride is ``layer_strides[0]``."""

    layer_nums: tuple[int, ...] = field(default=(2, 2), metadata={"ge": 0, "min_len": 1})
    layer_strides: tuple[int, ...] = field(default=(1, 2), metadata={"gt": 0})
    channels: tuple[int, ...] = field(default=(64, 128), metadata={"gt": 0})
    upsample_channels: tuple[int, ...] = field(default=(64, 64), metadata={"gt": 0})

    def validate(self) -> None:
        n = len(self.layer_nums)
        for name in ("layer_strides", "channels", "upsample_channels"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"{name}: expected {n} entries (one per stage, like "
                                 f"layer_nums), got {len(getattr(self, name))}")

    @property
    def out_stride(self) -> int:
        """Stride of the backbone output relative to the BEV grid."""
        return self.layer_strides[0]


@dataclass
class HeadConfig:
    """CenterPoint head, targets and decoding.

    Attributes:
        tasks: class groups, one heatmap branch each (Waymo class names).
        head_channels: width of the shared and per-branch convs.
        gaussian_overlap, min_radius_cells: heatmap Gaussian radius (CenterPoint rule).
        max_objects: bound on targets per sample and task.
        code_weights: L1 weights of (dx, dy, z, log l, log w, log h, sin, cos, vx, vy).
        iou_loss_weight: weight of the optional aligned-IoU loss (0 disables it).
        top_k, score_threshold: decoding.
        nms: ``circle`` (centre distance) or ``rotated`` (BEV IoU) NMS, or ``none``.
        nms_radius_m: circle NMS radius per task.
        nms_iou_threshold: rotated NMS threshold.
        max_detections: boxes kept per frame after NMS.
    """

    tasks: tuple[tuple[str, ...], ...] = (("VEHICLE",), ("PEDESTRIAN", "CYCLIST"))
    head_channels: int = field(default=64, metadata={"gt": 0})
    gaussian_overlap: float = field(default=0.1, metadata={"gt": 0.0, "lt": 1.0})
    min_radius_cells: int = field(default=2, metadata={"ge": 0})
    max_objects: int = field(default=200, metadata={"gt": 0})
    code_weights: tuple[float, ...] = field(
        default=(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.2), metadata={
            "ge": 0.0, "min_len": 10, "max_len": 10})
    heatmap_loss_weight: float = field(default=1.0, metadata={"ge": 0.0})
    regression_loss_weight: float = field(default=0.25, metadata={"ge": 0.0})
    iou_loss_weight: float = field(default=0.0, metadata={"ge": 0.0})
    top_k: int = field(default=200, metadata={"gt": 0})
    score_threshold: float = field(default=0.1, metadata={"ge": 0.0, "le": 1.0})
    nms: Literal["circle", "rotated", "none"] = "circle"
    nms_radius_m: tuple[float, ...] = field(default=(2.0, 0.5), metadata={"ge": 0.0})
    nms_iou_threshold: float = field(default=0.2, metadata={"ge": 0.0, "le": 1.0})
    max_detections: int = field(default=100, metadata={"gt": 0})

    def validate(self) -> None:
        seen: set[str] = set()
        for task in self.tasks:
            if not task:
                raise ValueError("tasks: every class group needs at least one class")
            for name in task:
                if name not in ("VEHICLE", "PEDESTRIAN", "CYCLIST"):
                    raise ValueError(f"tasks: unknown class {name!r}; expected VEHICLE, "
                                     f"PEDESTRIAN or CYCLIST")
                if name in seen:
                    raise ValueError(f"tasks: class {name} appears in two groups")
                seen.add(name)
        if len(self.nms_radius_m) != len(self.tasks):
            raise ValueError(f"nms_radius_m: expected one radius per task "
                             f"({len(self.tasks)}), got {len(self.nms_radius_m)}")

    def task_classes(self) -> list[list[ObjectClass]]:
        return [[ObjectClass[name] for name in task] for task in self.tasks]


@dataclass
class ModelConfig:
    """The whole detector.

    Attributes:
        lidar, camera, radar: encoder configs; None leaves the modality out of the model.
        fusion: ``intermediate`` (BEV fuser), ``early`` (point painting; needs lidar and
            camera) or ``late`` (one backbone + head per modality, boxes merged).
        late_merge: ``nms`` or ``wbf`` (weighted box fusion) for late fusion.
        decoder_without_lidar: a second BEV backbone + head for the samples without lidar
            (:mod:`perception.models.subset_decoder`); intermediate fusion with lidar and at
            least one other modality.
    """

    grid: GridConfig = field(default_factory=GridConfig)
    lidar: LidarConfig | None = None
    camera: CameraConfig | None = None
    radar: RadarConfig | None = None
    painting: PaintingConfig | None = None
    fusion: Literal["intermediate", "early", "late"] = "intermediate"
    late_merge: Literal["nms", "wbf"] = "nms"
    late_iou_threshold: float = field(default=0.3, metadata={"ge": 0.0, "le": 1.0})
    fuser: FuserConfig = field(default_factory=FuserConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    decoder_without_lidar: bool = False

    def validate(self) -> None:
        if not self.modalities():
            raise ValueError("no modality: set at least one of lidar, camera, radar")
        if self.decoder_without_lidar and (self.fusion != "intermediate" or self.lidar is None
                                           or len(self.modalities()) < 2):
            raise ValueError("decoder_without_lidar: needs fusion 'intermediate', a lidar "
                             "section and at least one other modality")
        if self.fusion == "early":
            if self.lidar is None or self.painting is None:
                raise ValueError("fusion 'early' (point painting) needs lidar and painting "
                                 "sections")
            if self.camera is not None or self.radar is not None:
                raise ValueError("fusion 'early': only lidar painted with images; remove the "
                                 "camera and radar sections")
        elif self.painting is not None:
            raise ValueError(f"painting: only used with fusion 'early', not {self.fusion!r}")
        if self.camera is not None and self.camera.lidar_depth_prior and (
                self.lidar is None or self.fusion != "intermediate"):
            raise ValueError("camera.lidar_depth_prior: needs a lidar section and fusion "
                             "'intermediate' (the camera's depth is conditioned on the lidar "
                             "of the same model)")

    def modalities(self) -> frozenset[Modality]:
        """Modalities the model consumes (cameras feed painting in early fusion)."""
        present = set()
        if self.lidar is not None:
            present.add(Modality.LIDAR)
        if self.camera is not None or self.painting is not None:
            present.add(Modality.CAMERA)
        if self.radar is not None:
            present.add(Modality.RADAR)
        return frozenset(present)


def ground_truth_in_grid(boxes: Boxes3D | None, grid: GridConfig) -> Boxes3D:
    """GT boxes whose centre lies inside the model's BEV range: the evaluated region."""
    if boxes is None:
        return Boxes3D.empty()
    r = grid.point_range_m
    c = boxes.boxes
    keep = (c[:, 0] >= r[0]) & (c[:, 0] < r[3]) & (c[:, 1] >= r[1]) & (c[:, 1] < r[4])
    return boxes.select(keep)
