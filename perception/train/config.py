"""Experiment configuration: ``configs/models/*.yaml`` = model + data + augmentation + training.

Every schema of an experiment lives here (so the training modules import this one, never each
other, for their settings). Loaded with :func:`perception.config.load_config` (one level of
``base:``); every problem is a :class:`~perception.errors.ConfigError` naming the file and key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..config import load_config
from ..errors import ConfigError
from ..models.config import ModelConfig
from ..types import DETECTION_CLASSES


@dataclass
class DataConfig:
    """Where frames come from.

    Attributes:
        source: ``sim`` (built-in simulator), ``waymo`` (converted Waymo root), ``nuscenes``
            (devkit layout).
        sim_preset: simulator preset name or YAML path.
        train_seeds, val_seeds: simulator seeds (one scenario each); validation seeds are
            held out from training.
        test_seeds: a second held-out set of simulator seeds, for final tables only (never
            for a choice of thresholds, epochs or configs); ``perception eval --split test``.
        frames_per_seed: frames taken from each seed, every ``frame_stride``-th frame.
        cache_dir: generated simulator frames are cached here as .npz (never pickles).
        train_root, val_root: dataset roots: a converted Waymo directory, a nuScenes devkit
            directory, or an mmdet3d nuScenes info ``.pkl`` (read with a restricted unpickler).
        nuscenes_version, nuscenes_sweeps: nuScenes table version and lidar sweeps.
        max_val_frames: bound on evaluated frames (0 = all).
        radar_scans: radar scans per sensor fed to the model: the frame's own plus those of
            the previous ``radar_scans - 1`` frames of the same sequence, moved into the
            current vehicle frame through the ego poses.
        lidar_sweeps: likewise for lidar sweeps, merged into one sweep whose
            ``time_offset_s`` column gives each point's time relative to the current sweep.
    """

    source: Literal["sim", "waymo", "nuscenes"] = "sim"
    sim_preset: str = "tiny"
    train_seeds: tuple[int, ...] = (0,)
    val_seeds: tuple[int, ...] = (1000,)
    test_seeds: tuple[int, ...] = ()
    frames_per_seed: int = field(default=20, metadata={"gt": 0})
    frame_stride: int = field(default=1, metadata={"gt": 0})
    cache_dir: str | None = "outputs/cache/sim"
    train_root: str | None = None
    val_root: str | None = None
    nuscenes_version: str = "v1.0-mini"
    nuscenes_sweeps: int = field(default=0, metadata={"ge": 0})
    max_val_frames: int = field(default=0, metadata={"ge": 0})
    radar_scans: int = field(default=1, metadata={"ge": 1})
    lidar_sweeps: int = field(default=1, metadata={"ge": 1})

    def validate(self) -> None:
        if self.source == "sim":
            overlap = set(self.train_seeds) & set(self.val_seeds)
            if overlap:
                raise ValueError(f"val_seeds: {sorted(overlap)} also in train_seeds; "
                                 f"validation must use held-out seeds")
            reused = (set(self.train_seeds) | set(self.val_seeds)) & set(self.test_seeds)
            if reused:
                raise ValueError(f"test_seeds: {sorted(reused)} also in train_seeds or "
                                 f"val_seeds; the test set must be held out from both")
        elif self.train_root is None:
            raise ValueError(f"train_root: required for source {self.source!r}")


def _default_max_per_class() -> dict[str, int]:
    return {c.name: 6 for c in DETECTION_CLASSES}


@dataclass
class GtSamplingConfig:
    """Ground-truth sampling (``augment.gt_sampling``); lidar-only models.

    Attributes:
        enabled: paste sampled objects into training frames (before the global transform).
        max_per_class: class name -> most objects pasted per frame (0 disables a class).
        min_points: objects with fewer lidar points are not stored in the database.
        max_tries_per_object: candidates drawn per wanted object; candidates that overlap a
            box in BEV are discarded, so more tries fill crowded frames better.
    """

    enabled: bool = False
    max_per_class: dict[str, int] = field(default_factory=_default_max_per_class)
    min_points: int = field(default=5, metadata={"ge": 1})
    max_tries_per_object: int = field(default=3, metadata={"gt": 0})

    def validate(self) -> None:
        known = [c.name for c in DETECTION_CLASSES]
        for name, count in self.max_per_class.items():
            if name not in known:
                raise ValueError(f"max_per_class: unknown class {name!r}; expected one of "
                                 f"{known}")
            if count < 0:
                raise ValueError(f"max_per_class.{name}: expected a count >= 0, got {count}")


def check_gt_sampling(model: ModelConfig) -> None:
    """Raise :class:`ConfigError` when ``model`` reads camera images (camera branch or point
    painting): pasted lidar points would disagree with the images."""
    users = [name for name in ("camera", "painting") if getattr(model, name) is not None]
    if users:
        keys = " and ".join(f"model.{name}" for name in users)
        raise ConfigError(f"augment.gt_sampling: ground-truth sampling pastes lidar points "
                          f"only, so the images would disagree with the pasted objects; it "
                          f"cannot be used with a model that reads cameras ({keys} set). "
                          f"Disable augment.gt_sampling or remove {keys}.")


@dataclass
class PretrainedSource:
    """One checkpoint and the top-level modules taken from it.

    Attributes:
        checkpoint: a checkpoint written by :class:`~perception.train.trainer.Trainer`.
        modules: top-level module names of the source detector, e.g. ``[lidar, backbone,
            head]``.
        into: where those modules go in this model: empty for the same names, or a module
            path such as ``branches.lidar`` (a late-fusion branch started from a
            single-modality detector).
    """

    checkpoint: str
    modules: tuple[str, ...] = field(default=(), metadata={"min_len": 1})
    into: str = ""


@dataclass
class AugmentConfig:
    """Global augmentation, applied to points, boxes, radar and camera calibration together.

    Attributes:
        rotation_rad: yaw drawn uniformly from [-rotation_rad, rotation_rad].
        scale_range: global scale drawn uniformly from this range.
        flip_y_prob: probability of mirroring y (left-right); images are mirrored too.
        gt_sampling: ground-truth sampling, applied before the global transform (lidar-only
            models; see :mod:`perception.train.gt_sampling`).
    """

    enabled: bool = True
    rotation_rad: float = field(default=0.3927, metadata={"ge": 0.0})
    scale_range: tuple[float, float] = field(default=(0.95, 1.05), metadata={"gt": 0.0})
    flip_y_prob: float = field(default=0.5, metadata={"ge": 0.0, "le": 1.0})
    gt_sampling: GtSamplingConfig = field(default_factory=GtSamplingConfig)

    def validate(self) -> None:
        if self.scale_range[0] > self.scale_range[1]:
            raise ValueError(f"scale_range: min > max in {self.scale_range}")


@dataclass
class DistillConfig:
    """Distillation from single-modality specialists (``train.distill``; see
    :mod:`perception.train.distill`).

    Attributes:
        teachers: checkpoints or weights files of single-modality detectors, at most one per
            modality, with this model's grid and head. A sample is distilled when every
            sensor it was given has a teacher.
        weight: multiplier of the distillation loss in the total.
        beta: focusing exponent of the soft focal loss (0: plain binary cross-entropy).
        label_floor: raise the teachers' target to the label heatmap wherever that is higher,
            so that the term never pulls a labelled object's peak below its label.
        classes: the classes (Waymo names) whose heatmap channels are distilled; the others
            learn from the labels only. Empty: every class of the head.
    """

    teachers: tuple[str, ...] = ()
    weight: float = field(default=1.0, metadata={"ge": 0.0})
    beta: float = field(default=2.0, metadata={"ge": 0.0})
    label_floor: bool = False
    classes: tuple[str, ...] = ()

    def validate(self) -> None:
        known = [c.name for c in DETECTION_CLASSES]
        for name in self.classes:
            if name not in known:
                raise ValueError(f"classes: unknown class {name!r}; expected one of {known}")
        if len(set(self.classes)) != len(self.classes):
            raise ValueError(f"classes: a class named twice in {list(self.classes)}")


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping.

    Attributes:
        schedule: ``onecycle`` or ``cosine`` learning-rate schedule (per step).
        amp: mixed precision (only on CUDA; ignored on the CPU).
        seed, deterministic: seeding and ``torch.use_deterministic_algorithms``.
        eval_every_epochs: Waymo-metric evaluation on the validation frames (0 = only at the
            end).
        max_steps_per_epoch: bound on steps per epoch (0 = whole dataset).
        tensorboard: write TensorBoard scalars to ``<out_dir>/tb``.
        cpu_threads: intra-op threads when training on the CPU (0 = torch's default). On a
            shared machine 1 thread per run (and one run per core) is the most predictable.
        init_from: start named modules from other checkpoints (staged fusion training; see
            :mod:`perception.train.pretrained`). Ignored when resuming.
        distill: heatmap distillation from single-modality specialists (off without
            teachers).
    """

    out_dir: str = "outputs/train/run"
    epochs: int = field(default=10, metadata={"gt": 0})
    batch_size: int = field(default=2, metadata={"gt": 0})
    lr: float = field(default=2e-3, metadata={"gt": 0.0})
    weight_decay: float = field(default=0.01, metadata={"ge": 0.0})
    schedule: Literal["onecycle", "cosine"] = "onecycle"
    grad_clip_norm: float = field(default=10.0, metadata={"gt": 0.0})
    amp: bool = True
    seed: int = 0
    deterministic: bool = False
    eval_every_epochs: int = field(default=1, metadata={"ge": 0})
    checkpoint_every_epochs: int = field(default=1, metadata={"gt": 0})
    max_steps_per_epoch: int = field(default=0, metadata={"ge": 0})
    num_workers: int = field(default=0, metadata={"ge": 0})
    log_every_steps: int = field(default=10, metadata={"gt": 0})
    tensorboard: bool = True
    progress: bool = True
    find_unused_parameters: bool = True
    cpu_threads: int = field(default=0, metadata={"ge": 0})
    init_from: tuple[PretrainedSource, ...] = ()
    distill: DistillConfig = field(default_factory=DistillConfig)


@dataclass
class ExperimentConfig:
    model: ModelConfig
    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def validate(self) -> None:
        # Caught at load time (naming the file) rather than when training starts.
        if self.augment.enabled and self.augment.gt_sampling.enabled:
            try:
                check_gt_sampling(self.model)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Load and validate ``configs/models/<name>.yaml``."""
    return load_config(path, ExperimentConfig)
