"""Checkpoints: save, load with ``weights_only=True``, resume; bad files are typed errors."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

from perception.errors import DataError
from perception.models.checkpoint import load_checkpoint_file, load_detector
from perception.train.config import AugmentConfig, ExperimentConfig, TrainConfig
from perception.train.data import FrameDataset
from perception.train.trainer import Trainer

from ..models._helpers import small_model_config


def _trainer(frames, tmp_path, schedule="onecycle"):
    config = ExperimentConfig(
        model=small_model_config(),
        augment=AugmentConfig(enabled=False),
        train=TrainConfig(out_dir=str(tmp_path), epochs=3, batch_size=2, lr=0.005,
                          schedule=schedule, eval_every_epochs=0, tensorboard=False,
                          progress=False))
    dataset = FrameDataset(lambda i: frames[i % len(frames)], 2)
    return Trainer(config, train_set=dataset, val_set=dataset)


@pytest.mark.parametrize("schedule", ["onecycle", "cosine"])
def test_checkpoint_round_trip_and_resume(tiny_frames, tmp_path, schedule):
    a = _trainer(tiny_frames, tmp_path, schedule)
    a.train_epoch()
    path = a.save_checkpoint(tmp_path / "ckpt.pt")
    state = torch.load(path, weights_only=True)  # plain data only: loads without pickle code
    assert state["epoch"] == 1 and state["step"] == 1
    assert state["config"]["model"]["lidar"]["pillar_channels"] == [16]

    b = _trainer(tiny_frames, tmp_path, schedule)
    b.load_checkpoint(path)
    assert (b.epoch, b.step) == (1, 1)
    for (name, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), name
    assert b.optimizer.param_groups[0]["lr"] == a.optimizer.param_groups[0]["lr"]
    # Resumed and uninterrupted training take the same next step.
    torch.manual_seed(5)
    a.train_epoch()
    torch.manual_seed(5)
    b.train_epoch()
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.allclose(p, q, atol=1e-6)

    model, config = load_detector(path)
    assert config == a.config.model
    assert not model.training
    det = model.predict(tiny_frames[:1])[0]
    assert det.modalities


def test_bad_checkpoints_are_typed_errors(tmp_path):
    with pytest.raises(DataError):
        load_checkpoint_file(tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(DataError):
        load_checkpoint_file(junk)
    wrong = tmp_path / "wrong.pt"
    torch.save({"model": {}}, wrong)
    with pytest.raises(DataError, match="not a fusion_perception"):
        load_checkpoint_file(wrong)


class _Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"format": "fusion_perception.checkpoint/1", "x": _Evil()}, f, protocol=2)
    with pytest.raises(DataError, match="cannot load checkpoint"):
        load_checkpoint_file(path)


def test_evaluate_checkpoint_with_modality_ablations(tiny_frames, tmp_path):
    import dataclasses

    from perception.train.config import DataConfig
    from perception.train.evaluate import evaluate_checkpoint, format_rows

    trainer = _trainer(tiny_frames, tmp_path)
    trainer.config = dataclasses.replace(trainer.config, data=DataConfig(
        sim_preset="tiny", train_seeds=(0,), val_seeds=(5,), frames_per_seed=1,
        cache_dir=str(tmp_path / "cache")))
    path = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    results = evaluate_checkpoint(path)
    assert list(results) == ["all", "without_lidar", "without_camera", "without_radar"]
    assert 0.0 <= results["all"]["VEHICLE_LEVEL_1"]["AP"] <= 1.0
    assert "without_radar" in format_rows(results)


def test_evaluate_checkpoint_on_the_test_split_with_misalignment(tiny_frames, tmp_path):
    import dataclasses

    from perception.train.config import DataConfig
    from perception.train.evaluate import evaluate_checkpoint
    from perception.train.misalign import STANDARD

    trainer = _trainer(tiny_frames, tmp_path)
    trainer.config = dataclasses.replace(trainer.config, data=DataConfig(
        sim_preset="tiny", train_seeds=(0,), val_seeds=(5,), test_seeds=(6,),
        frames_per_seed=1, cache_dir=str(tmp_path / "cache")))
    path = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    results = evaluate_checkpoint(path, split="test", ablations=False,
                                  misalignments=STANDARD)
    assert list(results) == ["all"] + [m.name for m in STANDARD]


def test_evaluate_a_late_checkpoint_with_either_box_merge(tiny_frames, tmp_path, monkeypatch):
    import dataclasses

    from perception.errors import ConfigError
    from perception.models import detector
    from perception.train.config import DataConfig
    from perception.train.evaluate import evaluate_checkpoint

    trainer = _trainer(tiny_frames, tmp_path)
    data = DataConfig(sim_preset="tiny", train_seeds=(0,), val_seeds=(5,), frames_per_seed=1,
                      cache_dir=str(tmp_path / "cache"))
    trainer.config = dataclasses.replace(trainer.config, data=data)
    intermediate = trainer.save_checkpoint(tmp_path / "intermediate.pt")
    with pytest.raises(ConfigError, match="late fusion only"):
        evaluate_checkpoint(intermediate, ablations=False, late_merge="nms")

    late_model = dataclasses.replace(small_model_config(), fusion="late", late_merge="wbf")
    late = _trainer(tiny_frames, tmp_path)
    late.config = dataclasses.replace(late.config, data=data, model=late_model)
    late.model = detector.build_detector(late_model)
    path = late.save_checkpoint(tmp_path / "late.pt")
    used = []
    real_merge = detector.merge_boxes

    def spy(parts, method, *args):
        used.append(method)
        return real_merge(parts, method, *args)

    monkeypatch.setattr(detector, "merge_boxes", spy)
    results = evaluate_checkpoint(path, ablations=False, late_merge="nms")
    assert list(results) == ["all"] and set(used) == {"nms"}
    used.clear()
    evaluate_checkpoint(path, ablations=False)  # the checkpoint's own merge
    assert set(used) == {"wbf"}


def test_a_weights_file_evaluates_as_its_training_checkpoint(tiny_frames, tmp_path):
    import dataclasses

    import yaml

    from perception.config import to_dict
    from perception.errors import ConfigError
    from perception.models.checkpoint import save_weights
    from perception.train.config import DataConfig
    from perception.train.evaluate import evaluate_checkpoint, load_evaluated

    trainer = _trainer(tiny_frames, tmp_path)
    trainer.train_epoch()
    data = DataConfig(sim_preset="tiny", train_seeds=(0,), val_seeds=(5,), frames_per_seed=2,
                      cache_dir=str(tmp_path / "cache"))
    trainer.config = dataclasses.replace(trainer.config, data=data)
    checkpoint = trainer.save_checkpoint(tmp_path / "ckpt.pt")
    weights = save_weights(tmp_path / "weights.pt", trainer.model, trainer.config.model,
                           half=False)

    def config_file(name, **data_changes):
        # a training-only fuser setting differs: it does not change what the weights compute
        fuser = dataclasses.replace(trainer.config.model.fuser, modality_dropout=0.5,
                                    modality_dropout_mode="subset", subset_size_weights=(2, 1))
        config = dataclasses.replace(
            trainer.config, data=dataclasses.replace(data, **data_changes),
            model=dataclasses.replace(trainer.config.model, fuser=fuser))
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(to_dict(config)))
        return path

    same = config_file("same")
    from_weights, config = load_evaluated(weights, same)
    assert config.data == data
    for a, b in zip(from_weights.predict(tiny_frames[:2]),
                    trainer.model.predict(tiny_frames[:2])):
        assert len(a.scores) > 0
        np.testing.assert_allclose(a.boxes, b.boxes, rtol=0, atol=1e-5)
        np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-6)
    expected = evaluate_checkpoint(checkpoint, config_path=same, ablations=False)
    assert evaluate_checkpoint(weights, config_path=same, ablations=False) == expected
    with pytest.raises(ConfigError, match="give the CONFIG"):
        evaluate_checkpoint(weights, ablations=False)
    with pytest.raises(ConfigError, match="radar_scans"):
        evaluate_checkpoint(weights, config_path=config_file("scans", radar_scans=2),
                            ablations=False)
