"""Shared inputs and helpers of the ops tests."""

from __future__ import annotations

import contextlib
import zipfile
from pathlib import Path

import numpy as np
import torch

from perception.ops import load_extension

WAYMO_RANGE = [-75.2, -75.2, -2.0, 75.2, 75.2, 4.0]
WAYMO_VOXEL = [0.1, 0.1, 0.15]


def compiled() -> bool:
    return load_extension() is not None


@contextlib.contextmanager
def num_threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def lidar_points(n: int, seed: int = 0, channels: int = 4, max_range: float = 80.0
                 ) -> torch.Tensor:
    """A spinning-lidar-like cloud in scan order (beam by beam): ground rings plus clutter."""
    rng = np.random.default_rng(seed)
    beams = 64 if n >= 64 * 16 else 1
    az = max(1, -(-n // beams))
    el = np.deg2rad(np.linspace(-17.6, 2.4, beams))
    a = np.linspace(-np.pi, np.pi, az, endpoint=False)
    E, A = np.meshgrid(el, a, indexing="ij")
    ground = np.minimum(2.0 / np.tan(np.maximum(-E, 1e-3)), max_range)
    r = np.where(E < 0, ground, rng.uniform(3.0, max_range, E.shape)) * rng.uniform(0.6, 1.0,
                                                                                     E.shape)
    x = r * np.cos(E) * np.cos(A)
    y = r * np.cos(E) * np.sin(A)
    z = r * np.sin(E) + 0.3 * rng.standard_normal(E.shape)
    cols = [x, y, z] + [rng.uniform(0, 1, E.shape) for _ in range(channels - 3)]
    pts = np.stack(cols, -1).reshape(-1, channels)[:n].astype(np.float32)
    return torch.from_numpy(np.ascontiguousarray(pts))


def uniform_points(n: int, seed: int, channels: int, lo: float = -12.0, hi: float = 12.0
                   ) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    pts = torch.rand((n, channels), generator=g) * (hi - lo) + lo
    return pts.to(torch.float32)


def random_boxes(n: int, seed: int, spread: float = 20.0, dtype=torch.float32) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    b = np.zeros((n, 7))
    b[:, :2] = rng.uniform(-spread, spread, (n, 2))
    b[:, 2] = rng.uniform(-1, 1, n)
    b[:, 3:6] = rng.uniform(0.5, 5.0, (n, 3))
    b[:, 6] = rng.uniform(-np.pi, np.pi, n)
    return torch.from_numpy(b).to(dtype)


def voxel_dict(voxels: torch.Tensor, coords: torch.Tensor, num: torch.Tensor) -> dict:
    """{coord tuple: (count, tuple of the points' rows in order)} for order-free comparison."""
    out = {}
    for v, c, n in zip(voxels.tolist(), coords.tolist(), num.tolist()):
        out[tuple(c)] = (n, tuple(tuple(p) for p in v[:n]))
    return out


def mmcv_ext(tmp_root: Path):
    """mmcv's compiled ops (CPU build) from the wheel in ../shared/wheels, or None."""
    repo = Path(__file__).resolve().parents[2]
    wheels = sorted((repo.parent / "shared" / "wheels").glob("mmcv-*.whl"))
    if not wheels:
        return None
    import importlib.util

    target = tmp_root / "mmcv_ext"
    target.mkdir(exist_ok=True)
    with zipfile.ZipFile(wheels[-1]) as zf:
        names = [n for n in zf.namelist() if n.startswith("mmcv/_ext") and n.endswith(".so")]
        if not names:
            return None
        so = Path(zf.extract(names[0], target))
    try:
        spec = importlib.util.spec_from_file_location("mmcv._ext", so)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception:  # an ABI mismatch with this torch: no peer
        return None
    return module


def mmcv_hard_voxelize(ext, points: torch.Tensor, voxel_size, point_range, max_points: int,
                       max_voxels: int):
    """mmcv hard voxelization with deterministic=True (CPU), trimmed to the voxels found."""
    voxels = points.new_zeros((max_voxels, max_points, points.shape[1]))
    coors = points.new_zeros((max_voxels, 3), dtype=torch.int32)
    num = points.new_zeros((max_voxels,), dtype=torch.int32)
    count = torch.zeros((), dtype=torch.long)
    ext.hard_voxelize_forward(points, torch.tensor(voxel_size, dtype=torch.float32),
                              torch.tensor(point_range, dtype=torch.float32), voxels, coors, num,
                              count, max_points, max_voxels, 3, True)
    m = int(count)
    return voxels[:m], coors[:m], num[:m]
