"""The weights shipped inside the package: card, checksum, loading, and that they detect."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from perception.data.sim import Simulator
from perception.errors import ConfigError, DataError
from perception.models import shipped
from perception.models.checkpoint import load_detector, read_detector
from perception.pipeline import Pipeline
from perception.train.config import load_experiment
from perception.types import ObjectClass


def test_card_matches_the_file_and_the_size_limit():
    card = shipped.read_card()
    path = shipped.WEIGHTS_DIR / card["file"]
    assert shipped.sha256_of(path) == card["sha256"]
    assert card["size_bytes"] == path.stat().st_size
    total = sum(p.stat().st_size for p in shipped.WEIGHTS_DIR.glob("*.pt"))
    assert total < 10 * 1024 * 1024
    for key in ("config", "data", "training", "date", "modalities"):
        assert key in card
    # The card's config is the shipped experiment YAML and it builds the shipped network.
    config = load_experiment(card["config"])
    model, model_config = load_detector(path, config=config.model)
    assert not model.training
    assert model_config == config.model


def test_shipped_model_detects_a_vehicle_in_a_simulated_frame():
    pipeline = Pipeline.default()
    frame = Simulator("nuscenes_like", seed=2024).frame(10)
    out = pipeline.process(frame)
    assert out.modalities == {m for m in frame.modalities}
    vehicles = frame.boxes.select(frame.boxes.labels == ObjectClass.VEHICLE)
    found = out.detections.select((out.detections.labels == ObjectClass.VEHICLE)
                                  & (out.detections.scores >= 0.3))
    assert len(vehicles) and len(found)
    distance = np.linalg.norm(found.boxes[:, None, :2] - vehicles.boxes[None, :, :2], axis=-1)
    assert distance.min() < 2.0


def test_missing_or_corrupt_weights_name_the_file_and_the_sha256(tmp_path, monkeypatch):
    card = shipped.read_card()
    copy = tmp_path / "weights"
    shutil.copytree(shipped.WEIGHTS_DIR, copy)
    monkeypatch.setattr(shipped, "WEIGHTS_DIR", copy)
    (copy / card["file"]).unlink()
    with pytest.raises(DataError, match=card["sha256"]) as missing:
        shipped.shipped_weights_path()
    assert card["file"] in str(missing.value)
    (copy / card["file"]).write_bytes(b"\x80\x02not weights")
    with pytest.raises(DataError, match=f"expected {card['sha256']}"):
        Pipeline.from_checkpoint(None)
    with pytest.raises(DataError, match="no shipped model named 'nope'"):
        shipped.read_card("nope")


def test_a_config_that_does_not_fit_names_the_first_mismatching_tensor():
    path = shipped.shipped_weights_path()
    config = load_experiment(shipped.read_card()["config"]).model
    narrower = dataclasses.replace(config, fuser=dataclasses.replace(config.fuser,
                                                                     out_channels=32))
    with pytest.raises(ConfigError, match=r"tensor fuser\.fuse\.0\.0\.weight is"):
        read_detector(path, config=narrower)
    # Without radar the fuser is narrower first (state-dict order), then radar.* is extra.
    no_radar = dataclasses.replace(config, radar=None,
                                   fuser=dataclasses.replace(config.fuser, out_channels=64))
    with pytest.raises(ConfigError, match=r"fuser\.fuse\.0\.0\.weight"):
        read_detector(path, config=no_radar)


def test_weights_are_float16_and_load_without_unpickling():
    state = torch.load(shipped.shipped_weights_path(), weights_only=True)
    floats = [v for v in state["model"].values() if v.is_floating_point()]
    assert floats and all(v.dtype == torch.float16 for v in floats)
