"""Staged fusion training: modules of a fused detector start from single-modality checkpoints."""

from __future__ import annotations

import pytest
import torch

from perception.errors import ConfigError, DataError
from perception.models.batch import collate_frames
from perception.models.config import LidarConfig
from perception.models.detector import build_detector
from perception.train.config import (
    AugmentConfig,
    ExperimentConfig,
    PretrainedSource,
    TrainConfig,
)
from perception.train.data import FrameDataset
from perception.train.pretrained import load_pretrained
from perception.train.trainer import Trainer
from perception.types import Modality

from ..models._helpers import small_model_config


def _lidar_checkpoint(frames, tmp_path):
    config = ExperimentConfig(
        model=small_model_config(camera=None, radar=None),
        augment=AugmentConfig(enabled=False),
        train=TrainConfig(out_dir=str(tmp_path / "lidar"), epochs=1, batch_size=2,
                          eval_every_epochs=0, tensorboard=False, progress=False))
    trainer = Trainer(config, train_set=FrameDataset(lambda i: frames[i], 2))
    trainer.train_epoch()
    return trainer.model, trainer.save_checkpoint(tmp_path / "lidar.pt")


def test_named_modules_are_copied_and_others_left_alone(tiny_frames, tmp_path):
    lidar_model, ckpt = _lidar_checkpoint(tiny_frames, tmp_path)
    fused = build_detector(small_model_config())
    camera_before = {k: v.clone() for k, v in fused.state_dict().items()
                     if k.startswith("camera.")}
    report = load_pretrained(fused, [PretrainedSource(str(ckpt), ("lidar", "backbone", "head"))])
    assert set(report) == {"lidar.pt:lidar", "lidar.pt:backbone", "lidar.pt:head"}
    source = lidar_model.state_dict()
    for key, value in fused.state_dict().items():
        if key.split(".")[0] in ("lidar", "backbone", "head"):
            assert torch.equal(value, source[key]), key
        elif key.startswith("camera."):
            assert torch.equal(value, camera_before[key]), key


def test_trainer_applies_init_from(tiny_frames, tmp_path):
    lidar_model, ckpt = _lidar_checkpoint(tiny_frames, tmp_path)
    config = ExperimentConfig(
        model=small_model_config(),
        augment=AugmentConfig(enabled=False),
        train=TrainConfig(out_dir=str(tmp_path / "fused"), epochs=1, tensorboard=False,
                          progress=False,
                          init_from=(PretrainedSource(str(ckpt), ("lidar",)),)))
    trainer = Trainer(config, train_set=FrameDataset(lambda i: tiny_frames[i], 2))
    for key, value in lidar_model.state_dict().items():
        if key.startswith("lidar."):
            assert torch.equal(trainer.model.state_dict()[key], value), key


def test_bad_sources_are_config_errors_and_load_nothing(tiny_frames, tmp_path):
    _, ckpt = _lidar_checkpoint(tiny_frames, tmp_path)
    fused = build_detector(small_model_config())
    before = {k: v.clone() for k, v in fused.state_dict().items()}
    with pytest.raises(ConfigError, match="has no tensor 'camera"):
        load_pretrained(fused, [PretrainedSource(str(ckpt), ("lidar", "camera"))])
    with pytest.raises(ConfigError, match="no module 'decoder'"):
        load_pretrained(fused, [PretrainedSource(str(ckpt), ("decoder",))])
    with pytest.raises(ConfigError, match="named by two sources"):
        load_pretrained(fused, [PretrainedSource(str(ckpt), ("lidar",)),
                                PretrainedSource(str(ckpt), ("lidar",))])
    narrower = build_detector(small_model_config(lidar=LidarConfig(pillar_channels=(8,))))
    with pytest.raises(ConfigError, match=r"in the model"):
        load_pretrained(narrower, [PretrainedSource(str(ckpt), ("lidar",))])
    with pytest.raises(DataError, match="not found"):
        load_pretrained(fused, [PretrainedSource(str(tmp_path / "missing.pt"), ("lidar",))])
    for key, value in fused.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_widened_fuser_starts_as_the_single_modality_model(tiny_frames, tmp_path):
    """Lidar encoder, fuser, backbone and head from a lidar-only checkpoint: with camera and
    radar present, the fused model first predicts exactly what the lidar-only model does."""
    lidar_model, ckpt = _lidar_checkpoint(tiny_frames, tmp_path)
    fused = build_detector(small_model_config())
    report = load_pretrained(fused, [PretrainedSource(str(ckpt),
                                                      ("lidar", "fuser", "backbone", "head"))])
    assert "lidar.pt:fuser" in report
    lidar_model.eval()
    fused.eval()
    batch_l = collate_frames(tiny_frames[:2], lidar_model.spec)
    batch_f = collate_frames(tiny_frames[:2], fused.spec)
    assert bool(batch_f.present.all())  # camera and radar really are fed in
    with torch.no_grad():
        ref = lidar_model(batch_l).tasks
        out = fused(batch_f).tasks
    for a, b in zip(ref, out):
        assert torch.allclose(a.heatmap, b.heatmap, atol=1e-5)
        assert torch.allclose(a.regression, b.regression, atol=1e-5)
    # Training then reaches the new inputs: their weights get gradients.
    fused.train()
    loss = fused.loss(batch_f, fused(batch_f)).total
    loss.backward()
    conv = fused.fuser.fuse[0][0].weight
    assert conv.grad[:, 16:48].abs().sum() > 0  # camera and radar channels


def test_lidar_depth_prior_starts_fresh_from_a_camera_without_it(tiny_frames, tmp_path):
    """A camera taken from a model without the lidar depth prior: every other camera tensor
    is copied, the prior stays at zero; a source that has the prior gives it too."""
    import dataclasses

    from perception.models.checkpoint import CHECKPOINT_FORMAT

    source = build_detector(small_model_config())
    torch.save({"format": CHECKPOINT_FORMAT, "model": source.state_dict(), "config": {}},
               tmp_path / "camera.pt")
    config = small_model_config()
    config.camera = dataclasses.replace(config.camera, lidar_depth_prior=True)
    fused = build_detector(config)
    report = load_pretrained(fused, [PretrainedSource(str(tmp_path / "camera.pt"), ("camera",))])
    state = fused.state_dict()
    own = [k for k in state if k.startswith("camera.")]
    assert report == {"camera.pt:camera": len(own) - 2}
    for key in own:
        if key.startswith("camera.depth_prior."):
            assert not state[key].any(), key
        else:
            assert torch.equal(state[key], source.state_dict()[key]), key
    with torch.no_grad():
        fused.camera.depth_prior.conv.weight.fill_(0.5)
    torch.save({"format": CHECKPOINT_FORMAT, "model": fused.state_dict(), "config": {}},
               tmp_path / "prior.pt")
    again = build_detector(config)
    load_pretrained(again, [PretrainedSource(str(tmp_path / "prior.pt"), ("camera",))])
    assert bool((again.camera.depth_prior.conv.weight == 0.5).all())


def test_stride_4_camera_starts_from_a_stride_8_one(tmp_path):
    """A camera trained at stride 8 fine-tuned at stride 4: every tensor it has is copied,
    the stride-4 lateral stays at zero."""
    import dataclasses

    from perception.models.checkpoint import CHECKPOINT_FORMAT

    source = build_detector(small_model_config())
    assert source.config.camera.feature_stride == 8
    torch.save({"format": CHECKPOINT_FORMAT, "model": source.state_dict(), "config": {}},
               tmp_path / "camera.pt")
    config = small_model_config()
    config.camera = dataclasses.replace(config.camera, feature_stride=4)
    fine = build_detector(config)
    report = load_pretrained(fine, [PretrainedSource(str(tmp_path / "camera.pt"), ("camera",))])
    state = fine.state_dict()
    own = [k for k in state if k.startswith("camera.")]
    assert report == {"camera.pt:camera": len(own) - 2}
    for key in own:
        if key.startswith("camera.neck.lateral4."):
            assert not state[key].any(), key
        else:
            assert torch.equal(state[key], source.state_dict()[key]), key


def test_widened_fuser_refuses_a_source_without_that_modality(tiny_frames, tmp_path):
    _, ckpt = _lidar_checkpoint(tiny_frames, tmp_path)
    camera_radar = build_detector(small_model_config(lidar=None))
    with pytest.raises(ConfigError, match="fuses lidar"):
        load_pretrained(camera_radar, [PretrainedSource(str(ckpt), ("fuser",))])


def test_early_fusion_widened_from_lidar_starts_as_the_lidar_model(tiny_frames, tmp_path):
    """Point painting appends image-feature columns to every lidar point: the pillar net's
    first layer is widened with zero weights on them, so the painted model starts out
    predicting exactly what the lidar-only model does."""
    from perception.models.config import PaintingConfig

    lidar_model, ckpt = _lidar_checkpoint(tiny_frames, tmp_path)
    early = build_detector(small_model_config(
        fusion="early", camera=None, radar=None,
        painting=PaintingConfig(channels=4, image_size_hw=(64, 96),
                                backbone_channels=(8, 16, 32))))
    report = load_pretrained(early, [PretrainedSource(str(ckpt),
                                                      ("lidar", "fuser", "backbone", "head"))])
    assert "lidar.pt:lidar" in report
    lidar_model.eval()
    early.eval()
    with torch.no_grad():
        ref = lidar_model(collate_frames(tiny_frames[:2], lidar_model.spec)).tasks
        batch = collate_frames(tiny_frames[:2], early.spec)
        assert bool(batch.has(Modality.CAMERA).all())  # the points really are painted
        out = early(batch).tasks
    for a, b in zip(ref, out):
        assert torch.allclose(a.heatmap, b.heatmap, atol=1e-5)
    first = early.lidar.pfn.layers[0][0].weight
    assert first.shape[1] == lidar_model.lidar.pfn.layers[0][0].weight.shape[1] + 5
    early.train()
    early.loss(batch, early(batch)).total.backward()
    assert first.grad[:, 5:10].abs().sum() > 0  # the painted columns learn
