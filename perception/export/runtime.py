"""A detector whose dense parts run in ONNX Runtime, with the same face as the torch one.

:class:`OnnxRuntimeDetector` takes the graphs written by
:func:`~perception.export.onnx_export.export_onnx` and does, around them, exactly what the
torch encoders do between their dense layers: dynamic pillars and per-pillar reductions (the
maxima reuse the pillars found for the mean), the camera view transform (``lss_pool``, the
frustum never built), point painting, and decoding with NMS. With 2 threads or more the camera
branch runs beside the point branches. ``tests/export`` checks the two against each other on
simulator frames for every shipped config and modality mask.

It is an ``nn.Module`` with ``spec``, ``config``, ``modalities``, ``forward(batch) ->
DetectorOutput``, ``decode(batch, output)`` and ``predict(frames)``, so
:class:`~perception.pipeline.Pipeline` uses it as it uses a torch detector. The torch model it
holds supplies configuration, the frustum geometry and the decoding; its dense weights are not
used (they are in the ONNX files). Inputs and outputs go through NumPy on the CPU execution
provider; with ``onnxruntime-gpu`` the CUDA provider is used when asked for.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import ops
from ..config import from_dict
from ..errors import ConfigError, DataError
from ..models.batch import MODALITY_ORDER, Batch, collate_frames
from ..models.common import pillar_grid, points_in_range, scatter_to_bev
from ..models.config import ModelConfig
from ..models.detector import DetectorOutput, build_detector
from ..models.heads import TaskOutput
from ..models.painting import paint_points, painted_cameras
from ..types import Detections, Modality, SensorFrame
from .graphs import GRAPHS_REVISION
from .onnx_export import TORCH_PARTS, read_manifest

PROVIDERS = ("CPUExecutionProvider", "CUDAExecutionProvider")


def _numpy_dtype(name: str):
    return {"float32": np.float32, "float16": np.float16, "bool": np.bool_}[name]


class OnnxRuntimeDetector(nn.Module):
    """Dense graphs in ONNX Runtime, everything else as in the torch detector.

    Args:
        model: the torch detector of the exported config (weights of the dense parts unused;
            the modules listed under ``torch_parts`` in export.json must hold their weights).
        export_dir: a directory written by :func:`export_onnx`.
        threads: intra-op threads of each session (default: ``torch.get_num_threads()``).
        providers: ONNX Runtime execution providers (default: the CPU provider).
    """

    def __init__(self, model: nn.Module, export_dir: str | Path, *, threads: int | None = None,
                 providers: Sequence[str] | None = None):
        super().__init__()
        import onnxruntime as ort

        self.model = model.eval()
        self.export_dir = Path(export_dir)
        self.manifest = read_manifest(export_dir)
        self.threads = int(threads) if threads is not None else torch.get_num_threads()
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # ORT's pool threads spin after each run by default; between the graphs the torch
        # parts (voxelization, bev_pool, decoding) run on the same cores, and each session's
        # spinning pool took them: 2 threads were slower than 1 (benchmarks/RESULTS.md).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.providers = list(providers) if providers is not None else ["CPUExecutionProvider"]
        self._sessions = {}
        self._io = {}
        for name, graph in self.manifest["graphs"].items():
            path = self.export_dir / graph["file"]
            if not path.is_file():
                raise DataError("ONNX graph listed in export.json is missing", source=str(path))
            self._sessions[name] = ort.InferenceSession(str(path), options,
                                                        providers=self.providers)
            self._io[name] = ([(i["name"], _numpy_dtype(i["dtype"])) for i in graph["inputs"]],
                              [o["name"] for o in graph["outputs"]])
        self._plans: dict[tuple, ops.LssPoolPlan] = {}
        # With 2 threads or more, the camera branch (image net, then lss_pool) runs beside the
        # lidar and radar branches: the point branches are many small steps that leave cores
        # idle, and the overlap took 13 ms off a 132 ms predict on 2 cores. The results are
        # the same: the branches share nothing.
        self._camera_worker = (ThreadPoolExecutor(1, thread_name_prefix="onnx-camera",
                                                  initializer=torch.set_num_threads,
                                                  initargs=(self.threads,))
                               if self.threads >= 2 else None)

    # ---- the face of a detector ------------------------------------------------------------

    @property
    def config(self) -> ModelConfig:
        return self.model.config

    @property
    def spec(self):
        return self.model.spec

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return self.model.modalities

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def used_mask(self, batch: Batch) -> torch.Tensor:
        return self.model.used_mask(batch)

    def forward(self, batch: Batch) -> DetectorOutput:
        used = self.model.used_mask(batch)
        batch = dataclasses.replace(batch, present=used)
        if not hasattr(self.model, "branches"):
            return self._fusion(self.model, batch, "")
        outs = {Modality(k): self._fusion(branch, batch, f"late.{k}.")
                for k, branch in self.model.branches.items()}
        first = next(iter(outs.values()))
        return DetectorOutput(first.tasks, used, None, {m: o.tasks for m, o in outs.items()})

    def decode(self, batch: Batch, output: DetectorOutput) -> list[Detections]:
        return self.model.decode(batch, output)

    @torch.no_grad()
    def predict(self, frames: Sequence[SensorFrame],
                drop: frozenset[Modality] = frozenset()) -> list[Detections]:
        """Detect in ``frames``, optionally ignoring the ``drop`` modalities."""
        batch = collate_frames(frames, self.spec)
        if drop:
            batch = batch.without(drop)
        return self.decode(batch, self(batch))

    # ---- one FusionDetector (or late-fusion branch) ---------------------------------------

    def _fusion(self, det: nn.Module, batch: Batch, prefix: str) -> DetectorOutput:
        used = det.used_mask(batch)
        batch = dataclasses.replace(batch, present=used)
        features: dict[Modality, torch.Tensor] = {}
        camera = None
        if det.camera is not None and self._camera_worker is not None:
            camera = self._camera_worker.submit(self._camera, det.camera, batch,
                                                f"{prefix}camera")
        elif det.camera is not None:
            features[Modality.CAMERA] = self._camera(det.camera, batch, f"{prefix}camera")
        if det.lidar is not None:
            has = batch.has(Modality.LIDAR)
            points = [p if bool(has[b]) else p[:0] for b, p in enumerate(batch.lidar_points)]
            if det.painter is not None:
                points = self._paint(det, batch, points, prefix)
            if hasattr(det.lidar, "pfn"):
                features[Modality.LIDAR] = self._pillars(det.lidar, points, f"{prefix}lidar")
            else:  # the sparse encoder (spconv) runs in torch
                features[Modality.LIDAR] = det.lidar(points)
        if det.radar is not None:
            has = batch.has(Modality.RADAR)
            points = [p if bool(has[b]) else p[:0] for b, p in enumerate(batch.radar_points)]
            features[Modality.RADAR] = self._radar(det.radar, points, f"{prefix}radar")
        if camera is not None:
            features[Modality.CAMERA] = camera.result()
        cols = [MODALITY_ORDER.index(m) for m in det.bev_modalities]
        outs = self._run(f"{prefix}bev", *[features[m] for m in det.bev_modalities],
                         used[:, cols])
        tasks = [TaskOutput(outs[2 * t], outs[2 * t + 1]) for t in range(len(outs) // 2)]
        return DetectorOutput(tasks, used, None)

    def _run(self, name: str, *inputs: torch.Tensor) -> list[torch.Tensor]:
        session = self._sessions[name]
        names, outputs = self._io[name]
        feed = {n: np.ascontiguousarray(t.detach().cpu().numpy().astype(dt, copy=False))
                for (n, dt), t in zip(names, inputs)}
        result = session.run(outputs, feed)
        return [torch.from_numpy(np.asarray(r, dtype=np.float32)) for r in result]

    # ---- encoders: the torch encoders' steps, dense layers from ONNX ------------------------

    def _pillar_net(self, grid, layers: int, points: torch.Tensor, coords: torch.Tensor,
                    name: str) -> tuple[torch.Tensor, torch.Tensor]:
        # As PillarFeatureNet.forward: decorate, then per layer: MLP (ONNX), per-pillar max.
        # The pillars are found once (ops.scatter_reduce, for the mean); the maxima reuse them:
        # a max is exact in any order, and grouping again cost 2 ms per layer for 25k points.
        xyz = points[:, :3]
        mean, pillar_coords, inverse = ops.scatter_reduce(xyz, coords, "mean")
        r = grid.point_range_m
        dx, dy = grid.cell_size_m
        centre_x = (coords[:, 3].to(xyz.dtype) + 0.5) * dx + r[0]
        centre_y = (coords[:, 2].to(xyz.dtype) + 0.5) * dy + r[1]
        x = torch.cat([points, xyz - mean[inverse],
                       (xyz[:, 0] - centre_x)[:, None], (xyz[:, 1] - centre_y)[:, None]], 1)
        pooled = None
        for i in range(layers):
            feats = self._run(f"{name}.pfn.{i}", x)[0]
            pooled = feats.new_empty((mean.shape[0], feats.shape[1])).scatter_reduce_(
                0, inverse[:, None].expand_as(feats), feats, "amax", include_self=False)
            if i + 1 < layers:
                x = torch.cat([feats, pooled[inverse]], 1)
        return pooled, pillar_coords

    def _pillars(self, encoder: nn.Module, points: list[torch.Tensor], name: str,
                 scale: torch.Tensor | None = None) -> torch.Tensor:
        grid = encoder.grid
        B = len(points)
        H, W = grid.shape_hw
        kept = [p[points_in_range(p, grid)] for p in points]
        flat = torch.cat(kept) if kept else points[0].new_zeros((0, encoder.in_channels))
        if flat.shape[0] == 0:
            return flat.new_zeros((B, encoder.out_channels, H, W))
        voxel_size, point_range = pillar_grid(grid)
        coords = ops.voxelize_dynamic_batch(kept, voxel_size, point_range)
        ok = coords[:, 0] >= 0
        inputs = flat[ok]
        if scale is not None:  # radar: scaled columns after the unscaled x, y, z
            inputs = torch.cat([inputs[:, :3], (inputs * scale)[:, 3:]], 1)
        if inputs.shape[0] == 0:
            return flat.new_zeros((B, encoder.out_channels, H, W))
        feats, pillar_coords = self._pillar_net(grid, len(encoder.pfn.layers), inputs,
                                                coords[ok], name)
        return scatter_to_bev(feats, pillar_coords, B, (H, W))

    def _radar(self, encoder: nn.Module, points: list[torch.Tensor], name: str) -> torch.Tensor:
        return self._pillars(encoder, points, name, scale=encoder.scale)

    def _camera(self, encoder: nn.Module, batch: Batch, name: str) -> torch.Tensor:
        # As LSSCameraEncoder.forward, but the layout of the sparse product (ops.lss_pool) is
        # cached while the cameras' calibration and the batch layout stay the same (the usual
        # case on a vehicle).
        B = batch.batch_size
        H, W = encoder.grid.shape_hw
        use = batch.camera_valid & batch.has(Modality.CAMERA)[:, None]
        index = use.nonzero()
        if index.shape[0] == 0:
            return batch.images.new_zeros((B, encoder.out_channels, H, W))
        images = batch.images[index[:, 0], index[:, 1]]
        extra = ()
        feature_hw = encoder.feature_hw(images.shape[-2:])
        with torch.autocast(batch.images.device.type, enabled=False):
            if encoder.config.camera_aware_depth:
                extra += (encoder.pixel_geometry(batch, index, feature_hw),)
            if encoder.config.lidar_depth_prior:
                extra += (encoder.lidar_depth_input(batch, index, feature_hw),)
        depth, context = self._run(f"{name}.net", images, *extra)
        plan = self._frustum_plan(encoder, batch, index, tuple(depth.shape))
        return ops.lss_pool(depth, context, plan)[:, :, 0]

    def _frustum_plan(self, encoder: nn.Module, batch: Batch, index: torch.Tensor,
                      depth_shape: tuple[int, int, int, int]) -> ops.LssPoolPlan:
        sel = (index[:, 0], index[:, 1])
        key = (batch.batch_size, tuple(batch.images.shape[-2:]), depth_shape,
               index.numpy().tobytes(), batch.intrinsics[sel].numpy().tobytes(),
               batch.T_vehicle_optical[sel].numpy().tobytes())
        plan = self._plans.get(key)
        if plan is None:
            with torch.autocast(batch.images.device.type, enabled=False):
                plan = encoder.frustum_plan(batch, index, depth_shape)
            if len(self._plans) >= 8:  # calibrations change rarely: keep a few
                self._plans.pop(next(iter(self._plans)))
            self._plans[key] = plan
        return plan

    def _paint(self, det: nn.Module, batch: Batch, points: list[torch.Tensor], prefix: str
               ) -> list[torch.Tensor]:
        # As PointPainter.forward, image features from ONNX.
        index = painted_cameras(batch)
        maps = None
        if index.shape[0]:
            maps = self._run(f"{prefix}painter.net", batch.images[index[:, 0], index[:, 1]])[0]
        return paint_points(batch, points, index, maps, det.painter.extra_channels)


def load_onnx_detector(export_dir: str | Path, model: nn.Module | None = None, *,
                       threads: int | None = None,
                       providers: Sequence[str] | None = None) -> OnnxRuntimeDetector:
    """An :class:`OnnxRuntimeDetector` over ``export_dir``. Without ``model``, the torch model
    is built from the config in export.json and the modules that run in torch (if any) are
    loaded from ``torch_parts.pt``."""
    manifest = read_manifest(export_dir)
    if model is None:
        config = from_dict(ModelConfig, manifest["config"], source=f"{export_dir}/export.json")
        model = build_detector(config)
        parts = manifest.get("torch_parts")
        if parts:
            path = Path(export_dir) / TORCH_PARTS
            try:
                state = torch.load(path, map_location="cpu", weights_only=True)
            except Exception as exc:
                raise DataError(f"cannot read the torch parts of the export ({exc})",
                                source=str(path)) from None
            missing = model.load_state_dict(state, strict=False).unexpected_keys
            if missing:
                raise DataError(f"torch_parts.pt has unknown tensors {missing[:3]}",
                                source=str(path))
    elif model.config.fusion != manifest.get("fusion"):
        raise ConfigError(f"model: fusion {model.config.fusion!r} does not match the export's "
                          f"{manifest.get('fusion')!r}")
    return OnnxRuntimeDetector(model.cpu().eval(), export_dir, threads=threads,
                               providers=providers)




def cache_root() -> Path:
    """Where exports made on the fly are kept: ``$XDG_CACHE_HOME/fusion_perception/onnx``
    (``~/.cache/...`` by default)."""
    import os

    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "fusion_perception" / "onnx"


def onnx_detector_for(model: nn.Module, weights_path: str | Path, *, lidar_sweeps: int = 1,
                      radar_scans: int = 1, cache_dir: str | Path | None = None,
                      threads: int | None = None,
                      providers: Sequence[str] | None = None) -> OnnxRuntimeDetector:
    """The ONNX Runtime twin of ``model`` (read from ``weights_path``): exported once into a
    cache directory keyed by the weights' sha256 (and the torch version), then loaded."""
    import os
    import shutil
    import tempfile

    from ..models.shipped import WEIGHTS_DIR, card_path, hashed_card, sha256_of
    from .onnx_export import DEFAULT_OPSET, MANIFEST, export_onnx

    key = (f"{sha256_of(weights_path)[:20]}-opset{DEFAULT_OPSET}-graphs{GRAPHS_REVISION}"
           f"-torch{torch.__version__}")
    root = Path(cache_dir) if cache_dir is not None else cache_root()
    target = root / key
    if not (target / MANIFEST).is_file():
        root.mkdir(parents=True, exist_ok=True)
        # Written aside and renamed, so that a concurrent reader never sees half an export.
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=root))
        try:
            card = None
            if Path(weights_path).resolve().parent == WEIGHTS_DIR.resolve():
                name = Path(weights_path).stem
                if card_path(name).is_file():
                    card = hashed_card(name)
            export_onnx(model, tmp, weights_path=weights_path, model_card=card,
                        lidar_sweeps=lidar_sweeps, radar_scans=radar_scans)
            try:
                os.replace(tmp, target)
            except OSError:  # another process won the race: use its export
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return OnnxRuntimeDetector(model.cpu().eval(), target, threads=threads, providers=providers)


__all__ = ["OnnxRuntimeDetector", "cache_root", "load_onnx_detector", "onnx_detector_for"]
