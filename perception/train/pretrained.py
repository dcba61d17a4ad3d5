"""Initialise parts of a detector from other checkpoints (staged fusion training).

BEVFusion-style recipe: train each single-modality detector, then start the fused detector
from their encoders (and the lidar model's BEV backbone and head) and fine-tune. Parts are
named by the detector's top-level modules (``lidar``, ``camera``, ``radar``, ``painter``,
``fuser``, ``backbone``, ``head``); every tensor of a named part must exist in the source
checkpoint with the same shape, otherwise nothing is loaded and a :class:`ConfigError` says
which tensor disagrees.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError


@dataclass
class PretrainedSource:
    """One checkpoint and the top-level modules taken from it.

    Attributes:
        checkpoint: a checkpoint written by :class:`~perception.train.trainer.Trainer`.
        modules: top-level module names of the detector, e.g. ``[lidar, backbone, head]``.
    """

    checkpoint: str
    modules: tuple[str, ...] = field(default=(), metadata={"min_len": 1})


def load_pretrained(model: nn.Module, sources: tuple[PretrainedSource, ...] | list,
                    device: torch.device | str = "cpu") -> dict[str, int]:
    """Copy the named modules' tensors from each source into ``model``.

    Returns ``{"<checkpoint>:<module>": tensors copied}``. Nothing is copied unless every
    source agrees with the model.
    """
    from .trainer import load_checkpoint_file

    own = model.state_dict()
    update: dict[str, torch.Tensor] = {}
    report: dict[str, int] = {}
    for source in sources:
        state = load_checkpoint_file(source.checkpoint, device)["model"]
        for module in source.modules:
            prefix = module + "."
            wanted = [k for k in own if k.startswith(prefix)]
            if not wanted:
                raise ConfigError(f"train.init_from: the model has no module {module!r} "
                                  f"(it has {sorted({k.split('.')[0] for k in own})})")
            for key in wanted:
                if key not in state:
                    raise ConfigError(f"train.init_from: {source.checkpoint} has no tensor "
                                      f"{key!r}; was it trained with the same {module} config?")
                if tuple(state[key].shape) != tuple(own[key].shape):
                    raise ConfigError(f"train.init_from: {key} is {tuple(state[key].shape)} in "
                                      f"{source.checkpoint} but {tuple(own[key].shape)} in the "
                                      f"model")
                if key in update:
                    raise ConfigError(f"train.init_from: {key} is named by two sources")
                update[key] = state[key]
            report[f"{Path(source.checkpoint).name}:{module}"] = len(wanted)
    model.load_state_dict(update, strict=False)
    return report
