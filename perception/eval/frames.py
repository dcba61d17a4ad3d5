"""Frame keys and the pairing of ground-truth frames with prediction frames.

A frame is identified by its sequence (Waymo ``context_name``) and its stamp. Waymo stores
``frame_timestamp_micros``; the key holds int64 nanoseconds like the rest of the package, and
the Objects reader/writer converts at the edge (``stamp_ns = micros * 1000``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from ..errors import ValidationError

T = TypeVar("T")


@dataclass(frozen=True, order=True)
class FrameKey:
    """Identity of one evaluated frame: ``(sequence_id, stamp_ns)``."""

    sequence_id: str
    stamp_ns: int

    def __post_init__(self) -> None:
        if not isinstance(self.sequence_id, str):
            raise ValidationError(f"FrameKey.sequence_id: expected str, got "
                                  f"{type(self.sequence_id).__name__}")
        if isinstance(self.stamp_ns, bool) or not isinstance(self.stamp_ns, int):
            raise ValidationError(f"FrameKey.stamp_ns: expected int nanoseconds, got "
                                  f"{self.stamp_ns!r}")


def index_frames(items: Mapping[FrameKey, T] | Iterable[tuple[FrameKey, T]],
                 what: str) -> dict[FrameKey, T]:
    """Return ``{key: item}``; refuse duplicate keys and keys that are not :class:`FrameKey`.

    ``items`` is a mapping or an iterable of ``(key, item)`` pairs (the latter is where
    duplicates can occur, e.g. two records of the same frame in a file).
    """
    pairs = items.items() if isinstance(items, Mapping) else items
    out: dict[FrameKey, T] = {}
    for key, item in pairs:
        if not isinstance(key, FrameKey):
            raise ValidationError(f"{what}: frame keys must be FrameKey, got "
                                  f"{type(key).__name__} {key!r}")
        if key in out:
            raise ValidationError(f"{what}: duplicate frame key {key}")
        out[key] = item
    return out
