"""Ship a trained detector inside the package: float16 weights and a card.

``python -m perception.train.ship CKPT --config CONFIG [--name sim_fusion]`` writes
``perception/weights/<name>.pt`` (weights only, :data:`~perception.models.checkpoint.WEIGHTS_FORMAT`)
and ``<name>.card.yaml``: the config, the training data, the epochs, the held-out metrics
with every modality, each one removed and each one alone, the date, the size and the sha256
of the weights file. The metrics are those of the float16 weights as shipped.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import tempfile
from pathlib import Path

import yaml

from ..config import to_dict
from ..errors import PerceptionError
from ..models.checkpoint import read_detector, save_weights
from ..models.shipped import WEIGHTS_DIR, sha256_of
from ..types import DETECTION_CLASSES
from .config import ExperimentConfig, load_experiment
from .evaluate import evaluate_checkpoint
from .trainer import load_trained

WEIGHTS_SIZE_LIMIT_BYTES = 10 * 1024 * 1024
"""All shipped weights together stay under 10 MB in git."""


def ship(checkpoint: Path, config_path: Path, name: str, out_dir: Path = WEIGHTS_DIR,
         evaluate: bool = True, max_frames: int = 0, note: str = "") -> Path:
    """Write ``<out_dir>/<name>.pt`` and its card; returns the card path."""
    model, trained = load_trained(checkpoint)
    config = load_experiment(config_path)
    weights = out_dir / f"{name}.pt"
    # Weights and card are written under temporary names and renamed together at the end,
    # so the shipped pair never disagrees while the held-out evaluation runs.
    staged = out_dir / f".{name}.pt.new"
    save_weights(staged, model, trained.model, lidar_sweeps=_sweeps(trained, "lidar"),
                 radar_scans=_sweeps(trained, "radar"))
    size = staged.stat().st_size
    others = sum(p.stat().st_size for p in out_dir.glob("*.pt") if p != weights)
    if size + others > WEIGHTS_SIZE_LIMIT_BYTES:
        staged.unlink()
        raise ValueError(f"shipped weights would total {(size + others) / 2**20:.1f} MiB, over "
                         f"the {WEIGHTS_SIZE_LIMIT_BYTES / 2**20:.0f} MiB limit")
    try:
        read_detector(staged)  # the file loads back as shipped
        card = _card(name, staged, config_path, config, trained, note)
        card["file"] = weights.name
        if evaluate:
            card["metrics"] = _held_out_metrics(staged, config_path, max_frames)
        path = out_dir / f"{name}.card.yaml"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(card, sort_keys=False, width=100,
                                      default_flow_style=None))
    except BaseException:
        staged.unlink(missing_ok=True)
        raise
    staged.replace(weights)
    tmp.replace(path)
    return path


def _sweeps(config: ExperimentConfig, modality: str) -> int:
    if modality == "lidar":
        return config.data.lidar_sweeps if config.model.lidar is not None else 1
    return config.data.radar_scans if config.model.radar is not None else 1


def _card(name: str, weights: Path, config_path: Path, config: ExperimentConfig,
          trained: ExperimentConfig, note: str) -> dict:
    data = trained.data
    frames_train = len(data.train_seeds) * data.frames_per_seed
    mods = "+".join(m.value for m in sorted(trained.model.modalities(), key=lambda m: m.value))
    stages = [{"checkpoint": s.checkpoint, "modules": list(s.modules)}
              for s in trained.train.init_from]
    return {
        "name": name,
        "file": weights.name,
        "sha256": sha256_of(weights),
        "size_bytes": weights.stat().st_size,
        "date": datetime.date.today().isoformat(),
        "dtype": "float16 (loaded as float32)",
        "modalities": mods,
        "config": config_path.as_posix(),
        "data": {
            "summary": f"{frames_train} simulated frames ({data.sim_preset} rig, seeds "
                       f"{min(data.train_seeds)}-{max(data.train_seeds)})",
            "source": data.source, "preset": data.sim_preset,
            "train_seeds": list(data.train_seeds), "val_seeds": list(data.val_seeds),
            "frames_per_seed": data.frames_per_seed, "frame_stride": data.frame_stride,
            "radar_scans": data.radar_scans, "lidar_sweeps": data.lidar_sweeps,
        },
        "training": {
            "epochs": trained.train.epochs, "batch_size": trained.train.batch_size,
            "lr": trained.train.lr, "modality_dropout": trained.model.fuser.modality_dropout,
            "modality_dropout_mode": trained.model.fuser.modality_dropout_mode,
            "staged_from": stages,
            "reproduce": _reproduce(config_path, trained),
        },
        "note": note,
        "experiment": to_dict(trained),
    }


def _reproduce(config_path: Path, trained: ExperimentConfig) -> list[str]:
    """The commands that rebuild the shipped model, every stage of the chain in order, with
    ``--epochs`` wherever a stage was trained for another number of epochs than its config
    file says (known when the stage's checkpoint is still there). A stage's config is the one
    in ``config_path``'s folder whose ``out_dir`` holds the stage's checkpoint."""
    steps: list[str] = []
    # The config file's stages: the run may have started from a copy (shipped weights).
    for stage in load_experiment(config_path).train.init_from:
        stage_config = _config_writing(Path(stage.checkpoint), config_path.parent)
        if stage_config is None:
            steps.append(f"# {stage.checkpoint}: no config in {config_path.parent.as_posix()} "
                         f"writes it")
            continue
        try:
            stage_trained = load_trained(Path(stage.checkpoint))[1]
        except (OSError, ValueError, PerceptionError):
            stage_trained = load_experiment(stage_config)
        steps += [s for s in _reproduce(stage_config, stage_trained)[:-1] if s not in steps]
    return steps + [f"perception train {config_path.as_posix()}"
                    + _epochs_flag(Path(trained.train.out_dir) / "checkpoints" / "last.pt",
                                   config_path, trained),
                    f"python -m perception.train.ship {trained.train.out_dir}/checkpoints/"
                    f"last.pt --config {config_path.as_posix()}"]


def _config_writing(checkpoint: Path, configs: Path) -> Path | None:
    """The experiment YAML in ``configs`` whose ``train.out_dir`` holds ``checkpoint``."""
    run_dir = checkpoint.parent.parent
    for path in sorted(configs.glob("*.yaml")):
        try:
            if Path(load_experiment(path).train.out_dir) == run_dir:
                return path
        except (OSError, ValueError, PerceptionError):
            continue  # base files and others that are not whole experiments
    return None


def _epochs_flag(checkpoint: Path, config_path: Path,
                 trained: ExperimentConfig | None = None) -> str:
    """`` --epochs N`` when the checkpoint was trained for N epochs and the config says
    otherwise; empty when they agree or either cannot be read."""
    try:
        if trained is None:
            trained = load_trained(checkpoint)[1]
        configured = load_experiment(config_path).train.epochs
    except (OSError, ValueError, PerceptionError):
        return ""
    return "" if trained.train.epochs == configured else f" --epochs {trained.train.epochs}"


def _held_out_metrics(weights: Path, config_path: Path, max_frames: int) -> dict:
    """AP/APH per class and level on the config's validation seeds, for every test-time
    modality set, of the shipped (float16) weights."""
    with tempfile.TemporaryDirectory() as tmp:
        # evaluate_checkpoint reads training checkpoints; wrap the shipped weights in one.
        ckpt = _as_checkpoint(weights, config_path, Path(tmp) / "shipped.pt")
        results = evaluate_checkpoint(ckpt, max_frames=max_frames, config_path=config_path,
                                      progress=True, single_modalities=True)
    keys = [f"{c.name}_LEVEL_{level}" for c in DETECTION_CLASSES for level in (1, 2)]
    return {row: {k: {"AP": round(float(m[k]["AP"]), 4), "APH": round(float(m[k]["APH"]), 4)}
                  for k in keys} for row, m in results.items()}


def _as_checkpoint(weights: Path, config_path: Path, out: Path) -> Path:
    import torch

    from ..models.checkpoint import CHECKPOINT_FORMAT

    loaded = read_detector(weights)
    config = load_experiment(config_path)
    torch.save({"format": CHECKPOINT_FORMAT, "model": loaded.model.state_dict(),
                "config": to_dict(config)}, out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="training checkpoint (last.pt)")
    parser.add_argument("--config", type=Path, required=True, help="its experiment YAML")
    parser.add_argument("--name", default="sim_fusion", help="shipped model name")
    parser.add_argument("--out-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--no-eval", action="store_true", help="no held-out metrics")
    parser.add_argument("--max-frames", type=int, default=0)
    parser.add_argument("--note", default="", help="free text for the card")
    args = parser.parse_args(argv)
    card = ship(args.checkpoint, args.config, args.name, args.out_dir, not args.no_eval,
                args.max_frames, args.note)
    print(card.read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
