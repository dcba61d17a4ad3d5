"""Extension status, the once-only fallback warning, and the reference fallback of every op."""

from __future__ import annotations

import logging
import sys

import torch

import perception
from perception import ops
from perception.ops import _dispatch, _ext

from ._helpers import random_boxes, uniform_points


def test_extension_status_keys():
    status = ops.extension_status()
    assert {"compiled", "cuda", "openmp", "backend"} <= set(status)
    if status["compiled"]:
        assert status["backend"] in ("cpp", "cpp+cuda")
    else:
        assert status["backend"] == "pytorch-reference"


def test_missing_extension_warns_once(monkeypatch, caplog):
    _ext.load_extension.cache_clear()
    monkeypatch.setitem(sys.modules, "perception._C", None)   # makes the import fail
    monkeypatch.delattr(perception, "_C", raising=False)
    try:
        with caplog.at_level(logging.WARNING, logger=_ext.__name__):
            assert _ext.load_extension() is None
            assert _ext.load_extension() is None
            assert ops.extension_status()["backend"] == "pytorch-reference"
        warnings = [r for r in caplog.records if "perception._C is not available" in r.message]
        assert len(warnings) == 1
    finally:
        monkeypatch.undo()
        _ext.load_extension.cache_clear()


def test_every_op_falls_back_to_reference(monkeypatch):
    pts = uniform_points(2000, 0, 4, lo=-5, hi=5)
    vs, rng = [0.5, 0.5, 0.5], [-4, -4, -4, 4, 4, 4]
    boxes, scores = random_boxes(60, 0, spread=5), torch.rand(60)
    geo = torch.randint(0, 8, (2000, 4))
    geo[:, 0] = 0
    compiled = [ops.voxelize_hard(pts, vs, rng, 4, 100), ops.voxelize_dynamic(pts, vs, rng),
                ops.scatter_reduce(pts, ops.voxelize_dynamic(pts, vs, rng), "max"),
                ops.bev_pool(pts, geo, 1, (8, 8, 8)), ops.boxes_iou_bev(boxes, boxes),
                ops.boxes_iou_3d(boxes, boxes), ops.nms_bev(boxes, scores, 0.2),
                ops.circle_nms(boxes, scores, 1.0)]
    monkeypatch.setattr(_dispatch._ext, "load_extension", lambda: None)
    fallback = [ops.voxelize_hard(pts, vs, rng, 4, 100), ops.voxelize_dynamic(pts, vs, rng),
                ops.scatter_reduce(pts, ops.voxelize_dynamic(pts, vs, rng), "max"),
                ops.bev_pool(pts, geo, 1, (8, 8, 8)), ops.boxes_iou_bev(boxes, boxes),
                ops.boxes_iou_3d(boxes, boxes), ops.nms_bev(boxes, scores, 0.2),
                ops.circle_nms(boxes, scores, 1.0)]
    for a, b in zip(compiled, fallback):
        for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
            assert x.dtype == y.dtype and x.shape == y.shape
            torch.testing.assert_close(x, y, atol=1e-5, rtol=1e-5)
