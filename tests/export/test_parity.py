"""ONNX Runtime (CPU) against PyTorch, on simulator frames, for every shipped config and every
modality mask.

* The shipped weights: heads within 1e-3 and the decoded boxes after NMS identical (same
  boxes, labels and order; coordinates and scores within 1e-4).
* Every config of ``configs/models`` (seeded random weights with randomised BatchNorm
  statistics, so that outputs are not flat): heads within 1e-3; decoded boxes matched with
  the tolerance of :func:`assert_boxes_match` (a box whose score is within 1e-3 of another
  box's may swap with it in NMS). The GPU-scale configs (Waymo, nuScenes) run with their BEV
  range cropped to 64 x 64 cells and one camera per frame: every layer and weight shape is
  the config's own, the CPU time stays in seconds. Late fusion is compared per branch, before
  the merge (:func:`boxes_to_compare`).
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest
import torch

from perception.config import config_dir
from perception.export import export_onnx, load_onnx_detector
from perception.export.runtime import OnnxRuntimeDetector
from perception.models.batch import MODALITY_ORDER, collate_frames
from perception.models.checkpoint import read_detector
from perception.models.detector import build_detector, to_detections
from perception.models.shipped import shipped_weights_path
from perception.train.config import load_experiment

pytest.importorskip("onnxruntime")

HEAD_ATOL = 1e-3
CONFIGS = sorted(p.stem for p in (config_dir() / "models").glob("*.yaml")
                 if not p.stem.endswith("_base"))


def masks(modalities) -> list[tuple[bool, bool, bool]]:
    """Every subset of ``modalities`` as a (lidar, camera, radar) presence row, the empty one
    included."""
    have = [m in modalities for m in MODALITY_ORDER]
    rows = {tuple(bool(h and k) for h, k in zip(have, bits))
            for bits in itertools.product((False, True), repeat=3)}
    return sorted(rows)


def masked_batch(frames, spec, rows):
    """Each frame once per presence row: a batch of len(frames) * len(rows) samples."""
    batch = collate_frames([f for f in frames for _ in rows], spec)
    present = torch.tensor([r for _ in frames for r in rows], dtype=torch.bool)
    return dataclasses.replace(batch, present=batch.present & present)


def randomize(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                n = module.num_features
                module.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                module.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                module.weight.copy_(torch.rand(n, generator=g) + 0.5)
                module.bias.copy_(torch.randn(n, generator=g) * 0.1)
        for name, p in model.named_parameters():
            if name.startswith(("fuser.absent", "branches")) and "absent" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)
    return model.eval()


def assert_heads_close(a, b, atol=HEAD_ATOL):
    pairs = [(a.tasks, b.tasks)]
    if a.branches is not None:
        pairs += [(a.branches[m], b.branches[m]) for m in a.branches]
    for ta, tb in pairs:
        for x, y in zip(ta, tb):
            torch.testing.assert_close(y.heatmap, x.heatmap, atol=atol, rtol=0)
            torch.testing.assert_close(y.regression, x.regression, atol=atol, rtol=0)


def assert_boxes_identical(da, db):
    for x, y in zip(da, db):
        assert x.modalities == y.modalities
        assert len(x) == len(y)
        assert (x.labels == y.labels).all()
        torch.testing.assert_close(torch.from_numpy(y.boxes), torch.from_numpy(x.boxes),
                                   atol=1e-4, rtol=0)
        torch.testing.assert_close(torch.from_numpy(y.scores), torch.from_numpy(x.scores),
                                   atol=1e-4, rtol=0)


def assert_boxes_match(da, db, config, tol=1e-3):
    """Each box of either side has a partner on the other: same class, score within ``tol``,
    centre within the larger NMS radius of the config (the box NMS kept instead when two
    candidates' scores are within ``tol``). Boxes within ``tol`` of the score threshold or of
    the lowest kept score (the top-K and max_detections cuts) may be unmatched."""
    radius = max(config.head.nms_radius_m) if config.head.nms == "circle" else 2.0
    for x, y in zip(da, db):
        assert x.modalities == y.modalities
        for p, q in ((x, y), (y, x)):
            floor = max(config.head.score_threshold,
                        float(q.scores.min()) if len(q) else 0.0) + tol
            for i in range(len(p)):
                if p.scores[i] < floor:
                    continue
                same = (q.labels == p.labels[i]) & (abs(q.scores - p.scores[i]) <= tol)
                d = ((q.boxes[:, :2] - p.boxes[i, :2]) ** 2).sum(1) ** 0.5
                assert (same & (d <= radius)).any(), f"box {i} {p.boxes[i]} has no partner"


def boxes_to_compare(model, batch, output) -> list:
    """The decoded boxes compared between PyTorch and ONNX Runtime.

    Late fusion: each present branch's boxes before the merge. Weighted box fusion clusters by
    score order and at an IoU threshold, so a float difference of 1e-6 in the heads can move a
    box into or out of a cluster and change the merged box and its score far beyond any
    tolerance; the merge itself is the same code on both sides.
    """
    if output.branches is None:
        return model.decode(batch, output)
    out = [to_detections(0, decoded, frozenset({m}))
           for m, per_sample in model.decode_branches(output).items()
           for b, decoded in enumerate(per_sample)
           if bool(output.present[b, MODALITY_ORDER.index(m)])]
    assert sum(len(x) for x in out) > 0, "no branch decoded a box: nothing is compared"
    return out


def gpu_config_on_cpu(config, frames):
    """The config with its BEV range cropped to 64 x 64 cells around the ego (same layers and
    weight shapes), and the frames with their first camera only."""
    r = config.grid.point_range_m
    hx, hy = (32 * c for c in config.grid.cell_size_m)
    grid = dataclasses.replace(config.grid, point_range_m=(-hx, -hy, r[2], hx, hy, r[5]))
    config = dataclasses.replace(config, grid=grid)
    config.validate()
    frames = [dataclasses.replace(f, cameras=dict(sorted(f.cameras.items())[:1]))
              for f in frames]
    return config, frames


@pytest.fixture(scope="module")
def shipped(tmp_path_factory):
    loaded = read_detector(shipped_weights_path())
    out = tmp_path_factory.mktemp("onnx_shipped")
    export_onnx(loaded.model, out, weights_path=shipped_weights_path())
    return loaded.model, out


def test_shipped_model_all_masks(shipped, nuscenes_frames):
    model, out = shipped
    ort_model = OnnxRuntimeDetector(model, out, threads=1)
    batch = masked_batch(nuscenes_frames[:1], model.spec, masks(model.modalities))
    with torch.no_grad():
        a, b = model(batch), ort_model(batch)
    assert_heads_close(a, b)
    decoded_a, decoded_b = model.decode(batch, a), ort_model.decode(batch, b)
    assert sum(len(d) for d in decoded_a) > 0
    assert_boxes_identical(decoded_a, decoded_b)


def test_camera_branch_beside_the_point_branches_gives_the_same_outputs(shipped,
                                                                       nuscenes_frames):
    """With 2 threads the camera branch runs in a worker beside lidar and radar: the heads
    equal the 1-thread (one after the other) run's for every modality mask."""
    model, out = shipped
    serial = OnnxRuntimeDetector(model, out, threads=1)
    overlapped = OnnxRuntimeDetector(model, out, threads=2)
    assert serial._camera_worker is None and overlapped._camera_worker is not None
    batch = masked_batch(nuscenes_frames[:1], model.spec, masks(model.modalities))
    with torch.no_grad():
        a, b = serial(batch), overlapped(batch)
    assert_heads_close(a, b)
    assert_boxes_identical(serial.decode(batch, a), overlapped.decode(batch, b))


def test_export_dir_alone_gives_the_same_detector(shipped, nuscenes_frames):
    model, out = shipped
    alone = load_onnx_detector(out, threads=1)
    frame = nuscenes_frames[1:]
    assert_boxes_identical(model.predict(frame), alone.predict(frame))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_config_every_mask(name, tmp_path, nuscenes_frames, waymo_frame):
    experiment = load_experiment(config_dir() / "models" / f"{name}.yaml")
    config = experiment.model
    frames = nuscenes_frames[:1] if experiment.data.source != "waymo" else waymo_frame
    if experiment.data.source != "sim":
        config, frames = gpu_config_on_cpu(config, frames)
    if config.lidar is not None and config.lidar.encoder == "sparse":
        pytest.importorskip("spconv")
    torch.manual_seed(0)
    model = randomize(build_detector(config), seed=1)
    export_onnx(model, tmp_path)
    ort_model = OnnxRuntimeDetector(model, tmp_path, threads=1)
    batch = masked_batch(frames, model.spec, masks(model.modalities))
    with torch.no_grad():
        a, b = model(batch), ort_model(batch)
    assert_heads_close(a, b)
    assert_boxes_match(boxes_to_compare(model, batch, a), boxes_to_compare(model, batch, b),
                       config)
