"""The trainer: one loop for a single process and for ``torchrun`` DDP.

AMP (CUDA only), gradient clipping, one-cycle or cosine LR per step, checkpoints written with
``torch.save`` and read back with ``torch.load(..., weights_only=True)`` only, resume, a
deterministic-seed option, TensorBoard scalars, tqdm progress, and Waymo-metric evaluation
(:mod:`perception.eval.detection`) every N epochs on held-out frames.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler

from ..atomic import write_text_atomic
from ..config import from_dict, to_dict
from ..errors import ConfigError, DataError
from ..eval.detection import DetectionConfig, DetectionResult, evaluate_detection
from ..models.batch import BatchSpec, collate_frames
from ..models.checkpoint import CHECKPOINT_FORMAT, build_checked, load_checkpoint_file
from ..models.config import ModelConfig, ground_truth_in_grid
from ..models.detector import build_detector
from ..models.losses import LossBreakdown
from ..types import Modality, SensorFrame
from .augment import random_augment
from .config import (
    AugmentConfig,
    DataConfig,
    ExperimentConfig,
    GtSamplingConfig,
    check_gt_sampling,
)
from .data import FrameDataset, build_dataset, frame_key
from .distill import Distiller
from .ddp import DistInfo, barrier, init_distributed, unwrap, wrap_model
from .gt_sampling import GroundTruthDatabase, database_path
from .pretrained import load_pretrained

log = logging.getLogger("perception.train")


class Collate:
    """Picklable ``collate_fn`` (DataLoader workers)."""

    def __init__(self, spec: BatchSpec):
        self.spec = spec

    def __call__(self, frames: list[SensorFrame]):
        return collate_frames(frames, self.spec)


class Augmenter:
    """Random global augmentation; reseeded per DataLoader worker. With a ground-truth
    ``database``, sampled objects are pasted first, so the global transform moves them too."""

    def __init__(self, config: AugmentConfig, seed: int,
                 database: GroundTruthDatabase | None = None):
        self.config = config
        self.rng = np.random.default_rng(seed)
        self.database = database

    def __call__(self, frame: SensorFrame) -> SensorFrame:
        if self.database is not None:
            frame = self.database.paste(frame, self.rng, self.config.gt_sampling)
        return random_augment(frame, self.config, self.rng)


def _worker_init(worker_id: int) -> None:
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None)
    if isinstance(transform, Augmenter):
        transform.rng = np.random.default_rng(torch.initial_seed() % 2**32)


def seed_everything(seed: int, deterministic: bool) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


@dataclass
class EpochStats:
    epoch: int
    steps: int
    mean_loss: float
    lr: float
    seconds: float


@dataclass
class FitResult:
    epochs: list[EpochStats]
    metrics: dict | None
    checkpoint: Path | None


def data_config(config: ExperimentConfig):
    """``config.data`` without radar (lidar) accumulation when the model has no radar (lidar)
    input: the earlier frames would be loaded for nothing."""
    data = config.data
    if config.model.radar is None and data.radar_scans != 1:
        data = dataclasses.replace(data, radar_scans=1)
    if config.model.lidar is None and data.lidar_sweeps != 1:
        data = dataclasses.replace(data, lidar_sweeps=1)
    return data


@torch.no_grad()
def evaluate_model(model, frames: Sequence[SensorFrame] | FrameDataset, batch_size: int = 2,
                   drop: frozenset[Modality] = frozenset(), max_frames: int = 0,
                   progress: str | None = None,
                   detection_config: DetectionConfig | None = None) -> DetectionResult:
    """Waymo AP/APH of ``model`` on labelled ``frames`` (ground truth cut to the BEV range),
    optionally with the ``drop`` modalities removed at test time. ``progress``: label of a
    tqdm bar (None: no bar). ``detection_config``: IoU thresholds etc. (default: the official
    Waymo settings)."""
    from tqdm import tqdm

    model = unwrap(model)
    grid = model.config.grid
    n = len(frames) if max_frames <= 0 else min(max_frames, len(frames))
    gt, pred = {}, {}
    starts = range(0, n, batch_size)
    for start in tqdm(starts, desc=progress, disable=progress is None, dynamic_ncols=True):
        chunk = [frames[i] for i in range(start, min(n, start + batch_size))]
        for frame, det in zip(chunk, model.predict(chunk, drop=drop)):
            if frame.boxes is None:
                raise DataError("evaluation frame has no labels", source=frame.sequence_id)
            gt[frame_key(frame)] = ground_truth_in_grid(frame.boxes, grid)
            pred[frame_key(frame)] = det
    return evaluate_detection(gt, pred, config=detection_config)


def metrics_summary(result: DetectionResult) -> dict[str, float]:
    """``{"VEHICLE_LEVEL_1/AP": ..., ...}`` for logging."""
    out = {}
    for name, value in result.to_json().items():
        if isinstance(value, dict) and "AP" in value:
            out[f"{name}/AP"] = float(value["AP"])
            out[f"{name}/APH"] = float(value["APH"])
    return out


class Trainer:
    """Train ``config`` (single process, or one rank of a torchrun job)."""

    def __init__(self, config: ExperimentConfig, *, info: DistInfo | None = None,
                 train_set: FrameDataset | None = None, val_set: FrameDataset | None = None,
                 out_dir: str | Path | None = None):
        self.config = config
        tc = config.train
        self.info = info or init_distributed()
        self.device = self.info.device
        self.out_dir = Path(out_dir or tc.out_dir)
        seed_everything(tc.seed + self.info.rank, tc.deterministic)
        if self.device.type == "cpu" and tc.cpu_threads:
            torch.set_num_threads(tc.cpu_threads)
        self.model = build_detector(config.model).to(self.device)
        if tc.init_from:
            loaded = load_pretrained(self.model, tc.init_from, self.device)
            log.info("initialised from checkpoints: %s", loaded)
        self.ddp_model = wrap_model(self.model, self.info, tc.find_unused_parameters)
        self.distiller = (Distiller(tc.distill, self.model, data_config(config), self.device)
                          if tc.distill.teachers else None)
        augment = Augmenter(config.augment, tc.seed * 1000 + self.info.rank)
        if train_set is None:
            if config.augment.enabled and config.augment.gt_sampling.enabled:
                augment.database = training_database(
                    config.augment.gt_sampling, config.model, data_config(config),
                    progress=tc.progress and self.info.is_main)
            train_set = build_dataset(data_config(config), "train", augment)
        self.train_set = train_set
        self.val_set = val_set
        if len(train_set) == 0:
            raise ConfigError("data: the training set is empty")
        self.sampler = (DistributedSampler(train_set, self.info.world_size, self.info.rank,
                                           shuffle=True, seed=tc.seed)
                        if self.info.distributed else None)
        gen = torch.Generator().manual_seed(tc.seed)
        self.loader = DataLoader(train_set, batch_size=tc.batch_size,
                                 shuffle=self.sampler is None, sampler=self.sampler,
                                 collate_fn=Collate(self.model.spec), num_workers=tc.num_workers,
                                 worker_init_fn=_worker_init if tc.num_workers else None,
                                 generator=gen, drop_last=len(train_set) > tc.batch_size)
        self.steps_per_epoch = len(self.loader)
        if tc.max_steps_per_epoch:
            self.steps_per_epoch = min(self.steps_per_epoch, tc.max_steps_per_epoch)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=tc.lr,
                                           weight_decay=tc.weight_decay)
        total = max(1, tc.epochs * self.steps_per_epoch)
        if tc.schedule == "onecycle":
            self.scheduler = torch.optim.lr_scheduler.OneCycleLR(
                self.optimizer, max_lr=tc.lr, total_steps=total, pct_start=0.4,
                div_factor=10.0, final_div_factor=100.0)
        else:
            self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
                self.optimizer, T_max=total, eta_min=tc.lr * 1e-3)
        self.use_amp = tc.amp and self.device.type == "cuda"
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.use_amp)
        self.epoch = 0
        self.step = 0
        self._tb = None

    # ---------------------------------------------------------------------------------------
    def train_step(self, batch) -> LossBreakdown:
        """One optimisation step on a collated batch."""
        self.ddp_model.train()
        batch = batch.to(self.device)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.use_amp):
            output = self.ddp_model(batch)
        loss = self.model.loss(batch, output)
        if self.distiller is not None:
            loss = self.distiller.add_to(loss, batch, output)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss.total).backward()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(),
                                                   self.config.train.grad_clip_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        if self.step < self.config.train.epochs * self.steps_per_epoch:
            self.scheduler.step()
        self.step += 1
        loss.parts["grad_norm"] = float(grad_norm)
        return loss

    def train_epoch(self) -> EpochStats:
        from tqdm import tqdm

        if self.sampler is not None:
            self.sampler.set_epoch(self.epoch)
        t0 = time.perf_counter()
        losses = []
        bar = tqdm(total=self.steps_per_epoch, desc=f"epoch {self.epoch + 1}",
                   disable=not (self.config.train.progress and self.info.is_main),
                   dynamic_ncols=True)
        for i, batch in enumerate(self.loader):
            if i >= self.steps_per_epoch:
                break
            result = self.train_step(batch)
            if not math.isfinite(result.parts["total"]):
                raise FloatingPointError(f"loss is {result.parts['total']} at step {self.step}")
            losses.append(result.parts["total"])
            bar.update(1)
            bar.set_postfix(loss=f"{result.parts['total']:.3f}")
            if self.step % self.config.train.log_every_steps == 0:
                self._scalars({f"train/{k}": v for k, v in result.parts.items()}
                              | {"train/lr": self.optimizer.param_groups[0]["lr"]})
        bar.close()
        self.epoch += 1
        return EpochStats(self.epoch, len(losses), float(np.mean(losses)) if losses else 0.0,
                          self.optimizer.param_groups[0]["lr"], time.perf_counter() - t0)

    def fit(self, resume: str | Path | None = None) -> FitResult:
        """Train to ``train.epochs``, checkpointing and evaluating on the way."""
        tc = self.config.train
        if resume is not None:
            self.load_checkpoint(resume)
        history: list[EpochStats] = []
        metrics = None
        ckpt = None
        while self.epoch < tc.epochs:
            stats = self.train_epoch()
            history.append(stats)
            log.info("epoch %d: %d steps, loss %.4f, lr %.2e, %.1f s", stats.epoch, stats.steps,
                     stats.mean_loss, stats.lr, stats.seconds)
            last = self.epoch == tc.epochs
            if self.info.is_main and (last or self.epoch % tc.checkpoint_every_epochs == 0):
                ckpt = self.save_checkpoint(self.out_dir / "checkpoints" / "last.pt")
            evaluate = (tc.eval_every_epochs and self.epoch % tc.eval_every_epochs == 0) or last
            if evaluate and self.info.is_main:
                metrics = self.evaluate()
            barrier(self.info)
        return FitResult(history, metrics, ckpt)

    def evaluate(self) -> dict:
        """Metrics on the validation frames; written to ``metrics_epochN.json``."""
        if self.val_set is None:
            self.val_set = build_dataset(data_config(self.config), "val")
        result = evaluate_model(self.model, self.val_set, self.config.train.batch_size,
                                max_frames=self.config.data.max_val_frames)
        summary = metrics_summary(result)
        self._scalars({f"val/{k}": v for k, v in summary.items()})
        self.out_dir.mkdir(parents=True, exist_ok=True)
        path = self.out_dir / f"metrics_epoch{self.epoch}.json"
        write_text_atomic(path, json.dumps(result.to_json(), indent=2))
        log.info("epoch %d metrics: %s", self.epoch,
                 {k: round(v, 4) for k, v in summary.items() if "LEVEL_1" in k})
        return result.to_json()

    # ---------------------------------------------------------------------------------------
    def save_checkpoint(self, path: str | Path) -> Path:
        """Write model, optimiser, scheduler, scaler, counters and the config (plain data)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"format": CHECKPOINT_FORMAT, "model": self.model.state_dict(),
                 "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
                 "epoch": self.epoch, "step": self.step, "config": to_dict(self.config)}
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(path)
        return path

    def load_checkpoint(self, path: str | Path) -> None:
        """Resume from ``path`` (``weights_only=True``: tensors and plain data only)."""
        state = load_checkpoint_file(path, self.device)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        self.epoch = int(state["epoch"])
        self.step = int(state["step"])

    def _scalars(self, values: dict[str, float]) -> None:
        if not (self.config.train.tensorboard and self.info.is_main):
            return
        if self._tb is None:
            from torch.utils.tensorboard import SummaryWriter
            self._tb = SummaryWriter(str(self.out_dir / "tb"))
        for k, v in values.items():
            self._tb.add_scalar(k, v, self.step)
        self._tb.flush()


def training_database(config: GtSamplingConfig, model: ModelConfig, data: DataConfig,
                      progress: bool = True) -> GroundTruthDatabase:
    """The database of the un-augmented ``train`` split of ``data``, checked against
    ``model``; read from :func:`database_path` when cached there, else built and cached."""
    check_gt_sampling(model)
    path = database_path(data, config)
    if path is not None and path.is_file():
        return GroundTruthDatabase.load(path)
    frames = build_dataset(data, "train")
    db = GroundTruthDatabase.build((frames[i] for i in range(len(frames))), config.min_points,
                                   progress)
    if path is not None:
        db.save(path)
    return db


def load_trained(path: str | Path, device: torch.device | str = "cpu"
                 ) -> tuple[torch.nn.Module, ExperimentConfig]:
    """Detector (eval mode) and the whole experiment config it was trained with, from a
    training checkpoint (weights-only files carry no experiment config)."""
    state = load_checkpoint_file(path, device)
    if state["format"] != CHECKPOINT_FORMAT:
        raise DataError(f"a training checkpoint ({CHECKPOINT_FORMAT}) is needed here, not "
                        f"{state['format']}", source=str(path))
    config = from_dict(ExperimentConfig, state["config"], source=f"{path}:config")
    model = build_checked(config.model, state["model"], str(path))
    return model.to(device).eval(), config
