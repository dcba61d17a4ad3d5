"""Shipping a trained checkpoint: float16 weights, a card with checksum and held-out metrics."""

from __future__ import annotations

import dataclasses

import yaml

from perception.config import to_dict
from perception.models.checkpoint import read_detector
from perception.models.shipped import sha256_of
from perception.train.config import DataConfig
from perception.train.ship import ship

from .test_checkpoint import _trainer


def test_ship_writes_weights_and_a_card_with_every_modality_row(tiny_frames, tmp_path):
    trainer = _trainer(tiny_frames, tmp_path)
    trainer.config = dataclasses.replace(trainer.config, data=DataConfig(
        sim_preset="tiny", train_seeds=(0,), val_seeds=(5,), frames_per_seed=2,
        cache_dir=str(tmp_path / "cache"), radar_scans=2))
    ckpt = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    config_path = tmp_path / "experiment.yaml"
    config_path.write_text(yaml.safe_dump(to_dict(trainer.config)))
    out = tmp_path / "weights"
    out.mkdir()
    card_path = ship(ckpt, config_path, "tiny_model", out, evaluate=True, max_frames=2)
    card = yaml.safe_load(card_path.read_text())
    weights = out / "tiny_model.pt"
    assert card["file"] == "tiny_model.pt" and card["sha256"] == sha256_of(weights)
    assert card["data"]["val_seeds"] == [5] and card["training"]["epochs"] == 3
    assert list(card["metrics"]) == ["all", "without_lidar", "without_camera", "without_radar",
                                     "only_lidar", "only_camera", "only_radar"]
    assert 0.0 <= card["metrics"]["only_radar"]["VEHICLE_LEVEL_1"]["AP"] <= 1.0
    loaded = read_detector(weights)
    assert loaded.radar_scans == 2 and loaded.lidar_sweeps == 1
    assert weights.stat().st_size < ckpt.stat().st_size  # float16, no optimiser state


def test_card_reproduce_commands_give_epochs_that_differ_from_the_config(tiny_frames, tmp_path):
    trainer = _trainer(tiny_frames, tmp_path)
    ckpt = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    config = to_dict(trainer.config)
    config["train"]["epochs"] = 7  # trained with `--epochs 3` over a config that says 7
    config_path = tmp_path / "experiment.yaml"
    config_path.write_text(yaml.safe_dump(config))
    out = tmp_path / "weights"
    out.mkdir()
    card = yaml.safe_load(ship(ckpt, config_path, "tiny_model", out, evaluate=False).read_text())
    train_step = [c for c in card["training"]["reproduce"] if c.startswith("perception train")]
    assert train_step == [f"perception train {config_path.as_posix()} --epochs 3"]
