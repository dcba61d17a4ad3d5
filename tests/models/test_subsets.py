"""Any subset of modalities: inference runs and reports what it used, and the fusers never
read the features of an absent modality."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from perception.config import from_dict
from perception.errors import ConfigError
from perception.models.batch import MODALITY_ORDER, collate_frames
from perception.models.config import FuserConfig
from perception.models.detector import build_detector, droppable_columns
from perception.models.fuser import ConcatFuser, GatedFuser, modality_dropout
from perception.types import Modality

from ._helpers import small_model_config

ALL = (Modality.LIDAR, Modality.CAMERA, Modality.RADAR)
SUBSETS = [frozenset(c) for n in (1, 2, 3) for c in itertools.combinations(ALL, n)]


def _drop_sensors(frame, keep: frozenset[Modality]):
    return dataclasses.replace(
        frame, lidar=frame.lidar if Modality.LIDAR in keep else None,
        cameras=frame.cameras if Modality.CAMERA in keep else {},
        radars=frame.radars if Modality.RADAR in keep else {})


@pytest.mark.parametrize("fuser", ["concat", "gated"])
def test_all_seven_subsets_run_and_report_modalities(tiny_frames, fuser):
    model = build_detector(small_model_config(fuser)).eval()
    assert len(SUBSETS) == 7
    # Sensors removed from the frames themselves ...
    frames = [_drop_sensors(tiny_frames[i % 2], keep) for i, keep in enumerate(SUBSETS)]
    dets = model.predict(frames)
    for keep, det in zip(SUBSETS, dets):
        assert det.modalities == keep
        assert det.stamp_ns == frames[SUBSETS.index(keep)].stamp_ns
        assert det.scores.dtype.name == "float32" and len(det) > 0
    # ... and dropped at test time through predict(drop=...).
    for keep in SUBSETS:
        det = model.predict(tiny_frames[:1], drop=frozenset(ALL) - keep)[0]
        assert det.modalities == keep


def test_frame_without_any_sensor_gives_empty_detections(tiny_frames):
    model = build_detector(small_model_config()).eval()
    det = model.predict([_drop_sensors(tiny_frames[0], frozenset())])[0]
    assert len(det) == 0 and det.modalities == frozenset()


def test_model_without_a_modality_does_not_claim_it(tiny_frames):
    config = small_model_config()
    config.radar = None
    model = build_detector(config).eval()
    det = model.predict(tiny_frames[:1])[0]
    assert det.modalities == {Modality.LIDAR, Modality.CAMERA}


@pytest.mark.parametrize("fuser_cls", [ConcatFuser, GatedFuser])
def test_fuser_ignores_absent_features(fuser_cls):
    channels = {Modality.LIDAR: 4, Modality.CAMERA: 3, Modality.RADAR: 2}
    fuser = fuser_cls(ALL, channels, FuserConfig(out_channels=8)).eval()
    feats = {m: torch.randn(3, c, 10, 12) for m, c in channels.items()}
    present = torch.tensor([[True, False, True], [False, True, False], [True, True, True]])
    out = fuser(feats, present)
    perturbed = {m: f.clone() for m, f in feats.items()}
    perturbed[Modality.CAMERA][0] = 1e3  # absent in sample 0
    perturbed[Modality.LIDAR][1] = float("nan")  # absent in sample 1
    perturbed[Modality.RADAR][1] = -7.0  # absent in sample 1
    out2 = fuser(perturbed, present)
    assert torch.allclose(out[:2], out2[:2])
    # A present modality's features do matter.
    perturbed[Modality.RADAR][0] += 1.0
    assert not torch.allclose(fuser(perturbed, present)[0], out[0])


def test_concat_fuser_does_not_treat_zeros_as_features():
    channels = {Modality.LIDAR: 4, Modality.CAMERA: 3}
    fuser = ConcatFuser((Modality.LIDAR, Modality.CAMERA), channels,
                        FuserConfig(out_channels=8)).eval()
    with torch.no_grad():
        fuser.absent["camera"].fill_(0.5)
    feats = {Modality.LIDAR: torch.randn(1, 4, 6, 6), Modality.CAMERA: torch.zeros(1, 3, 6, 6)}
    absent = fuser(feats, torch.tensor([[True, False]]))
    zero_present = fuser(feats, torch.tensor([[True, True]]))
    assert not torch.allclose(absent, zero_present)


def test_detector_output_unchanged_when_absent_input_is_perturbed(tiny_frames):
    model = build_detector(small_model_config()).eval()
    from perception.models.detector import batch_spec
    batch = collate_frames(tiny_frames[:2], batch_spec(model.config))
    present = batch.present.clone()
    present[0, MODALITY_ORDER.index(Modality.LIDAR)] = False
    present[1, MODALITY_ORDER.index(Modality.CAMERA)] = False
    batch = dataclasses.replace(batch, present=present)
    with torch.no_grad():
        out = model(batch)
    noisy_points = [p.clone() for p in batch.lidar_points]
    noisy_points[0][:, :3] += 3.0
    images = batch.images.clone()
    images[1] = torch.rand_like(images[1])
    noisy = dataclasses.replace(batch, lidar_points=noisy_points, images=images)
    with torch.no_grad():
        out2 = model(noisy)
    for a, b in zip(out.tasks, out2.tasks):
        assert torch.allclose(a.heatmap, b.heatmap) and torch.allclose(a.regression,
                                                                       b.regression)


def test_modality_dropout_keeps_one_modality():
    present = torch.ones((200, 3), dtype=torch.bool)
    present[:50, 1:] = False  # single-modality samples are never dropped
    gen = torch.Generator().manual_seed(0)
    out = modality_dropout(present, 0.5, gen)
    assert out.sum(1).min() >= 1
    assert torch.equal(out[:50], present[:50])
    dropped = (out[50:].sum(1) == 2).float().mean()
    assert 0.35 < float(dropped) < 0.65
    assert torch.equal(modality_dropout(present, 0.0), present)


def test_dropout_removes_only_the_droppable_modalities():
    """``dropout_modalities: [camera]``: lidar and radar stay in every sample; the camera goes
    from about half of them; a sample whose only droppable sensor is absent is kept whole."""
    present = torch.ones((400, 3), dtype=torch.bool)
    cam = MODALITY_ORDER.index(Modality.CAMERA)
    present[:100, cam] = False
    config = from_dict(FuserConfig, {"modality_dropout": 0.5, "dropout_modalities": ["camera"]})
    assert config.dropout_modalities == (Modality.CAMERA,)
    droppable = droppable_columns(config)
    assert droppable.tolist() == [m == Modality.CAMERA for m in MODALITY_ORDER]
    out = modality_dropout(present, 0.5, torch.Generator().manual_seed(0), droppable=droppable)
    others = [i for i in range(3) if i != cam]
    assert torch.equal(out[:, others], present[:, others])
    assert torch.equal(out[:100], present[:100])
    assert 0.4 < float((~out[100:, cam]).float().mean()) < 0.6
    with pytest.raises(ConfigError, match="dropout_modalities"):
        from_dict(FuserConfig, {"modality_dropout_mode": "subset",
                                "dropout_modalities": ["camera"]})
    with pytest.raises(ConfigError, match="dropout_modalities"):
        from_dict(FuserConfig, {"dropout_modalities": ["sonar"]})


def test_subset_dropout_draws_every_proper_subset_and_never_empties():
    gen = torch.Generator().manual_seed(0)
    present = torch.ones((3000, 3), dtype=torch.bool)
    out = modality_dropout(present, 1.0, gen, mode="subset")
    rows = {tuple(r.tolist()) for r in out}
    # Every non-empty proper subset of 3 modalities, and nothing else.
    assert len(rows) == 6 and (True, True, True) not in rows and (False,) * 3 not in rows
    counts = torch.unique(out, dim=0, return_counts=True)[1]
    assert counts.min() > 400  # uniform: 500 expected each
    # With two present, the subsets are the two singletons; absent ones stay absent.
    two = torch.tensor([[True, False, True]] * 200)
    out2 = modality_dropout(two, 1.0, gen, mode="subset")
    assert not out2[:, 1].any() and (out2.sum(1) == 1).all()


def test_subset_size_weights_favour_single_sensors():
    gen = torch.Generator().manual_seed(1)
    present = torch.ones((4000, 3), dtype=torch.bool)
    out = modality_dropout(present, 1.0, gen, mode="subset", size_weights=(3.0, 1.0))
    kept = out.sum(1)
    assert kept.min() >= 1 and kept.max() <= 2
    assert 0.72 < float((kept == 1).float().mean()) < 0.78  # 3 of 4
    singles = out[kept == 1].float().mean(0)
    assert torch.allclose(singles, torch.full((3,), 1 / 3), atol=0.03)  # each sensor alike
    pairs = torch.unique(out[kept == 2], dim=0)
    assert pairs.shape[0] == 3
    # Only one sensor kept, whatever is present; absent ones stay absent.
    two = torch.tensor([[True, False, True]] * 100)
    only = modality_dropout(two, 1.0, gen, mode="subset", size_weights=(1.0, 0.0))
    assert (only.sum(1) == 1).all() and not only[:, 1].any()


def test_subset_size_weights_need_subset_mode():
    with pytest.raises(ConfigError, match="subset_size_weights"):
        from_dict(FuserConfig, {"modality_dropout": 0.5, "subset_size_weights": [3, 1]})
    with pytest.raises(ConfigError, match="subset_size_weights"):
        from_dict(FuserConfig, {"modality_dropout_mode": "subset", "subset_size_weights": [0, 0]})
    with pytest.raises(ConfigError, match="subset_size_weights"):
        from_dict(FuserConfig, {"modality_dropout_mode": "subset", "subset_size_weights": [-1]})
    ok = from_dict(FuserConfig, {"modality_dropout_mode": "subset", "subset_size_weights": [3, 1]})
    assert ok.subset_size_weights == (3.0, 1.0)


def _film_model(**fuser):
    config = small_model_config()
    config = dataclasses.replace(config, fuser=dataclasses.replace(config.fuser, **fuser))
    torch.manual_seed(0)
    return build_detector(config).eval()


def test_presence_film_starts_as_the_model_without_it(tiny_frames):
    """A zero table: the model with FiLM computes what the same weights do without it, so a
    fine-tune from a checkpoint without FiLM starts from that checkpoint's accuracy."""
    plain, film = _film_model(), _film_model(presence_film=True)
    missing = film.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing == ["presence_film.table.weight"]
    batch = collate_frames(tiny_frames[:2], plain.spec)
    with torch.no_grad():
        for a, b in zip(plain(batch).tasks, film(batch).tasks):
            assert torch.equal(a.heatmap, b.heatmap)


def test_presence_film_scales_and_shifts_each_subset_by_its_own_row():
    """Hand-made table: the row of subset (lidar, radar) doubles the map and adds 1 to
    channel 0; the row of every other subset leaves it as it is."""
    film = _film_model(presence_film=True).presence_film
    C = film.table.weight.shape[1] // 2
    subset = 1 * 1 + 0 * 2 + 1 * 4  # bits in the fuser's (lidar, camera, radar) order
    with torch.no_grad():
        film.table.weight[subset, :C] = 1.0
        film.table.weight[subset, C] = 1.0
    fused = torch.randn(3, C, 4, 5)
    present = torch.tensor([[True, False, True], [True, True, True], [False, False, True]])
    out = film(fused, present)
    expected = fused[0] * 2
    expected[0] += 1
    assert torch.allclose(out[0], expected)
    assert torch.equal(out[1:], fused[1:])


def test_presence_film_learns_and_goes_through_the_detector(tiny_frames):
    model = _film_model(presence_film=True).train()
    batch = collate_frames(tiny_frames[:2], model.spec)
    output = model(batch)
    model.loss(batch, output).total.backward()
    grad = model.presence_film.table.weight.grad
    used = int((output.present.long() * torch.tensor([1, 2, 4])).sum(1)[0])
    assert grad is not None and grad[used].abs().sum() > 0
    assert grad.abs().sum(1).nonzero().numel() <= 2  # only the rows of the subsets seen
