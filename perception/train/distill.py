"""Distillation from single-modality specialists into a fused detector (``train.distill``).

Goal 1 of docs/fusion.md asks the fused model, given only a subset S of its sensors, to score
at least 90 % of the best specialist in S. Here the specialists teach it: in a training sample
whose sensors (after modality dropout) all have a teacher, the student's heatmaps are pulled
towards the teachers' heatmaps of the same augmented sample. With several teachers in S the
target is the cell-wise maximum of their probabilities, so an object that one sensor's
specialist sees and another's misses stays an object. Samples given a sensor without a teacher
(with camera and radar teachers: every sample with lidar, where the fused model is already far
above the lidar specialist) get no distillation term.

The loss is a soft focal loss (the quality focal loss of Generalized Focal Loss, Li et al.
2020): binary cross-entropy against the teacher's probability, weighted by
``|teacher - student|^beta`` so that the many background cells the two already agree on do not
drown the peaks; normalised like the detection heatmap loss, by the number of labelled objects
in the distilled samples. Only heatmaps are distilled: boxes are still learnt from the labels.

With ``label_floor`` the target is raised to the label heatmap (the detection loss's Gaussian
peaks) wherever that is higher: a teacher that misses or under-scores a labelled object then
no longer pulls the student's peak down against its own label, while its soft peaks elsewhere
still teach.

With ``classes`` only those classes' heatmap channels are distilled; the other channels learn
from the labels alone, so a class whose teachers are weak does not learn their soft peaks.
"""

from __future__ import annotations

import dataclasses
import logging

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError, DataError
from ..models.batch import MODALITY_ORDER, Batch
from ..models.checkpoint import read_detector
from ..models.detector import DetectorOutput, FusionDetector
from ..models.losses import LossBreakdown
from ..models.targets import build_targets
from ..types import Modality
from .config import DataConfig, DistillConfig

log = logging.getLogger("perception.train")


def soft_focal_loss(logits: torch.Tensor, target: torch.Tensor, beta: float = 2.0
                    ) -> torch.Tensor:
    """Sum over cells of ``|target - sigmoid(logits)|^beta * BCE(logits, target)``.

    logits, target: the same shape; target in [0, 1]. At ``target == sigmoid(logits)`` every
    cell contributes 0, its minimum.
    """
    logits = logits.float()
    weight = (target - logits.sigmoid()).abs().pow(beta)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    return (weight * bce).sum()


class Distiller:
    """The teachers of ``config`` and the distillation term they add to a student's loss.

    Args:
        config: ``train.distill`` (non-empty ``teachers``).
        student: the fused detector being trained.
        data: the student's data config, whose sweeps and scans per frame each teacher must
            have been trained with (it sees the student's batches).
        device: where the teachers run.

    Raises:
        ConfigError: a teacher cannot be read, has more than one sensor, repeats a modality,
            takes a sensor the student does not, or differs from the student in grid, head,
            image size, lidar columns or sweeps and scans per frame, or ``classes`` names
            a class the student's head does not detect.
    """

    def __init__(self, config: DistillConfig, student: nn.Module, data: DataConfig,
                 device: torch.device | str = "cpu"):
        if not isinstance(student, FusionDetector):
            raise ConfigError("train.distill: the student must be an intermediate- or "
                              "early-fusion detector (late fusion trains one head per "
                              "sensor already)")
        self.config = config
        self.channels = _distilled_channels(config.classes, student.config.head.tasks)
        self.teachers: dict[Modality, nn.Module] = {}
        for i, path in enumerate(config.teachers):
            modality, teacher = _load_teacher(path, f"train.distill.teachers[{i}]", student,
                                              data, device)
            if modality in self.teachers:
                raise ConfigError(f"train.distill.teachers[{i}]: a second {modality.value} "
                                  f"teacher ({path}); give one per modality")
            self.teachers[modality] = teacher
        self._head, self._grid = student.config.head, student.config.grid
        self._head_stride = student.head_stride
        log.info("distilling from %s teachers", "+".join(m.value for m in self.teachers))

    def covered(self, present: torch.Tensor) -> torch.Tensor:
        """(B,) bool of ``present`` (B, 3): samples with at least one sensor, every one of
        which has a teacher."""
        has_teacher = torch.tensor([m in self.teachers for m in MODALITY_ORDER],
                                   device=present.device)
        return present.any(1) & ~(present & ~has_teacher).any(1)

    @torch.no_grad()
    def targets(self, batch: Batch, present: torch.Tensor, rows: torch.Tensor
                ) -> list[torch.Tensor]:
        """Per head task, (K, C_t, h, w) teacher probabilities of the samples ``rows`` (K,):
        the maximum over the teachers of the sensors each sample was given (``present``)."""
        out: list[torch.Tensor] | None = None
        for modality, teacher in self.teachers.items():
            given = present[rows, MODALITY_ORDER.index(modality)]
            if not bool(given.any()):
                continue
            pick = rows[given]
            sub = dataclasses.replace(batch.rows(pick), present=present[pick])
            probs = [task.heatmap.float().sigmoid() for task in teacher(sub).tasks]
            if out is None:
                out = [p.new_zeros((len(rows),) + p.shape[1:]) for p in probs]
            for target, p in zip(out, probs):
                target[given] = torch.maximum(target[given], p)
        assert out is not None, "every covered sample has a sensor with a teacher"
        return out

    def labels(self, batch: Batch, rows: torch.Tensor) -> list[torch.Tensor]:
        """Per head task, (K, C_t, h, w) label heatmaps of the samples ``rows`` (K,): the
        detection loss's Gaussian peaks, 1 at each labelled object's centre cell."""
        sub = batch.rows(rows)
        tasks = build_targets(sub.gt_boxes, sub.gt_labels, sub.gt_velocities, self._head,
                              self._grid, self._head_stride)
        return [t.heatmap.to(rows.device) for t in tasks]

    def loss(self, batch: Batch, output: DetectorOutput) -> torch.Tensor | None:
        """The weighted distillation term for ``output`` of ``batch`` (None when no sample
        of the batch is covered)."""
        rows = self.covered(output.present).nonzero().flatten()
        if rows.numel() == 0:
            return None
        targets = self.targets(batch, output.present, rows)
        if self.config.label_floor:
            targets = [torch.maximum(t, label)
                       for t, label in zip(targets, self.labels(batch, rows))]
        objects = sum(int(batch.gt_boxes[i].shape[0]) for i in rows.tolist())
        total = sum(soft_focal_loss(_pick(task.heatmap[rows], channels),
                                    _pick(target, channels), self.config.beta)
                    for task, target, channels in zip(output.tasks, targets, self.channels))
        return self.config.weight * total / max(objects, 1)

    def add_to(self, result: LossBreakdown, batch: Batch, output: DetectorOutput
               ) -> LossBreakdown:
        """``result`` with the distillation term added (logged as ``distill``, 0 when no
        sample was covered)."""
        term = self.loss(batch, output)
        if term is None:
            result.parts["distill"] = 0.0
            return result
        total = result.total + term
        parts = dict(result.parts, distill=float(term.detach()), total=float(total.detach()))
        return LossBreakdown(total, parts)


def _distilled_channels(classes: tuple[str, ...], tasks: tuple[tuple[str, ...], ...]
                        ) -> list[list[int]]:
    """Per head task, the heatmap channels of ``classes`` (every channel when empty)."""
    if not classes:
        return [list(range(len(task))) for task in tasks]
    detected = {name for task in tasks for name in task}
    for name in classes:
        if name not in detected:
            raise ConfigError(f"train.distill.classes: {name} is not a class of the student's "
                              f"head (model.head.tasks {[list(t) for t in tasks]})")
    return [[c for c, name in enumerate(task) if name in classes] for task in tasks]


def _pick(heatmap: torch.Tensor, channels: list[int]) -> torch.Tensor:
    """``heatmap`` (K, C, h, w) restricted to ``channels``; itself, not a copy, when they are
    all C (the default, on every training step)."""
    return heatmap if len(channels) == heatmap.shape[1] else heatmap[:, channels]


def _load_teacher(path: str, key: str, student: FusionDetector, data: DataConfig,
                  device: torch.device | str) -> tuple[Modality, nn.Module]:
    try:
        loaded = read_detector(path, device)
    except (ConfigError, DataError) as exc:
        raise ConfigError(f"{key}: {exc}") from None
    config = loaded.config
    modalities = [m for m in MODALITY_ORDER if m in config.modalities()]
    if len(modalities) != 1 or config.fusion != "intermediate":
        raise ConfigError(f"{key}: {path} is a {config.fusion}-fusion model of "
                          f"{[m.value for m in modalities]}; a teacher is a single-modality "
                          f"detector")
    (modality,) = modalities
    if modality not in student.modalities:
        raise ConfigError(f"{key}: {path} reads {modality.value}, which the student does not")
    own = student.config
    mismatches = {
        "model.grid": (config.grid, own.grid),
        "model.head.tasks": (config.head.tasks, own.head.tasks),
        "head stride": (loaded.model.head_stride, student.head_stride),
    }
    if modality is Modality.CAMERA:
        mismatches["model.camera.image_size_hw"] = (config.camera.image_size_hw,
                                                    own.camera.image_size_hw)
    if modality is Modality.LIDAR:
        mismatches["model.lidar.columns"] = (config.lidar.columns, own.lidar.columns)
        mismatches["data.lidar_sweeps"] = (loaded.lidar_sweeps, data.lidar_sweeps)
    if modality is Modality.RADAR:
        mismatches["data.radar_scans"] = (loaded.radar_scans, data.radar_scans)
    for name, (theirs, ours) in mismatches.items():
        if theirs != ours:
            raise ConfigError(f"{key}: {path} has {name} {theirs}, the student {ours}; a "
                              f"teacher must see the student's batches and predict on its "
                              f"heatmap cells")
    for p in loaded.model.parameters():
        p.requires_grad_(False)
    return modality, loaded.model.eval()
