"""Model/experiment configs: every shipped config builds; bad configs raise ConfigError
naming the file and key."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from perception.config import config_dir
from perception.errors import ConfigError, ValidationError
from perception.models.detector import build_detector, count_parameters
from perception.train.config import load_experiment
from perception.types import Modality

SHIPPED = sorted(p for p in (config_dir() / "models").glob("*.yaml") if "base" not in p.stem)
EXPECTED = {"sim_cpu_lidar", "sim_cpu_camera", "sim_cpu_radar", "sim_cpu_camera_lidar",
            "sim_cpu_camera_lidar_radar", "sim_cpu_early_painting", "sim_cpu_late",
            "waymo_lidar", "waymo_camera_lidar", "nuscenes_camera_lidar_radar"}


def test_all_expected_configs_are_shipped():
    assert EXPECTED <= {p.stem for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_config_builds(path):
    config = load_experiment(path)
    if config.model.lidar is not None and config.model.lidar.encoder == "sparse":
        pytest.importorskip("spconv.pytorch")
    model = build_detector(config.model)
    assert count_parameters(model) > 10_000
    name = path.stem
    mods = config.model.modalities()
    assert (Modality.LIDAR in mods) == ("lidar" in name or "painting" in name
                                        or "late" in name)
    assert (Modality.RADAR in mods) == ("radar" in name or "late" in name)


STAGED = [p for p in SHIPPED if load_experiment(p).train.init_from]


@pytest.mark.parametrize("path", STAGED, ids=lambda p: p.stem)
def test_staged_configs_match_the_configs_they_start_from(path, tmp_path):
    """Every ``init_from`` checkpoint is the ``out_dir`` of a shipped config, or the shipped
    weights (made by the config on their card), and a checkpoint of that config loads into
    the staged model with the real loader (plain copies, a widened fuser or lidar encoder,
    late-fusion branches)."""
    import torch

    from perception.config import to_dict
    from perception.models.checkpoint import CHECKPOINT_FORMAT
    from perception.models.shipped import read_card
    from perception.train.pretrained import load_pretrained

    by_out_dir = {Path(load_experiment(p).train.out_dir): p for p in SHIPPED}
    card = read_card()
    shipped = {Path("perception/weights") / card["file"]: config_dir().parent / card["config"]}
    staged = load_experiment(path)
    sources = []
    for i, source in enumerate(staged.train.init_from):
        run_dir = Path(source.checkpoint).parent.parent
        made_by = shipped.get(Path(source.checkpoint)) or by_out_dir.get(run_dir)
        assert made_by is not None, f"{source.checkpoint}: no shipped config writes there"
        single = load_experiment(made_by)
        ckpt = tmp_path / f"source{i}.pt"
        torch.save({"format": CHECKPOINT_FORMAT, "model": build_detector(single.model)
                    .state_dict(), "config": to_dict(single)}, ckpt)
        sources.append(dataclasses.replace(source, checkpoint=str(ckpt)))
    report = load_pretrained(build_detector(staged.model), sources)
    assert len(report) == sum(len(s.modules) for s in sources)


def _write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, key", [
    ("model: {lidar: {encoder: voxels}}", "model.lidar.encoder"),
    ("model: {lidar: {pillar_channels: [0]}}", "model.lidar.pillar_channels[0]"),
    ("model: {lidar: {}, grid: {cell_size_m: [0.3, 0.5]}}", "model.grid"),
    ("model: {lidar: {}, head: {tasks: [[VEHICLE], [VEHICLE]]}}", "model.head"),
    ("model: {lidar: {}, head: {tasks: [[TRUCK]], nms_radius_m: [1.0]}}", "model.head"),
    ("model: {lidar: {}, fuser: {modality_dropout: 1.5}}", "model.fuser.modality_dropout"),
    ("model: {fusion: early, lidar: {}}", "model"),
    ("model: {}", "model"),
    ("model: {camera: {image_size_hw: [60, 96]}}", "model.camera"),
    ("model: {camera: {lidar_depth_prior: true}}", "model"),
    ("model: {lidar: {}, backbone: {layer_nums: [1, 1], layer_strides: [1]}}",
     "model.backbone"),
    ("model: {lidar: {}}\ndata: {train_seeds: [1, 2], val_seeds: [2]}", "data"),
    ("model: {lidar: {}}\ntrain: {schedule: linear}", "train.schedule"),
    ("model: {lidar: {}}\ntrain: {lr: 0}", "train.lr"),
    ("model: {lidar: {}, colour: red}", "model.colour"),
])
def test_bad_configs_raise_config_error(tmp_path, text, key):
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_experiment(path)
    message = str(info.value)
    assert str(path) in message and key in message


def test_base_inheritance_one_level(tmp_path):
    _write(tmp_path, "model: {lidar: {}, fuser: {out_channels: 32}}\ntrain: {epochs: 3}",
           "base.yaml")
    child = _write(tmp_path, "base: base.yaml\ntrain: {epochs: 5}")
    config = load_experiment(child)
    assert config.train.epochs == 5 and config.model.fuser.out_channels == 32
    _write(tmp_path, "base: base.yaml\nmodel: {lidar: {}}", "mid.yaml")
    grandchild = _write(tmp_path, "base: mid.yaml", "leaf.yaml")
    with pytest.raises(ConfigError):
        load_experiment(grandchild)


def test_build_detector_rejects_non_config():
    with pytest.raises(ValidationError):
        build_detector({"lidar": {}})
