"""Deployment: ONNX export of a detector's dense parts and an ONNX Runtime backend.

The split follows Autoware's CenterPoint and NVIDIA's CUDA-BEVFusion: voxelization, the
per-pillar reductions, bev_pool and its plan, decoding and NMS stay outside ONNX as
:mod:`perception.ops` calls; the pillar feature nets, the camera backbone and depth net, and
the fuser (with a modality-presence mask input) + BEV backbone + heads go into ONNX.
See docs/export.md.
"""

from .onnx_export import DEFAULT_OPSET, MANIFEST, ExportResult, export_onnx, read_manifest
from .runtime import OnnxRuntimeDetector, load_onnx_detector, onnx_detector_for

__all__ = ["DEFAULT_OPSET", "MANIFEST", "ExportResult", "OnnxRuntimeDetector", "export_onnx",
           "load_onnx_detector", "onnx_detector_for", "read_manifest"]
