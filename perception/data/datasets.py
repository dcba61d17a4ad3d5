"""Torch ``Dataset`` classes over Waymo data: the converted format and raw segment TFRecords.

Both yield :class:`~perception.types.SensorFrame` (optionally passed through ``transform``);
batching SensorFrames is the training code's business (``collate_fn``). Both index every frame
of every segment up front and open files lazily, so they are cheap to pickle into DataLoader
workers.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

from ..errors import DataError
from ..types import SensorFrame
from .waymo import WaymoReader
from .waymo_convert import ConvertedSegment, list_segments, open_converted

Transform = Callable[[SensorFrame], Any]


class _ConcatFrames(Dataset):
    """Global frame index over per-segment sources with ``len()`` and ``[i]``."""

    def __init__(self, segments: Sequence[Any], transform: Transform | None):
        self.segments = list(segments)
        self.transform = transform
        self.starts = np.cumsum([0] + [len(s) for s in self.segments]).tolist()

    def __len__(self) -> int:
        return self.starts[-1]

    def locate(self, i: int) -> tuple[int, int]:
        """Global frame index -> (segment index, frame index in that segment)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"frame {i} out of range ({len(self)} frames)")
        i %= len(self)
        seg = bisect.bisect_right(self.starts, i) - 1
        return seg, i - self.starts[seg]

    def __getitem__(self, i: int) -> Any:
        seg, j = self.locate(int(i))
        frame = self.segments[seg][j]
        return self.transform(frame) if self.transform is not None else frame


class WaymoConvertedDataset(_ConcatFrames):
    """Frames of the segments converted by ``perception convert waymo`` under ``root``."""

    def __init__(self, root: str | os.PathLike, transform: Transform | None = None):
        segments = open_converted(root)
        if not segments:
            raise DataError("no converted segments (no */meta.json)", source=str(root))
        super().__init__(segments, transform)

    @property
    def segment_names(self) -> list[str]:
        return [s.directory.name for s in self.segments if isinstance(s, ConvertedSegment)]


class WaymoTFRecordDataset(_ConcatFrames):
    """Frames decoded straight from Waymo segment TFRecords (a file, a directory or a list)."""

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike],
                 transform: Transform | None = None):
        if isinstance(paths, (str, os.PathLike)):
            files = list_segments(paths)
        else:
            files = [Path(p) for p in paths]
        if not files:
            raise DataError("no .tfrecord files", source=str(paths))
        super().__init__([WaymoReader(p) for p in files], transform)
