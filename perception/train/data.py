"""Training and validation frames: the simulator (cached on disk as .npz), converted Waymo
segments, or nuScenes; wrapped as torch datasets of :class:`SensorFrame`.

The simulator cache stores plain arrays (``np.savez``, loaded with ``allow_pickle=False``);
a cache file is named by preset, seed and frame index, so any run with the same data config
reuses it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

from torch.utils.data import Dataset

from ..align.sweeps import accumulate
from ..data.frame_npz import load_frame_npz, save_frame_npz
from ..errors import ConfigError
from ..eval.frames import FrameKey
from ..types import SensorFrame
from .config import DataConfig


class FrameDataset(Dataset):
    """``len()`` frames; item i is ``transform(frame_i)`` (a :class:`SensorFrame`).

    With ``radar_scans > 1`` (``lidar_sweeps > 1``) the radar scans (lidar sweeps) of up to
    ``radar_scans - 1`` (``lidar_sweeps - 1``) previous frames of the same sequence are added
    to frame i first (:func:`perception.align.sweeps.accumulate`, the code online inference
    uses too). The previous frames are the sequence's own: ``previous(i, n)`` when given
    (a source that takes every k-th frame of a sequence), otherwise the previous items.
    """

    def __init__(self, load: Callable[[int], SensorFrame], length: int,
                 transform: Callable[[SensorFrame], SensorFrame] | None = None,
                 radar_scans: int = 1, lidar_sweeps: int = 1,
                 previous: Callable[[int, int], list[SensorFrame]] | None = None):
        self.load = load
        self.length = length
        self.transform = transform
        self.radar_scans = radar_scans
        self.lidar_sweeps = lidar_sweeps
        self.previous = previous

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, i: int) -> SensorFrame:
        if not 0 <= i < self.length:
            raise IndexError(i)
        frame = self.load(i)
        history = max(self.radar_scans, self.lidar_sweeps) - 1
        if history > 0:
            previous = (self.previous(i, history) if self.previous is not None
                        else self._previous_items(i, history))
            previous = [p for p in previous if p.sequence_id == frame.sequence_id
                        and p.stamp_ns < frame.stamp_ns]
            frame = accumulate(frame, previous, self.lidar_sweeps, self.radar_scans)
        return self.transform(frame) if self.transform is not None else frame

    def _previous_items(self, i: int, count: int) -> list[SensorFrame]:
        """Up to ``count`` items before i, newest first, stopping at a sequence change."""
        frame = self.load(i)
        out = []
        for j in range(i - 1, max(-1, i - 1 - count), -1):
            earlier = self.load(j)
            if earlier.sequence_id != frame.sequence_id or earlier.stamp_ns >= frame.stamp_ns:
                break
            out.append(earlier)
        return out


class SimFrames:
    """Simulator frames ``(seed, k * stride)`` for the given seeds, generated once and cached."""

    def __init__(self, preset: str, seeds: Sequence[int], frames_per_seed: int, stride: int,
                 cache_dir: str | os.PathLike | None):
        self.preset = preset
        self.items = [(int(s), k * stride) for s in seeds for k in range(frames_per_seed)]
        tag = hashlib.sha1(str(preset).encode()).hexdigest()[:8]
        self.cache = Path(cache_dir) / f"{Path(str(preset)).stem}-{tag}" if cache_dir else None
        self._sims: dict[int, object] = {}

    def __len__(self) -> int:
        return len(self.items)

    def __call__(self, i: int) -> SensorFrame:
        return self._frame(*self.items[i])

    def previous(self, i: int, count: int) -> list[SensorFrame]:
        """The ``count`` simulator frames right before item i (newest first): the frames a
        live stream would have delivered before it, whatever the stride."""
        seed, k = self.items[i]
        return [self._frame(seed, k - j) for j in range(1, count + 1) if k - j >= 0]

    def _frame(self, seed: int, k: int) -> SensorFrame:
        path = self.cache / f"seed{seed}" / f"{k:06d}.npz" if self.cache is not None else None
        if path is not None and path.is_file():
            return load_frame_npz(path)
        frame = self._simulator(seed).frame(k)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + f".{os.getpid()}.tmp.npz")
            save_frame_npz(tmp, frame)
            os.replace(tmp, path)  # atomic: concurrent ranks never read half a file
        return frame

    def _simulator(self, seed: int):
        if seed not in self._sims:
            from ..data.sim import Simulator
            self._sims[seed] = Simulator(self.preset, seed=seed)
        return self._sims[seed]


SPLITS = ("train", "val", "test")


def build_dataset(config: DataConfig, split: str,
                  transform: Callable[[SensorFrame], SensorFrame] | None = None) -> FrameDataset:
    """The ``train``, ``val`` or ``test`` frames of ``config`` (``test``: simulator only)."""
    if split not in SPLITS:
        raise ConfigError(f"split: expected one of {SPLITS}, got {split!r}")
    if split == "test" and config.source != "sim":
        raise ConfigError("split 'test': held-out test seeds exist for the simulator only; "
                          "use split 'val' with data.val_root")
    if config.source == "sim":
        seeds = {"train": config.train_seeds, "val": config.val_seeds,
                 "test": config.test_seeds}[split]
        if not seeds:
            raise ConfigError(f"data.{split}_seeds: empty; the config has no {split} split")
        frames = SimFrames(config.sim_preset, seeds, config.frames_per_seed, config.frame_stride,
                           config.cache_dir)
        return FrameDataset(frames, len(frames), transform, config.radar_scans,
                            config.lidar_sweeps, previous=frames.previous)
    root = config.train_root if split == "train" else (config.val_root or config.train_root)
    if root is None:
        raise ConfigError(f"data.{split}_root: required for source {config.source!r}")
    if config.source == "waymo":
        from ..data.datasets import WaymoConvertedDataset
        ds = WaymoConvertedDataset(root)
    elif Path(root).suffix == ".pkl":
        # mmdet3d's nuScenes info file (read with a restricted unpickler, never plain pickle).
        from ..data.nuscenes import NuScenesInfoReader
        ds = NuScenesInfoReader(root)
    else:
        from ..data.nuscenes import NuScenesDevkit
        ds = NuScenesDevkit(root, version=config.nuscenes_version, sweeps=config.nuscenes_sweeps)
    return FrameDataset(ds.__getitem__, len(ds), transform, config.radar_scans,
                        config.lidar_sweeps)


def frame_key(frame: SensorFrame) -> FrameKey:
    return FrameKey(frame.sequence_id, int(frame.stamp_ns))
