"""A second BEV decoder for the samples without lidar: each sample goes through its own
decoder, the model copied from a shared-decoder one starts as that model, and the traceable
per-sample selection gives the same numbers as the split batch."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from perception.models.batch import MODALITY_ORDER, collate_frames
from perception.models.checkpoint import CHECKPOINT_FORMAT
from perception.models.detector import build_detector
from perception.models.subset_decoder import decode_rows, select_rows
from perception.train.config import PretrainedSource
from perception.train.pretrained import load_pretrained
from perception.types import Modality

from ._helpers import small_model_config

LIDAR = MODALITY_ORDER.index(Modality.LIDAR)


def _batch(model, frames):
    batch = collate_frames(frames, model.spec)
    present = batch.present.clone()
    present[0, LIDAR] = False  # sample 0 without lidar, sample 1 with every sensor
    return dataclasses.replace(batch, present=present)


def _perturb(module: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))


def test_each_sample_goes_through_its_own_decoder(tiny_frames):
    shared = build_detector(small_model_config()).eval()
    split = build_detector(small_model_config(decoder_without_lidar=True)).eval()
    split.load_state_dict(shared.state_dict(), strict=False)
    _perturb(split.without_lidar)
    batch = _batch(split, tiny_frames[:2])
    out = split(batch).tasks
    features, _ = split.encode(batch)
    fused = split.fuse(features, batch.present)
    alone = split.without_lidar(fused[:1])
    reference = shared(batch).tasks
    for t, task in enumerate(out):
        # without lidar: the second decoder, run on that sample alone
        torch.testing.assert_close(task.heatmap[:1], alone[t].heatmap)
        torch.testing.assert_close(task.regression[:1], alone[t].regression)
        assert not torch.allclose(task.heatmap[:1], reference[t].heatmap[:1])
        # with lidar: the shared decoder, as in the model without a second one
        torch.testing.assert_close(task.heatmap[1:], reference[t].heatmap[1:])
        torch.testing.assert_close(task.regression[1:], reference[t].regression[1:])


def test_traced_selection_matches_the_split_batch(tiny_frames):
    model = build_detector(small_model_config(decoder_without_lidar=True)).eval()
    _perturb(model.without_lidar)
    fused = torch.randn(3, model.fuser.out_channels, *model.config.grid.shape_hw)
    for rows in ([True, False, True], [False] * 3, [True] * 3):
        rows = torch.tensor(rows)
        split = decode_rows(fused, rows, model._shared_decoder, model.without_lidar)
        both = select_rows(rows, model._shared_decoder(fused), model.without_lidar(fused))
        for a, b in zip(split, both):
            torch.testing.assert_close(a.heatmap, b.heatmap)
            torch.testing.assert_close(a.regression, b.regression)


def test_gradient_reaches_only_the_decoder_of_each_sample(tiny_frames):
    model = build_detector(small_model_config(decoder_without_lidar=True)).train()
    batch = _batch(model, tiny_frames[:1] * 2)
    batch.present[1, LIDAR] = False  # neither sample has lidar
    model.loss(batch, model(batch)).total.backward()
    assert all(p.grad is None or not p.grad.any() for p in model.head.parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.without_lidar.parameters())


def test_a_copy_of_the_shared_decoder_starts_as_the_shared_model(tiny_frames, tmp_path):
    shared = build_detector(small_model_config()).eval()
    _perturb(shared)
    ckpt = tmp_path / "shared.pt"
    torch.save({"format": CHECKPOINT_FORMAT, "model": shared.state_dict(),
                "config": {"model": {}}}, ckpt)
    split = build_detector(small_model_config(decoder_without_lidar=True)).eval()
    modules = ("lidar", "camera", "radar", "fuser", "backbone", "head")
    report = load_pretrained(split, [
        PretrainedSource(str(ckpt), modules),
        PretrainedSource(str(ckpt), ("backbone", "head"), into="without_lidar")])
    assert report["shared.pt:without_lidar.head"] > 0
    batch = _batch(split, tiny_frames[:2])
    for a, b in zip(split(batch).tasks, shared(batch).tasks):
        torch.testing.assert_close(a.heatmap, b.heatmap)
        torch.testing.assert_close(a.regression, b.regression)


@pytest.mark.parametrize("overrides", [{"lidar": None}, {"camera": None, "radar": None},
                                       {"fusion": "late"}])
def test_config_needs_lidar_and_another_modality(overrides):
    with pytest.raises(ValueError, match="decoder_without_lidar"):
        small_model_config(decoder_without_lidar=True, **overrides)
