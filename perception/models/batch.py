"""Typed batches: :class:`SensorFrame` lists collated into tensors with per-sample modality
masks. The models read a :class:`Batch`; nothing mutates it in place."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ValidationError
from ..types import DETECTION_CLASSES, Modality, SensorFrame

MODALITY_ORDER: tuple[Modality, ...] = (Modality.LIDAR, Modality.CAMERA, Modality.RADAR)
"""Column order of :attr:`Batch.present`."""

RADAR_COLUMNS: tuple[str, ...] = ("x", "y", "z", "vx_mps", "vy_mps", "rcs_dbsm", "dt_s")
"""Columns of :attr:`Batch.radar_points`."""


@dataclass(frozen=True)
class BatchSpec:
    """What to collate.

    Attributes:
        lidar_columns: lidar columns after x, y, z (missing ones are filled with 0), or None
            to skip lidar.
        image_size_hw: camera images are resized to this (intrinsics scaled), or None to skip
            cameras.
        radar: collate radar points.
        fast_jpeg: JPEG images not decoded yet and at least twice the target size are
            decoded at a reduced scale by libjpeg's DCT scaling (1/2, 1/4 or 1/8, never below
            the target size), then resized as usual: 2-6x faster decoding. The pixels differ
            slightly from a full decode + bilinear resize (the DCT scaling averages blocks).
    """

    lidar_columns: tuple[str, ...] | None = ("intensity", "time_offset_s")
    image_size_hw: tuple[int, int] | None = None
    radar: bool = False
    fast_jpeg: bool = True


@dataclass(frozen=True)
class Batch:
    """B samples, vehicle frame of each sample.

    Attributes:
        stamps_ns, sequence_ids: identity of each sample.
        present: (B, 3) bool, modality present per sample, columns :data:`MODALITY_ORDER`.
        lidar_points: B tensors (N_i, 3 + C) float32 ``x, y, z, <lidar_columns>``.
        images: (B, N_cam, 3, H, W) float32 RGB in [0, 1]; padded cameras are 0 and marked
            invalid in ``camera_valid`` (B, N_cam) bool.
        intrinsics: (B, N_cam, 3, 3) float32 K of the resized image (identity where invalid).
        T_vehicle_optical: (B, N_cam, 4, 4) float32 optical frame -> vehicle frame.
        radar_points: B tensors (N_i, 7) float32, columns :data:`RADAR_COLUMNS`.
        gt_boxes: B tensors (M_i, 7) float32; gt_labels (M_i,) int64 ObjectClass values;
            gt_velocities (M_i, 2) float32 (0 where unknown).
    """

    stamps_ns: list[int]
    sequence_ids: list[str]
    present: torch.Tensor
    lidar_points: list[torch.Tensor]
    images: torch.Tensor
    camera_valid: torch.Tensor
    intrinsics: torch.Tensor
    T_vehicle_optical: torch.Tensor
    radar_points: list[torch.Tensor]
    gt_boxes: list[torch.Tensor]
    gt_labels: list[torch.Tensor]
    gt_velocities: list[torch.Tensor]

    @property
    def batch_size(self) -> int:
        return len(self.stamps_ns)

    def has(self, modality: Modality) -> torch.Tensor:
        """(B,) bool: samples where ``modality`` is present."""
        return self.present[:, MODALITY_ORDER.index(modality)]

    def to(self, device: torch.device | str) -> Batch:
        def move(value):
            if isinstance(value, torch.Tensor):
                return value.to(device, non_blocking=True)
            if isinstance(value, list) and value and isinstance(value[0], torch.Tensor):
                return [v.to(device, non_blocking=True) for v in value]
            return value
        return dataclasses.replace(self, **{f.name: move(getattr(self, f.name))
                                            for f in dataclasses.fields(self)})

    def rows(self, idx: torch.Tensor) -> Batch:
        """The samples ``idx`` (K,) int64 of this batch, in that order."""
        picked = idx.tolist()
        pick = lambda seq: [seq[i] for i in picked]  # noqa: E731
        return dataclasses.replace(
            self, stamps_ns=pick(self.stamps_ns), sequence_ids=pick(self.sequence_ids),
            present=self.present[idx], lidar_points=pick(self.lidar_points),
            images=self.images[idx], camera_valid=self.camera_valid[idx],
            intrinsics=self.intrinsics[idx], T_vehicle_optical=self.T_vehicle_optical[idx],
            radar_points=pick(self.radar_points), gt_boxes=pick(self.gt_boxes),
            gt_labels=pick(self.gt_labels), gt_velocities=pick(self.gt_velocities))

    def without(self, modalities: frozenset[Modality] | set[Modality]) -> Batch:
        """The same batch with ``modalities`` marked absent in every sample."""
        present = self.present.clone()
        for m in modalities:
            present[:, MODALITY_ORDER.index(Modality(m))] = False
        return dataclasses.replace(self, present=present)


def collate_frames(frames: Sequence[SensorFrame], spec: BatchSpec,
                   device: torch.device | str | None = None) -> Batch:
    """Collate frames into a :class:`Batch` on ``device`` (default: the CPU).

    Images go to ``device`` as uint8 (a third of the bytes of float32) and are converted,
    scaled to [0, 1] and resized there, all cameras of one size in one call: on a GPU the
    collation then costs a copy instead of a CPU resize per camera.
    """
    if len(frames) == 0:
        raise ValidationError("collate_frames: no frames")
    for i, frame in enumerate(frames):
        if not isinstance(frame, SensorFrame):
            raise ValidationError(f"collate_frames: item {i} is {type(frame).__name__}, "
                                  f"not a SensorFrame")
    present = torch.zeros((len(frames), 3), dtype=torch.bool)
    for i, frame in enumerate(frames):
        have = frame.modalities
        present[i, 0] = spec.lidar_columns is not None and Modality.LIDAR in have
        present[i, 1] = spec.image_size_hw is not None and Modality.CAMERA in have
        present[i, 2] = spec.radar and Modality.RADAR in have
    lidar = [_lidar_points(f, spec.lidar_columns) for f in frames]
    target = torch.device(device) if device is not None else torch.device("cpu")
    images, valid, K, T = _cameras(frames, spec.image_size_hw, target, spec.fast_jpeg)
    radar = [torch.from_numpy(radar_point_features(f)) if spec.radar
             else torch.zeros((0, len(RADAR_COLUMNS))) for f in frames]
    boxes, labels, velocities = zip(*(_ground_truth(f) for f in frames))
    batch = Batch(stamps_ns=[int(f.stamp_ns) for f in frames],
                  sequence_ids=[f.sequence_id for f in frames], present=present,
                  lidar_points=lidar, images=images, camera_valid=valid, intrinsics=K,
                  T_vehicle_optical=T, radar_points=radar, gt_boxes=list(boxes),
                  gt_labels=list(labels), gt_velocities=list(velocities))
    return batch if target.type == "cpu" else batch.to(target)


def _lidar_points(frame: SensorFrame, columns: tuple[str, ...] | None) -> torch.Tensor:
    width = 3 + len(columns or ())
    if columns is None or frame.lidar is None:
        return torch.zeros((0, width))
    sweep = frame.lidar
    out = np.zeros((len(sweep), width), np.float32)
    out[:, :3] = sweep.points[:, :3]
    for j, name in enumerate(columns):
        if name in sweep.columns:
            out[:, 3 + j] = sweep.column(name)
    return torch.from_numpy(out)


def radar_point_features(frame: SensorFrame) -> np.ndarray:
    """(N, 7) float32 :data:`RADAR_COLUMNS` of every radar scan of ``frame``.

    Velocity: the radar's own ``vx_comp``/``vy_comp`` where given, else the ego-motion
    compensated Doppler (radial) placed along the sensor-to-point direction in the xy plane:
    the tangential part is unobservable, so this is the radial component only.
    ``dt_s`` is the scan (plus per-point offset) time relative to the frame stamp.
    """
    parts = []
    for scan in frame.radars.values():
        pts = scan.points
        n = len(scan)
        out = np.zeros((n, len(RADAR_COLUMNS)), np.float32)
        out[:, :3] = pts[:, :3]
        if "vx_comp" in scan.columns and "vy_comp" in scan.columns:
            out[:, 3] = scan.column("vx_comp")
            out[:, 4] = scan.column("vy_comp")
        elif "doppler_compensated_mps" in scan.columns:
            origin = (scan.calibration.T_vehicle_sensor[:2, 3] if scan.calibration is not None
                      else np.zeros(2))
            ray = pts[:, :2] - origin[None, :].astype(np.float32)
            ray /= np.maximum(np.linalg.norm(ray, axis=1, keepdims=True), 1e-3)
            out[:, 3:5] = ray * scan.column("doppler_compensated_mps")[:, None]
        if "rcs_dbsm" in scan.columns:
            out[:, 5] = scan.column("rcs_dbsm")
        dt = (int(scan.stamp_ns) - int(frame.stamp_ns)) * 1e-9
        if "time_offset_s" in scan.columns:
            out[:, 6] = scan.column("time_offset_s") + dt
        else:
            out[:, 6] = dt
        parts.append(out)
    if not parts:
        return np.zeros((0, len(RADAR_COLUMNS)), np.float32)
    return np.concatenate(parts)


def _cameras(frames: Sequence[SensorFrame], size_hw: tuple[int, int] | None,
             device: torch.device, fast_jpeg: bool = True
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    n_cam = max([len(f.cameras) for f in frames] + [0]) if size_hw is not None else 0
    B = len(frames)
    H, W = size_hw if size_hw is not None else (1, 1)
    images = torch.zeros((B, n_cam, 3, H, W), device=device)
    valid = torch.zeros((B, n_cam), dtype=torch.bool)
    K = torch.eye(3).repeat(B, n_cam, 1, 1)
    T = torch.eye(4).repeat(B, n_cam, 1, 1)
    if n_cam == 0:
        return images, valid, K, T
    groups: dict[tuple[int, int], list[tuple[int, int, np.ndarray]]] = {}
    for b, frame in enumerate(frames):
        for c, name in enumerate(sorted(frame.cameras)):
            cam = frame.cameras[name]
            pixels = _pixels(cam, (H, W), fast_jpeg)
            groups.setdefault(pixels.shape[:2], []).append((b, c, pixels))
            h0, w0 = cam.calibration.height, cam.calibration.width
            scale = np.diag([W / w0, H / h0, 1.0])
            K[b, c] = torch.from_numpy(scale @ cam.calibration.K).float()
            T[b, c] = torch.from_numpy(cam.calibration.T_vehicle_optical).float()
            valid[b, c] = True
    for (h0, w0), items in groups.items():
        # (N, h, w, 3) uint8 -> (N, 3, h, w) float in [0, 1] on the device, one resize for
        # the group (the same kernel, per image, as resizing one by one).
        stacked = torch.from_numpy(np.stack([p for _, _, p in items]))
        if device.type == "cuda":
            stacked = stacked.pin_memory()
        img = stacked.to(device, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
        if (h0, w0) != (H, W):
            img = F.interpolate(img, size=(H, W), mode="bilinear", align_corners=False)
        rows = torch.tensor([b for b, _, _ in items])
        cols = torch.tensor([c for _, c, _ in items])
        images[rows, cols] = img
    return images, valid, K, T


def _pixels(cam, size_hw: tuple[int, int], fast_jpeg: bool) -> np.ndarray:
    """(h, w, 3) uint8 RGB of ``cam``: its pixels, or its JPEG decoded at the smallest DCT
    scale that is still at least ``size_hw`` (when ``fast_jpeg`` and not decoded yet)."""
    if not fast_jpeg or cam.is_decoded or not cam.encoded[:2] == b"\xff\xd8":
        return cam.image
    H, W = size_hw
    h0, w0 = cam.calibration.height, cam.calibration.width
    if h0 < 2 * H or w0 < 2 * W:
        return cam.image
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(cam.encoded)) as img:
            img.draft("RGB", (W, H))  # libjpeg picks a scale of 1/2, 1/4 or 1/8, >= (W, H)
            return np.asarray(img.convert("RGB"))
    except Exception:  # anything odd: the regular decode, with its typed errors
        return cam.image


def _ground_truth(frame: SensorFrame) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if frame.boxes is None:
        return torch.zeros((0, 7)), torch.zeros(0, dtype=torch.int64), torch.zeros((0, 2))
    gt = frame.boxes
    keep = np.isin(gt.labels, [int(c) for c in DETECTION_CLASSES])
    vel = gt.velocities if gt.velocities is not None else np.zeros((len(gt), 2), np.float32)
    return (torch.from_numpy(gt.boxes[keep].copy()),
            torch.from_numpy(gt.labels[keep].astype(np.int64)),
            torch.from_numpy(vel[keep].astype(np.float32)))
