"""Per-modality explanations: exact Shapley values over the modalities of a frame."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from perception.data.sim import Simulator
from perception.errors import ConfigError
from perception.explain import (
    FrameExplanation,
    coalitions,
    explain_frame,
    format_summary,
    shapley_values,
    summarize,
)
from perception.models.batch import MODALITY_ORDER
from perception.models.detector import build_detector
from perception.types import Detections, Modality

from ..models._helpers import small_model_config


@pytest.fixture(scope="module")
def frame():
    return Simulator("tiny", seed=3).frame(2)


def _detector(fuser="concat", **overrides):
    torch.manual_seed(0)
    model = build_detector(small_model_config(fuser=fuser, **overrides)).eval()
    # A low threshold so that even an untrained model has detections to explain.
    model.config.head.score_threshold = 0.0
    return model


def test_shapley_of_known_games():
    players = [0, 1, 2]
    subsets = coalitions(players)
    assert subsets[0] == () and subsets[-1] == (0, 1, 2) and len(subsets) == 8
    # Additive game: each player's value is its own effect.
    effect = np.array([0.1, 0.2, 0.4])
    additive = {s: np.array([effect[list(s)].sum()]) for s in subsets}
    assert np.allclose(shapley_values(additive, players)[0], effect)
    # Majority game: any two win; symmetric, so a third each.
    majority = {s: np.array([float(len(s) >= 2)]) for s in subsets}
    assert np.allclose(shapley_values(majority, players)[0], [1 / 3] * 3)
    # A dummy player gets 0; a non-player column stays 0.
    two = {s: np.array([0.5 * (0 in s)]) for s in coalitions([0, 2])}
    assert np.allclose(shapley_values(two, [0, 2])[0], [0.5, 0.0, 0.0])


@pytest.mark.parametrize("fuser", ["concat", "gated"])
def test_shares_sum_to_the_score_change_from_none_to_all(frame, fuser):
    model = _detector(fuser)
    e = explain_frame(model, frame)
    assert len(e.detections) > 0 and e.players == frozenset(Modality)
    assert np.allclose(e.shapley.sum(1), e.score_all - e.score_none, atol=1e-5)
    # v(all) is the detection score itself.
    assert np.allclose(e.score_all, e.detections.scores, atol=1e-5)
    direct = model.predict([frame])[0]
    assert np.array_equal(e.detections.boxes, direct.boxes)
    assert set(e.heatmaps) == set(Modality)
    assert all(h.shape == e.heatmaps[Modality.LIDAR].shape for h in e.heatmaps.values())
    if fuser == "gated":
        total = sum(e.heatmaps.values())
        assert e.heatmap_kind == "gate" and np.allclose(total, 1.0, atol=1e-5)
    else:
        assert e.heatmap_kind == "occlusion"
        assert all(0.0 <= h.min() and h.max() <= 1.0 + 1e-6 for h in e.heatmaps.values())
    shares = e.shares()
    assert np.allclose(shares.sum(1)[np.abs(e.score_all - e.score_none) > 1e-6], 1.0,
                       atol=1e-4)


def test_a_modality_the_network_ignores_gets_zero_share(frame):
    model = _detector()
    fuser = model.fuser
    with torch.no_grad():  # zero every fuser input weight of the camera, flag included
        widths = [fuser.absent[m.value].numel() for m in fuser.modalities]
        i = fuser.modalities.index(Modality.CAMERA)
        start = sum(widths[:i])
        conv = fuser.fuse[0][0].weight
        conv[:, start:start + widths[i]] = 0.0
        conv[:, sum(widths) + i] = 0.0
    e = explain_frame(model, frame)
    camera = MODALITY_ORDER.index(Modality.CAMERA)
    assert np.abs(e.shapley[:, camera]).max() == 0.0
    assert np.abs(e.shapley[:, [0, 2]]).max() > 0.0
    assert e.heatmaps[Modality.CAMERA].max() == 0.0


@pytest.mark.parametrize("decoder_without_lidar", [False, True])
def test_subset_detections_are_the_model_with_those_sensors_alone(frame, decoder_without_lidar):
    model = _detector(decoder_without_lidar=decoder_without_lidar)
    e = explain_frame(model, frame)
    assert len(e.by_subset) == 8 and len(e.by_subset[frozenset()]) == 0
    for drop in (frozenset({Modality.CAMERA}), frozenset({Modality.LIDAR, Modality.RADAR})):
        direct = model.predict([frame], drop=drop)[0]
        mine = e.by_subset[frozenset(Modality) - drop]
        assert mine.modalities == direct.modalities
        assert np.allclose(mine.boxes, direct.boxes, atol=1e-4)
        assert np.allclose(mine.scores, direct.scores, atol=1e-5)
    nothing = dataclasses.replace(frame, lidar=None, cameras={}, radars={})
    empty = explain_frame(model, nothing)
    assert len(empty.detections) == 0 and empty.players == frozenset()


def test_a_frame_without_radar_gives_radar_no_share(frame):
    model = _detector()
    no_radar = dataclasses.replace(frame, radars={})
    e = explain_frame(model, no_radar)
    assert e.players == frozenset({Modality.LIDAR, Modality.CAMERA})
    assert np.all(e.shapley[:, MODALITY_ORDER.index(Modality.RADAR)] == 0.0)
    assert Modality.RADAR not in e.heatmaps
    assert np.allclose(e.shapley.sum(1), e.score_all - e.score_none, atol=1e-5)
    # Dropping a modality at test time is the same as the sensor being absent.
    dropped = explain_frame(model, frame, drop=frozenset({Modality.RADAR}))
    assert dropped.players == e.players


def test_summary_groups_by_class_and_range():
    boxes = np.array([[10, 0, 0, 4, 2, 1.5, 0], [30, 0, 0, 4, 2, 1.5, 0],
                      [5, 5, 0, 0.8, 0.8, 1.8, 0], [50, 1, 0, 4, 2, 1.5, 0]], np.float32)
    dets = Detections(1, boxes, np.array([0.9, 0.8, 0.7, 0.2], np.float32),
                      np.array([1, 1, 2, 1], np.int32), modalities=frozenset(Modality))
    # columns lidar, camera, radar; gains 0.8, 0.6, 0.5, 0.1
    shapley = np.array([[0.6, 0.1, 0.1], [0.3, 0.0, 0.3], [0.25, 0.25, 0.0],
                        [0.0, 0.0, 0.1]], np.float32)
    none = np.array([0.1, 0.2, 0.2, 0.1], np.float32)
    e = FrameExplanation(dets, frozenset(Modality), shapley, dets.scores, none, {}, "occlusion",
                         {})
    rows = summarize([e, e], min_score=0.3)
    assert [(r.object_class.name, r.range_label, r.detections) for r in rows] == [
        ("VEHICLE", "0-20 m", 2), ("VEHICLE", "20-40 m", 2), ("PEDESTRIAN", "0-20 m", 2)]
    assert rows[0].mean_share[Modality.LIDAR] == pytest.approx(0.75)
    assert rows[1].mean_share[Modality.RADAR] == pytest.approx(0.5)
    assert rows[2].mean_share[Modality.CAMERA] == pytest.approx(0.5)
    for r in rows:
        assert sum(r.mean_share.values()) == pytest.approx(1.0)
    text = format_summary(rows)
    assert "PEDESTRIAN" in text and "20-40 m" in text
    assert "no detection" in format_summary([])


def test_late_fusion_is_refused(frame):
    config = dataclasses.replace(small_model_config(), fusion="late")
    with pytest.raises(ConfigError, match="BEV fusion"):
        explain_frame(build_detector(config), frame)


def test_explain_command_writes_summary_and_pictures(tmp_path, capsys):
    from perception import cli
    from perception.models.checkpoint import save_weights

    weights = save_weights(tmp_path / "w.pt", _detector(), _detector().config)
    out = tmp_path / "explain"
    assert cli.main(["explain", str(weights), "--frames", "2", "--preset", "tiny",
                     "--pictures", "1", "--out", str(out), "--no-progress"]) == 0
    assert "lidar" in capsys.readouterr().out
    assert isinstance(json.loads((out / "explain_summary.json").read_text()), list)
    assert len(list(out.glob("explain_*.png"))) == 1
    assert cli.main(["explain", str(weights), "--frames", "0"]) == 1
    assert "--frames must be >= 1" in capsys.readouterr().err
    assert cli.main(["explain", str(tmp_path / "missing.pt")]) == 1
    assert "checkpoint not found" in capsys.readouterr().err
