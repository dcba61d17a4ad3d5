"""Export of a detector's dense parts to ONNX files, with ``export.json`` beside them.

:func:`export_onnx` writes one ``<graph>.onnx`` per graph of
:mod:`perception.export.graphs` (pinned opset, dynamic point / image / batch axes) and a
manifest ``export.json``: the graphs' input and output names, shapes (a name for each dynamic
axis) and dtypes, the preprocessing constants, what stays outside ONNX, the model config, and
the hash of the weights and of their model card. Modules that cannot go into ONNX with
standard operators (the spconv sparse lidar encoder) are written as tensors to
``torch_parts.pt`` and run in torch.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..atomic import write_text_atomic
from ..config import to_dict
from ..errors import ConfigError
from ..models.batch import RADAR_COLUMNS
from ..models.config import ModelConfig
from ..models.shipped import sha256_of
from ..types import Modality
from .graphs import GraphSpec, detector_graphs

MANIFEST = "export.json"
FORMAT = "fusion_perception.onnx/1"
TORCH_PARTS = "torch_parts.pt"
DEFAULT_OPSET = 17
SUPPORTED_OPSETS = range(17, 22)
IMAGE_STD = 0.25
"""Image normalisation inside the camera graphs: ``(rgb - mean) / 0.25`` (``ImageBackbone``)."""

OUTSIDE_ONNX = (
    "points in range and dynamic pillar voxelization (perception.ops.voxelize_dynamic_batch)",
    "pillar decoration and per-pillar mean/max between pfn layers (perception.ops.scatter_reduce)",
    "pillar scatter to the BEV grid",
    "camera frustum geometry and its sum into the grid (perception.ops.lss_pool, layout cached "
    "while the calibration is fixed)",
    "point painting projection and sampling (early fusion)",
    "the spconv sparse lidar encoder (torch_parts.pt)",
    "decode: sigmoid, top-K, score threshold, circle or rotated NMS (perception.ops); late "
    "fusion merge",
)


@dataclass(frozen=True)
class ExportResult:
    """What :func:`export_onnx` wrote: the directory, the manifest and the graph files."""

    out_dir: Path
    manifest: dict
    files: tuple[Path, ...]


def branches(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """``(graph name prefix, FusionDetector)`` of a model: itself, or each late-fusion branch."""
    if hasattr(model, "branches"):
        return [(f"late.{k}.", branch) for k, branch in model.branches.items()]
    return [("", model)]


def torch_part_prefixes(model: nn.Module) -> list[str]:
    """state_dict prefixes of the modules that run in torch (not in ONNX) at inference."""
    out = []
    for prefix, det in branches(model):
        key = prefix[len("late."):].replace(".", "") if prefix else ""
        base = f"branches.{key}." if prefix else ""
        if det.lidar is not None and not hasattr(det.lidar, "pfn"):
            out.append(f"{base}lidar.")
    return out


def _shape(t: torch.Tensor, dynamic: dict[int, str]) -> list:
    return [dynamic.get(i, int(d)) for i, d in enumerate(t.shape)]


def _dtype(t: torch.Tensor) -> str:
    return str(t.dtype).removeprefix("torch.")


def _to_half(t: torch.Tensor) -> torch.Tensor:
    return t.half() if t.is_floating_point() else t


def _export_graph(spec: GraphSpec, path: Path, opset: int, fp16: bool) -> dict:
    # A copy: the caller's model keeps its device, dtype and mode.
    module = copy.deepcopy(spec.module).float().cpu().eval()
    inputs = spec.inputs
    if fp16:
        module = module.half()
        inputs = tuple(_to_half(t) for t in inputs)
    with torch.no_grad():
        outputs = module(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the torch.export one,
        # which needs onnxscript; both write the same standard operators for these graphs.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, inputs, str(path), dynamo=False, opset_version=opset,
                          input_names=list(spec.input_names),
                          output_names=list(spec.output_names),
                          dynamic_axes=spec.dynamic_axes, do_constant_folding=True)
    axes = spec.dynamic_axes
    return {
        "file": path.name,
        "inputs": [{"name": n, "shape": _shape(t, axes.get(n, {})), "dtype": _dtype(t)}
                   for n, t in zip(spec.input_names, inputs)],
        "outputs": [{"name": n, "shape": _shape(t, axes.get(n, {})), "dtype": _dtype(t)}
                    for n, t in zip(spec.output_names, outputs)],
    }


def preprocessing(config: ModelConfig, model: nn.Module) -> dict:
    """The constants a caller needs to build the graphs' inputs (export.json)."""
    grid = config.grid
    out: dict = {"bev_grid": {"point_range_m": list(grid.point_range_m),
                              "cell_size_m": list(grid.cell_size_m),
                              "shape_hw": list(grid.shape_hw),
                              "layout": "(B, C, H, W), x forward along H, y left along W"}}
    if config.lidar is not None:
        out["lidar"] = {"columns": ["x", "y", "z", *config.lidar.columns],
                        "encoder": config.lidar.encoder,
                        "pfn_input": "columns, then (x, y, z) minus the pillar's point mean, "
                                     "then (x, y) minus the pillar centre"}
    image_hw = (config.camera.image_size_hw if config.camera is not None else
                config.painting.image_size_hw if config.painting is not None else None)
    if image_hw is not None:
        det = branches(model)[0][1] if config.camera is None else next(
            d for _, d in branches(model) if d.camera is not None)
        backbone = det.camera.backbone if det.camera is not None else det.painter.backbone
        out["camera"] = {"image_size_hw": list(image_hw), "layout": "NCHW", "channels": "RGB",
                         "scale": 1.0 / 255.0,
                         "mean": [float(v) for v in backbone.mean.flatten()],
                         "std": [IMAGE_STD] * 3, "normalised_in_graph": True,
                         "resize": "bilinear, align_corners=False, from uint8 / 255 in float32; "
                                   "K scaled by (W / w0, H / h0)"}
        if config.camera is not None:
            out["camera"]["depth_m"] = list(config.camera.depth_m)
            out["camera"]["feature_stride"] = config.camera.feature_stride
    if config.radar is not None:
        det = next(d for _, d in branches(model) if d.radar is not None)
        out["radar"] = {"columns": list(RADAR_COLUMNS),
                        "input_scale": [float(v) for v in det.radar.scale],
                        "pfn_input": "x, y, z unscaled, the other columns times input_scale, "
                                     "then the pillar offsets as for lidar"}
    return out


def export_onnx(model: nn.Module, out_dir: str | Path, *, opset: int = DEFAULT_OPSET,
                fp16: bool = False, weights_path: str | Path | None = None,
                model_card: dict | None = None, lidar_sweeps: int = 1,
                radar_scans: int = 1) -> ExportResult:
    """Write the dense graphs of ``model`` (a detector of :mod:`perception.models`) as ONNX
    files plus ``export.json`` to ``out_dir``.

    Args:
        opset: ONNX opset (17 by default; 17 to 21).
        fp16: float16 graphs (inputs and outputs float16; for GPU runtimes).
        weights_path: the weights file the model came from (its sha256 goes to the manifest).
        model_card: the shipped model's card, when the weights are a shipped model's.
        lidar_sweeps, radar_scans: sweeps and scans per frame the model was trained with.
    """
    if opset not in SUPPORTED_OPSETS:
        raise ConfigError(f"opset: expected {SUPPORTED_OPSETS.start} to "
                          f"{SUPPORTED_OPSETS.stop - 1}, got {opset}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    config: ModelConfig = model.config
    graphs: dict[str, dict] = {}
    files = []
    for prefix, det in branches(model):
        for spec in detector_graphs(det, prefix):
            path = out_dir / f"{spec.name}.onnx"
            graphs[spec.name] = _export_graph(spec, path, opset, fp16)
            files.append(path)
    torch_parts = None
    prefixes = torch_part_prefixes(model)
    if prefixes:
        state = {k: v.detach().float().cpu().clone() for k, v in model.state_dict().items()
                 if k.startswith(tuple(prefixes))}
        torch.save(state, out_dir / TORCH_PARTS)
        files.append(out_dir / TORCH_PARTS)
        torch_parts = {"file": TORCH_PARTS, "modules": [p.rstrip(".") for p in prefixes],
                       "sha256": sha256_of(out_dir / TORCH_PARTS)}
    card = None
    if model_card is not None:
        card = {"name": model_card.get("name"), "weights_sha256": model_card.get("sha256"),
                "card_sha256": model_card.get("card_sha256")}
    manifest = {
        "format": FORMAT,
        "opset": opset,
        "dtype": "float16" if fp16 else "float32",
        "fusion": config.fusion,
        "modalities": [m.value for m in (Modality.LIDAR, Modality.CAMERA, Modality.RADAR)
                       if m in config.modalities()],
        "graphs": graphs,
        "torch_parts": torch_parts,
        "preprocessing": preprocessing(config, model),
        "outside_onnx": list(OUTSIDE_ONNX),
        "weights": ({"file": Path(weights_path).name, "sha256": sha256_of(weights_path)}
                    if weights_path is not None else None),
        "model_card": card,
        "lidar_sweeps": int(lidar_sweeps),
        "radar_scans": int(radar_scans),
        "config": to_dict(config),
        "exported_with": {"torch": torch.__version__, "onnx": _version("onnx")},
    }
    write_text_atomic(out_dir / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return ExportResult(out_dir, manifest, tuple(files))


def _version(module: str) -> str | None:
    try:
        return __import__(module).__version__
    except ImportError:
        return None


def read_manifest(export_dir: str | Path) -> dict:
    """The ``export.json`` of an export directory, checked for its format."""
    from ..errors import DataError

    path = Path(export_dir) / MANIFEST
    if not path.is_file():
        raise DataError("not an ONNX export directory (no export.json)", source=str(export_dir))
    try:
        manifest = json.loads(path.read_text())
    except ValueError as exc:
        raise DataError(f"unreadable export.json: {exc}", source=str(path)) from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DataError(f"export.json is not of format {FORMAT}", source=str(path))
    return manifest
