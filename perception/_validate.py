"""Validation helpers shared by the typed data contracts.

Arrays are checked for dimension count, symbolic shape (``("N", 7)``: every ``"N"`` among the
fields of one object must agree), dtype kind and finiteness. A value whose dtype can be cast to
the target within the same kind (float64 -> float32, int64 -> int32 when the values fit) is
converted; anything else is refused with a :class:`~perception.errors.ValidationError` naming
the field.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ValidationError

INT64_MAX = np.iinfo(np.int64).max


class ShapeContext:
    """Binds symbolic dimension names (``"N"``, ``"C"``) across the fields of one object."""

    def __init__(self, owner: str):
        self.owner = owner
        self.dims: dict[str, tuple[int, str]] = {}

    def bind(self, field: str, symbol: str, size: int) -> None:
        if symbol in self.dims:
            expected, first_field = self.dims[symbol]
            if expected != size:
                raise ValidationError(
                    f"{self.owner}.{field}: dimension {symbol}={size} disagrees with "
                    f"{self.owner}.{first_field} where {symbol}={expected}"
                )
        else:
            self.dims[symbol] = (size, field)


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        return f"array of shape {value.shape} and dtype {value.dtype}"
    return f"{type(value).__name__}"


def check_array(
    ctx: ShapeContext,
    field: str,
    value: Any,
    shape: tuple[int | str, ...],
    dtype: type | np.dtype,
    *,
    finite: bool = True,
    exact_dtype: bool = False,
) -> np.ndarray:
    """Validate ``value`` as an array of ``shape`` and return it converted to ``dtype``.

    Args:
        ctx: shape context of the owning object (for symbolic dims and messages).
        field: field name, used in error messages.
        shape: per-dimension int (fixed size) or str (symbolic, bound across fields).
        dtype: target dtype. Floats accept any float or int input; ints accept ints whose
            values fit; bool accepts bool only.
        finite: refuse NaN and inf (floats only).
        exact_dtype: refuse any dtype other than ``dtype`` (used for uint8 images).
    """
    name = f"{ctx.owner}.{field}"
    target = np.dtype(dtype)
    if not isinstance(value, np.ndarray):
        if isinstance(value, (list, tuple)):
            try:
                value = np.asarray(value)
            except ValueError as exc:
                raise ValidationError(f"{name}: cannot be read as an array ({exc})") from None
        else:
            raise ValidationError(f"{name}: expected a numpy array of shape "
                                  f"{_shape_str(shape)}, got {_describe(value)}")
    if value.ndim != len(shape):
        raise ValidationError(f"{name}: expected {len(shape)} dimensions {_shape_str(shape)}, "
                              f"got shape {value.shape}")
    for axis, (want, got) in enumerate(zip(shape, value.shape)):
        if isinstance(want, int):
            if want != got:
                raise ValidationError(f"{name}: expected shape {_shape_str(shape)}, got "
                                      f"{value.shape} (axis {axis} must be {want})")
        else:
            ctx.bind(field, want, got)
    value = _convert_dtype(name, value, target, exact_dtype)
    if finite and target.kind == "f" and value.size and not np.isfinite(value).all():
        bad = int((~np.isfinite(value)).sum())
        raise ValidationError(f"{name}: {bad} non-finite value(s) (NaN or inf); "
                              f"drop or repair them before building the object")
    return value


def _shape_str(shape: tuple[int | str, ...]) -> str:
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _convert_dtype(name: str, value: np.ndarray, target: np.dtype, exact: bool) -> np.ndarray:
    src = value.dtype
    if src == target:
        return value
    if exact:
        raise ValidationError(f"{name}: dtype must be {target}, got {src}")
    if target.kind == "f":
        if src.kind not in "fiu":
            raise ValidationError(f"{name}: expected a floating dtype ({target}), got {src}")
        return value.astype(target)
    if target.kind in "iu":
        if src.kind not in "iu":
            raise ValidationError(f"{name}: expected an integer dtype ({target}), got {src}")
        info = np.iinfo(target)
        if value.size and (value.min() < info.min or value.max() > info.max):
            raise ValidationError(f"{name}: values outside the range of {target} "
                                  f"[{info.min}, {info.max}]")
        return value.astype(target)
    if target.kind == "b":
        raise ValidationError(f"{name}: expected dtype bool, got {src}")
    raise ValidationError(f"{name}: expected dtype {target}, got {src}")


def check_stamp_ns(owner: str, field: str, value: Any) -> int:
    """Validate an integer nanosecond stamp (>= 0, fits int64) and return it as ``int``.

    Floats are refused on purpose: a float seconds value silently truncated to ns is a classic
    source of off-by-one-frame bugs. Convert at the edge with ``round(t_s * 1e9)``.
    """
    name = f"{owner}.{field}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        hint = ""
        if isinstance(value, (float, np.floating)):
            hint = " (convert seconds with int(round(t_s * 1e9)))"
        raise ValidationError(f"{name}: stamp must be an integer number of nanoseconds "
                              f"(int64), got {type(value).__name__} {value!r}{hint}")
    value = int(value)
    if value < 0 or value > INT64_MAX:
        raise ValidationError(f"{name}: stamp {value} ns is outside [0, 2**63)")
    return value


def check_name(owner: str, field: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError(f"{owner}.{field}: expected a non-empty string, got {value!r}")
    return value


def check_rigid_transform(owner: str, field: str, value: Any, atol: float = 1e-4) -> np.ndarray:
    """Validate a 4x4 rigid transform (orthonormal rotation, det +1, last row 0 0 0 1)."""
    ctx = ShapeContext(owner)
    T = check_array(ctx, field, value, (4, 4), np.float64)
    name = f"{owner}.{field}"
    if not np.allclose(T[3], [0.0, 0.0, 0.0, 1.0], atol=1e-9):
        raise ValidationError(f"{name}: last row must be [0, 0, 0, 1], got {T[3].tolist()}")
    R = T[:3, :3]
    if not np.allclose(R @ R.T, np.eye(3), atol=atol) or np.linalg.det(R) < 0:
        raise ValidationError(f"{name}: the 3x3 block is not a rotation (R @ R.T != I or "
                              f"det < 0)")
    return T
