"""Reading detectors back from disk: training checkpoints and weights-only files.

Two formats, both plain data (tensors, dicts, lists, strings, numbers) read with
``torch.load(..., weights_only=True)`` only, so a file can never run code:

- ``fusion_perception.checkpoint/1``: written by :class:`perception.train.trainer.Trainer`:
  model, optimiser, scheduler, scaler, counters and the experiment config as a dict;
- ``fusion_perception.weights/1``: written by :func:`save_weights`: the model's tensors
  (optionally float16) and its model config; what ships with the package.

Both hold ``config["model"]``, from which :func:`load_detector` rebuilds the network, so a
deployed detector needs nothing from the trainer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import from_dict, to_dict
from ..errors import ConfigError, DataError
from .config import ModelConfig
from .detector import build_detector

CHECKPOINT_FORMAT = "fusion_perception.checkpoint/1"
WEIGHTS_FORMAT = "fusion_perception.weights/1"
FORMATS = (CHECKPOINT_FORMAT, WEIGHTS_FORMAT)


def load_checkpoint_file(path: str | Path, device: torch.device | str = "cpu") -> dict:
    """Read a checkpoint or weights file; typed errors on anything else.

    Raises:
        DataError: the file is missing, unreadable, holds objects other than plain data (it
            is never unpickled), or is not one of :data:`FORMATS`.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError("checkpoint not found", source=str(path))
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # unpickling refusals and corrupt files alike
        # torch's own message advises weights_only=False, which would run whatever code the
        # file holds: never repeat that advice for a file of unknown origin.
        lines = str(exc).strip().splitlines()
        reason = type(exc).__name__ if "weights_only" in str(exc) or not lines else lines[0]
        raise DataError(f"cannot load checkpoint: not a checkpoint of this package "
                        f"({reason}); it was not unpickled", source=str(path)) from None
    if not isinstance(state, dict) or state.get("format") not in FORMATS:
        raise DataError(f"not a fusion_perception checkpoint or weights file (expected "
                        f"format {' or '.join(FORMATS)})", source=str(path))
    if not isinstance(state.get("model"), dict) or not isinstance(state.get("config"), dict):
        raise DataError("checkpoint lacks its model tensors or config", source=str(path))
    return state


def model_config_of(state: dict, source: str = "checkpoint") -> ModelConfig:
    """The :class:`ModelConfig` stored in a loaded checkpoint or weights file."""
    model = state["config"].get("model")
    if not isinstance(model, dict):
        raise DataError("checkpoint config has no model section", source=source)
    return from_dict(ModelConfig, model, source=f"{source}:config.model")


def load_state_checked(model: nn.Module, tensors: dict[str, torch.Tensor],
                       source: str = "weights") -> None:
    """``model.load_state_dict(tensors)`` after checking names and shapes, so a config that
    does not match the weights is a :class:`ConfigError` naming the first mismatching tensor
    (dtypes may differ: float16 weights load into a float32 model)."""
    if not isinstance(tensors, dict) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in tensors.items()):
        raise DataError("the model entry must map tensor names to tensors", source=source)
    own = model.state_dict()
    for name, value in own.items():
        if name not in tensors:
            raise ConfigError(f"{source}: the config's model has tensor {name} "
                              f"{tuple(value.shape)}, the weights do not")
        if tuple(tensors[name].shape) != tuple(value.shape):
            raise ConfigError(f"{source}: tensor {name} is {tuple(tensors[name].shape)} in the "
                              f"weights but {tuple(value.shape)} in the config's model")
    extra = [name for name in tensors if name not in own]
    if extra:
        raise ConfigError(f"{source}: the weights have tensor {extra[0]}, the config's model "
                          f"does not")
    model.load_state_dict(tensors)


@dataclass(frozen=True, eq=False)
class LoadedDetector:
    """A detector read back from disk, with what inference needs to feed it as in training.

    Attributes:
        model: the detector, eval mode, float32.
        config: its :class:`ModelConfig`.
        lidar_sweeps, radar_scans: sweeps (scans) per frame it was trained with
            (``data.lidar_sweeps`` / ``data.radar_scans`` of its training config).
        path: the file it came from.
    """

    model: nn.Module
    config: ModelConfig
    lidar_sweeps: int
    radar_scans: int
    path: Path


def read_detector(path: str | Path, device: torch.device | str = "cpu",
                  config: ModelConfig | None = None) -> LoadedDetector:
    """The detector of a checkpoint or weights file on ``device``. With ``config``, that
    network is built instead of the stored one, and every tensor must fit it."""
    state = load_checkpoint_file(path, device)
    model_config = config if config is not None else model_config_of(state, str(path))
    model = build_checked(model_config, state["model"], str(path))
    model = model.float().to(device).eval()
    data = state["config"].get("data") or {}
    # A training config keeps data.radar_scans even for a model without radar; only what the
    # model reads counts.
    sweeps = _count(data, "lidar_sweeps", str(path)) if model_config.lidar is not None else 1
    scans = _count(data, "radar_scans", str(path)) if model_config.radar is not None else 1
    return LoadedDetector(model, model_config, sweeps, scans, Path(path))


def build_checked(config: ModelConfig, tensors: dict, source: str = "weights") -> nn.Module:
    """The detector of ``config`` holding ``tensors``, checked before any memory is spent.

    The network is first built on the ``meta`` device (shapes only) and the tensors checked
    against it (:func:`load_state_checked`), so a file whose config describes a huge network
    fails with a :class:`ConfigError` instead of allocating it; only a network whose every
    tensor is already in memory is then built for real.
    """
    try:
        with torch.device("meta"):
            shapes = build_detector(config)
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
        # A config that validates but describes no buildable network (e.g. a layer of 2**31
        # channels overflows torch's size arithmetic).
        raise ConfigError(f"{source}: its model config does not build a network: "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
                          ) from None
    load_state_checked(shapes, {k: v.to("meta") if isinstance(v, torch.Tensor) else v
                                for k, v in tensors.items()} if isinstance(tensors, dict)
                       else tensors, source)
    model = build_detector(config)
    load_state_checked(model, tensors, source)
    return model


def _count(data: object, key: str, source: str) -> int:
    """``data[key]`` as a count >= 1 (default 1) from a stored config."""
    value = data.get(key, 1) if isinstance(data, dict) else 1
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise DataError(f"config.data.{key}: expected an integer in [1, 1000], got {value!r}",
                        source=source)
    return value


def load_detector(path: str | Path, device: torch.device | str = "cpu",
                  config: ModelConfig | None = None) -> tuple[nn.Module, ModelConfig]:
    """Detector (eval mode, float32, on ``device``) and its :class:`ModelConfig` from a
    checkpoint or weights file (:func:`read_detector`)."""
    loaded = read_detector(path, device, config)
    return loaded.model, loaded.config


def save_weights(path: str | Path, model: nn.Module, config: ModelConfig,
                 lidar_sweeps: int = 1, radar_scans: int = 1, half: bool = True) -> Path:
    """Write a weights-only file (:data:`WEIGHTS_FORMAT`): floating tensors as float16 when
    ``half`` (integer buffers keep their dtype), the model config and the sweeps and scans
    per frame it expects. Written to a temporary file and renamed, so a reader never sees
    half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: (v.detach().to("cpu", torch.float16) if half and v.is_floating_point()
                   else v.detach().cpu()).clone()
               for k, v in model.state_dict().items()}
    state = {"format": WEIGHTS_FORMAT, "model": tensors,
             "config": {"model": to_dict(config),
                        "data": {"lidar_sweeps": int(lidar_sweeps),
                                 "radar_scans": int(radar_scans)}}}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)
    return path
