"""Argument checking shared by the ops: every refusal is an :class:`~perception.errors.OpsError`
(a ``ValueError``) whose message starts with the argument's name and gives its shape or value.

NumPy arrays are accepted wherever a tensor is and converted with :func:`torch.as_tensor`
(zero-copy when possible). Non-contiguous tensors are made contiguous.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import OpsError

INT32_MAX = 2**31 - 1
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
INT_DTYPES = (torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64)
MAX_OUTPUT_BYTES = 8 * 2**30
"""The largest output an op allocates from its arguments rather than from its input (a BEV
grid, a voxel buffer): 8 GiB holds a batch of 8 BEV maps of 80 channels on a 1440 x 1440
grid in float32, far beyond what a config asks, and refuses a mistyped grid before it
exhausts memory."""


def as_tensor(name: str, value: object) -> torch.Tensor:
    """A torch tensor from a tensor or a NumPy array (anything else is refused)."""
    if isinstance(value, torch.Tensor):
        if value.device.type == "meta":
            raise OpsError(f"{name}: on the meta device (shapes only, no data); the ops need "
                           f"tensors on cpu or cuda")
        return value
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise OpsError(f"{name}: expected a numeric array, got an object array of shape "
                           f"{value.shape}")
        return torch.as_tensor(np.ascontiguousarray(value))
    raise OpsError(f"{name}: expected a torch.Tensor or numpy.ndarray, got "
                   f"{type(value).__name__}")


def describe(t: torch.Tensor) -> str:
    return f"shape {tuple(t.shape)}, dtype {str(t.dtype).replace('torch.', '')}, device {t.device}"


def check_matrix(name: str, t: torch.Tensor, cols: int | None = None, *,
                 min_cols: int | None = None, cols_text: str | None = None) -> torch.Tensor:
    """2-D with ``cols`` columns (or at least ``min_cols``); returned contiguous."""
    want = cols_text or (f"(N, {cols})" if cols is not None else
                         f"(N, C>={min_cols})" if min_cols is not None else "(N, C)")
    bad = t.dim() != 2 or (cols is not None and t.shape[1] != cols) or (
        min_cols is not None and t.shape[1] < min_cols)
    if bad:
        raise OpsError(f"{name}: expected shape {want}, got {describe(t)}")
    return t.contiguous()


def check_vector(name: str, t: torch.Tensor, n: int | None = None,
                 n_text: str = "N") -> torch.Tensor:
    if t.dim() != 1 or (n is not None and t.shape[0] != n):
        want = f"({n_text}={n},)" if n is not None else "(N,)"
        raise OpsError(f"{name}: expected shape {want}, got {describe(t)}")
    return t.contiguous()


def require_float(name: str, t: torch.Tensor, allowed: tuple[torch.dtype, ...] = FLOAT_DTYPES
                  ) -> None:
    if t.dtype not in allowed:
        names = ", ".join(str(d).replace("torch.", "") for d in allowed)
        raise OpsError(f"{name}: expected a floating dtype ({names}), got {describe(t)}")


def require_int(name: str, t: torch.Tensor) -> None:
    if t.dtype not in INT_DTYPES:
        raise OpsError(f"{name}: expected an integer dtype, got {describe(t)}")


def require_finite(name: str, t: torch.Tensor) -> None:
    if t.numel() and not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise OpsError(f"{name}: {bad} non-finite value(s) (NaN or inf) in {describe(t)}")


def check_output_size(name: str, shape: Sequence[int], itemsize: int) -> None:
    """Refuse an output of ``shape`` larger than :data:`MAX_OUTPUT_BYTES`."""
    size = float(np.prod([float(d) for d in shape])) * itemsize
    if size > MAX_OUTPUT_BYTES:
        raise OpsError(f"{name}: the output {tuple(int(d) for d in shape)} would need "
                       f"{size / 2**30:.1f} GiB, over the {MAX_OUTPUT_BYTES / 2**30:.0f} GiB "
                       f"bound")


def same_device(**tensors: torch.Tensor) -> torch.device:
    devices = {name: t.device for name, t in tensors.items()}
    first_name, first = next(iter(devices.items()))
    for name, dev in devices.items():
        if dev != first:
            raise OpsError(f"{name}: on {dev}, but {first_name} is on {first}")
    return first


def as_int(name: str, value: object, *, minimum: int, maximum: int = 2**62,
           allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point():
        value = int(value.item())
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise OpsError(f"{name}: expected an integer >= {minimum}, got {value!r}")
    value = int(value)
    if value < minimum or value > maximum:
        raise OpsError(f"{name}: expected an integer in [{minimum}, {maximum}], got {value}")
    return value


def as_float(name: str, value: object, *, minimum: float | None = None,
             maximum: float | None = None) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise OpsError(f"{name}: expected a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise OpsError(f"{name}: must be finite, got {value}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise OpsError(f"{name}: expected a value in [{minimum}, {maximum}], got {value}")
    return value


def _float_values(name: str, value: object, n: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise OpsError(f"{name}: expected {n} numbers, got {value!r}") from None
    if arr.shape != (n,):
        raise OpsError(f"{name}: expected {n} numbers, got shape {arr.shape} ({value!r})")
    if not np.isfinite(arr).all():
        raise OpsError(f"{name}: values must be finite, got {arr.tolist()}")
    return arr


@dataclass(frozen=True)
class VoxelGrid:
    """A checked voxel grid. Values are float32, as the index arithmetic uses them.

    ``grid`` is ``(nx, ny, nz) = round((hi - lo) / size)`` computed in float32 and rounded half
    away from zero, as mmcv and spconv do.
    """

    size: tuple[float, float, float]   # x, y, z (float32 values)
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]
    grid: tuple[int, int, int]         # nx, ny, nz

    @property
    def shape_zyx(self) -> tuple[int, int, int]:
        return (self.grid[2], self.grid[1], self.grid[0])


def voxel_grid(voxel_size: Sequence[float] | np.ndarray | torch.Tensor,
               point_range: Sequence[float] | np.ndarray | torch.Tensor,
               *, batch_size: int = 1) -> VoxelGrid:
    """Check ``voxel_size`` (3,) and ``point_range`` (6,) and derive the grid."""
    vs = _float_values("voxel_size", voxel_size, 3).astype(np.float32)
    rng = _float_values("point_range", point_range, 6).astype(np.float32)
    if not (vs > 0).all():
        raise OpsError(f"voxel_size: every value must be > 0, got {vs.tolist()}")
    lo, hi = rng[:3], rng[3:]
    if not (hi > lo).all():
        axes = [a for a, ok in zip("xyz", hi > lo) if not ok]
        raise OpsError(f"point_range: inverted or empty on axis {', '.join(axes)}: "
                       f"(min x, y, z, max x, y, z) = {rng.tolist()}")
    with np.errstate(over="ignore"):
        q = ((hi - lo).astype(np.float32) / vs).astype(np.float32)
    if not np.isfinite(q).all():
        raise OpsError(f"voxel_size: grid too large for int32: (point_range extent) / "
                       f"voxel_size = {q.tolist()}")
    grid = np.floor(q.astype(np.float64) + 0.5)
    if (grid < 1).any():
        raise OpsError(f"voxel_size: {vs.tolist()} is larger than the point_range extent "
                       f"{(hi - lo).tolist()} on some axis (grid {grid.astype(int).tolist()})")
    if (grid > INT32_MAX).any():
        raise OpsError(f"voxel_size: grid {grid.astype(np.int64).tolist()} (x, y, z) too large "
                       f"for int32 coordinates; use a larger voxel_size or a smaller "
                       f"point_range")
    total = float(np.prod(grid)) * batch_size
    if total >= 2.0**62:
        raise OpsError(f"voxel_size: grid {grid.astype(np.int64).tolist()} x batch {batch_size} "
                       f"has {total:.3g} cells, too many for int64 voxel keys")
    return VoxelGrid(tuple(float(v) for v in vs), tuple(float(v) for v in lo),
                     tuple(float(v) for v in hi), tuple(int(v) for v in grid))


def check_points(points: object, name: str = "points") -> torch.Tensor:
    """(N, C>=3) floating points -> contiguous float32 (NaN/inf rows are kept; ops drop them)."""
    t = check_matrix(name, as_tensor(name, points), min_cols=3)
    require_float(name, t)
    return t.to(torch.float32).contiguous()
