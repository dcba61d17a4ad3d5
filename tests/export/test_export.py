"""``perception export``, export.json, float16 graphs, opsets, and the ``onnxruntime`` backend
of the pipeline."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from perception import cli
from perception.errors import ConfigError
from perception.export import MANIFEST, OnnxRuntimeDetector, export_onnx, read_manifest
from perception.models.batch import collate_frames
from perception.models.checkpoint import read_detector
from perception.models.detector import build_detector
from perception.models.shipped import card_path, read_card, sha256_of, shipped_weights_path
from perception.pipeline import BACKENDS, Pipeline
from perception.types import Modality

from ..models._helpers import small_model_config

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")


@pytest.fixture(scope="module")
def cli_export(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli_export")
    assert cli.main(["export", "shipped", str(out)]) == 0
    return out


def test_cli_writes_graphs_and_manifest(cli_export):
    manifest = json.loads((cli_export / MANIFEST).read_text())
    assert manifest["opset"] == 17 and manifest["dtype"] == "float32"
    assert set(manifest["graphs"]) == {"lidar.pfn.0", "lidar.pfn.1", "radar.pfn.0",
                                       "radar.pfn.1", "camera.net", "bev"}
    card = read_card()
    assert manifest["model_card"] == {"name": card["name"], "weights_sha256": card["sha256"],
                                      "card_sha256": sha256_of(card_path())}
    assert manifest["weights"]["sha256"] == card["sha256"]
    bev = manifest["graphs"]["bev"]
    assert [i["name"] for i in bev["inputs"]] == ["bev_lidar", "bev_camera", "bev_radar",
                                                  "present"]
    assert bev["inputs"][-1] == {"name": "present", "shape": ["batch", 3], "dtype": "bool"}
    assert bev["outputs"][0]["shape"] == ["batch", 1, 80, 80]
    camera = manifest["preprocessing"]["camera"]
    assert camera["image_size_hw"] == [128, 192] and camera["std"] == [0.25] * 3
    assert manifest["preprocessing"]["radar"]["input_scale"][3] == pytest.approx(0.1)
    for name, graph in manifest["graphs"].items():
        model = onnx.load(str(cli_export / graph["file"]))
        onnx.checker.check_model(model)
        assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 17
        # Dynamic axes carry their names into the graph.
        dims = model.graph.input[0].type.tensor_type.shape.dim
        assert dims[0].dim_param == graph["inputs"][0]["shape"][0], name


def test_read_manifest_refuses_other_directories(tmp_path):
    with pytest.raises(Exception, match="export.json"):
        read_manifest(tmp_path)


def test_opset_is_checked(tmp_path):
    model = read_detector(shipped_weights_path()).model
    with pytest.raises(ConfigError, match="opset"):
        export_onnx(model, tmp_path, opset=11)


def test_camera_aware_depth_graph_takes_the_pixel_geometry(tmp_path, nuscenes_frames):
    """The camera graph of a camera-aware depth model has a second input, the pixel geometry
    the runtime computes from the calibration; moving a camera changes the ONNX depth as it
    changes the PyTorch one."""
    config = small_model_config()
    config = dataclasses.replace(config, camera=dataclasses.replace(config.camera,
                                                                    camera_aware_depth=True))
    model = build_detector(config).eval()
    export_onnx(model, tmp_path)
    inputs = read_manifest(tmp_path)["graphs"]["camera.net"]["inputs"]
    assert [i["name"] for i in inputs] == ["images", "pixel_geometry"]
    ort_model = OnnxRuntimeDetector(model, tmp_path, threads=1)
    batch = collate_frames(nuscenes_frames[:1], model.spec)
    raised = batch.T_vehicle_optical.clone()
    raised[..., 2, 3] += 1.0
    moved = dataclasses.replace(batch, T_vehicle_optical=raised)
    depths = []
    with torch.no_grad():
        for b in (batch, moved):
            torch_depth = model.camera(b).depth
            index = (b.camera_valid & b.has(Modality.CAMERA)[:, None]).nonzero()
            images = b.images[index[:, 0], index[:, 1]]
            geometry = model.camera.pixel_geometry(b, index,
                                                   model.camera.feature_hw(images.shape[-2:]))
            onnx_depth, _ = ort_model._run("camera.net", images, geometry)
            assert torch.allclose(onnx_depth, torch_depth, atol=1e-5)
            depths.append(onnx_depth)
    assert not torch.allclose(depths[0], depths[1], atol=1e-5)


def test_lidar_depth_prior_graph_takes_the_lidar_depth(tmp_path, nuscenes_frames):
    """The camera graph of a model with the lidar depth prior takes the lidar depth the
    runtime computes from the points, and the whole ONNX model agrees with PyTorch, with and
    without lidar."""
    config = small_model_config()
    config = dataclasses.replace(config, camera=dataclasses.replace(config.camera,
                                                                    lidar_depth_prior=True))
    model = build_detector(config).eval()
    with torch.no_grad():  # a prior that matters (it starts at zero)
        model.camera.depth_prior.conv.weight.normal_(0.0, 0.05)
    export_onnx(model, tmp_path)
    inputs = read_manifest(tmp_path)["graphs"]["camera.net"]["inputs"]
    assert [i["name"] for i in inputs] == ["images", "lidar_depth"]
    ort_model = OnnxRuntimeDetector(model, tmp_path, threads=1)
    batch = collate_frames(nuscenes_frames[:1], model.spec)
    outputs = []
    with torch.no_grad():
        for b in (batch, batch.without({Modality.LIDAR})):
            a, o = model(b), ort_model(b)
            for x, y in zip(a.tasks, o.tasks):
                assert torch.allclose(x.heatmap, y.heatmap, atol=1e-4)
                assert torch.allclose(x.regression, y.regression, atol=1e-4)
            outputs.append(o.tasks[0].heatmap)
    assert not torch.allclose(outputs[0], outputs[1], atol=1e-3)


def test_fp16_graphs_run_in_onnxruntime(tmp_path, nuscenes_frames):
    model = build_detector(small_model_config()).eval()
    export_onnx(model, tmp_path, fp16=True)
    assert read_manifest(tmp_path)["graphs"]["bev"]["inputs"][0]["dtype"] == "float16"
    ort_model = OnnxRuntimeDetector(model, tmp_path, threads=1)
    batch = collate_frames(nuscenes_frames[:1], model.spec)
    with torch.no_grad():
        a, b = model(batch), ort_model(batch)
    # float16 through the whole network: logits agree to about 1e-1 (documented tolerance).
    for x, y in zip(a.tasks, b.tasks):
        assert (x.heatmap - y.heatmap).abs().max() < 0.25
        assert torch.isfinite(y.regression).all()


def test_pipeline_onnxruntime_backend(monkeypatch, tmp_path, nuscenes_frames, cli_export):
    assert BACKENDS == ("torch", "onnxruntime")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    torch_pipe = Pipeline.from_checkpoint(None, track=False)
    ort_pipe = Pipeline.from_checkpoint(None, track=False, backend="onnxruntime")
    from_dir = Pipeline.from_checkpoint(cli_export, track=False, backend="onnxruntime")
    assert any(p.name == MANIFEST for p in (tmp_path / "fusion_perception" / "onnx").rglob("*"))
    assert ort_pipe.history.radar_scans == torch_pipe.history.radar_scans == 2
    for frame in nuscenes_frames:
        a = torch_pipe.process(frame).detections
        for pipe in (ort_pipe, from_dir):
            b = pipe.process(frame).detections
            assert len(a) == len(b) and (a.labels == b.labels).all()
            np.testing.assert_allclose(b.boxes, a.boxes, atol=1e-4)
            assert a.modalities == b.modalities


def test_pipeline_refuses_unknown_backend():
    with pytest.raises(ConfigError, match="backend"):
        Pipeline.from_checkpoint(None, backend="tensorrt")
