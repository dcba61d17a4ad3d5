"""Evaluate a trained checkpoint on its config's held-out frames, with every modality present
and with each modality removed at test time (the robustness rows of the results table).

``python -m perception.train.evaluate CKPT [--out metrics.json] [--max-frames N]`` prints
AP/APH at LEVEL_1 and LEVEL_2 per class and per test-time modality set.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

from ..atomic import write_text_atomic
from ..errors import ConfigError
from ..eval.detection import DetectionConfig
from ..models.checkpoint import CHECKPOINT_FORMAT, load_checkpoint_file, read_detector
from ..models.config import ModelConfig
from ..types import DETECTION_CLASSES, Modality
from .config import ExperimentConfig, load_experiment
from .misalign import Misalignment, misaligned_loader
from .data import FrameDataset, build_dataset
from .trainer import data_config, evaluate_model, load_trained


def modality_ablations(model, single: bool = False) -> list[frozenset[Modality]]:
    """``[{}] + [{m} for each model modality]``: what to drop, one row each (single-modality
    models get only the full row). ``single`` adds one row per modality kept alone (for a
    3-modality model: every non-empty subset of its sensors, 7 rows)."""
    mods = list(model.modalities)
    drops = [frozenset()]
    if len(mods) > 1:
        drops += [frozenset({m}) for m in mods]
    if single and len(mods) > 2:
        drops += [frozenset(mods) - {m} for m in mods]
    return drops


def row_name(drop: frozenset[Modality], modalities: tuple[Modality, ...]) -> str:
    """``all``, ``without_<m>...`` or, when one modality is left, ``only_<m>``."""
    if not drop:
        return "all"
    kept = [m for m in modalities if m not in drop]
    if len(kept) == 1 and len(drop) > 1:
        return f"only_{kept[0].value}"
    return "without_" + "_".join(sorted(m.value for m in drop))


def evaluate_checkpoint(path: str | Path, max_frames: int = 0, batch_size: int = 2,
                        config_path: str | Path | None = None, ablations: bool = True,
                        progress: bool = False,
                        detection_config: DetectionConfig | None = None,
                        single_modalities: bool = False, split: str = "val",
                        misalignments: tuple[Misalignment, ...] = (),
                        late_merge: str | None = None) -> dict:
    """``{"all": metrics, "without_lidar": metrics, ...}`` (metrics as ``to_json()``).

    The validation frames come from ``config_path``'s data section when given (its model
    section must equal the checkpoint's), otherwise from the config stored in the checkpoint.
    ``ablations=False`` evaluates the ``all`` row only. ``detection_config`` overrides the
    official Waymo IoU thresholds. ``single_modalities`` adds ``only_<m>`` rows. ``split``:
    ``val`` or ``test`` (the second held-out seeds, for final tables). Each of
    ``misalignments`` adds a row with every modality and that test-time misalignment.
    ``late_merge`` (``nms`` or ``wbf``) replaces a late-fusion model's box merge, which runs
    at decode time, so one trained model is evaluated with both.
    """
    model, config = load_evaluated(path, config_path)
    if late_merge is not None:
        model.config = with_late_merge(config.model, late_merge)
    frames = build_dataset(data_config(config), split)
    out = {}
    drops = modality_ablations(model, single_modalities) if ablations else [frozenset()]
    for drop in drops:
        name = row_name(drop, model.modalities)
        out[name] = evaluate_model(model, frames, batch_size, drop=drop, max_frames=max_frames,
                                   progress=name if progress else None,
                                   detection_config=detection_config).to_json()
    for m in misalignments:
        shifted = FrameDataset(misaligned_loader(frames.load, frames.previous, m),
                               frames.length, frames.transform, frames.radar_scans,
                               frames.lidar_sweeps, previous=frames.previous)
        out[m.name] = evaluate_model(model, shifted, batch_size, max_frames=max_frames,
                                     progress=m.name if progress else None,
                                     detection_config=detection_config).to_json()
    return out


def load_evaluated(path: str | Path, config_path: str | Path | None = None
                   ) -> tuple[torch.nn.Module, ExperimentConfig]:
    """The detector of ``path`` and the experiment whose frames evaluate it.

    A training checkpoint stores its experiment; ``config_path``, when given, replaces it.
    A weights file (such as ``perception/weights/sim_fusion.pt``) stores no data section, so
    it needs ``config_path``. The given config's model section must equal the file's, and its
    lidar sweeps and radar scans per frame must be the ones the file was trained with.
    """
    if config_path is None:
        if load_checkpoint_file(path)["format"] != CHECKPOINT_FORMAT:
            raise ConfigError(f"{path}: a weights file stores no frames to evaluate on; give "
                              f"the CONFIG whose data section to use")
        return load_trained(path)
    loaded = read_detector(path)
    given = load_experiment(config_path)
    if _network(given.model) != _network(loaded.config):
        raise ConfigError(f"{config_path}: its model section differs from the one "
                          f"{path} was trained with")
    data = data_config(given)
    if (loaded.lidar_sweeps, loaded.radar_scans) != (data.lidar_sweeps, data.radar_scans):
        raise ConfigError(f"{config_path}: data.lidar_sweeps / data.radar_scans "
                          f"{data.lidar_sweeps} / {data.radar_scans}, but {path} was trained "
                          f"with {loaded.lidar_sweeps} / {loaded.radar_scans}")
    return loaded.model, given


def with_late_merge(model: ModelConfig, merge: str) -> ModelConfig:
    """``model`` with late fusion's box merge set to ``merge`` (``nms`` or ``wbf``)."""
    if model.fusion != "late":
        raise ConfigError(f"late_merge applies to late fusion only; this model's fusion is "
                          f"{model.fusion!r}")
    if merge not in ("nms", "wbf"):
        raise ConfigError(f"late_merge: expected nms or wbf, got {merge!r}")
    return dataclasses.replace(model, late_merge=merge)


def _network(model: ModelConfig) -> ModelConfig:
    """``model`` without its training-only settings (modality dropout and its schedule,
    depth-loss weight), which do not change what a checkpoint computes."""
    fuser = dataclasses.replace(model.fuser, modality_dropout=0.0, modality_dropout_mode="one",
                                subset_size_weights=(), dropout_modalities=())
    camera = (dataclasses.replace(model.camera, depth_loss_weight=0.0)
              if model.camera is not None else None)
    return dataclasses.replace(model, fuser=fuser, camera=camera)


def format_rows(results: dict) -> str:
    lines = ["| test-time input | " + " | ".join(
        f"{c.name} L{lvl} AP/APH" for c in DETECTION_CLASSES for lvl in (1, 2)) + " |"]
    for name, metrics in results.items():
        cells = []
        for c in DETECTION_CLASSES:
            for lvl in (1, 2):
                m = metrics[f"{c.name}_LEVEL_{lvl}"]
                cells.append(f"{m['AP']:.3f}/{m['APH']:.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--out", type=Path, help="write the metrics as JSON here")
    parser.add_argument("--max-frames", type=int, default=0)
    args = parser.parse_args(argv)
    results = evaluate_checkpoint(args.checkpoint, args.max_frames)
    print(format_rows(results))
    if args.out is not None:
        write_text_atomic(args.out, json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
