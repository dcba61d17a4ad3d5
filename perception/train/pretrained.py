"""Initialise parts of a detector from other checkpoints (staged fusion training).

BEVFusion-style recipe: train each single-modality detector, then start the fused detector
from their encoders (and the lidar model's BEV backbone and head) and fine-tune. Parts are
named by the detector's top-level modules (``lidar``, ``camera``, ``radar``, ``painter``,
``fuser``, ``backbone``, ``head``); every tensor of a named part must exist in the source
checkpoint with the same shape, otherwise nothing is loaded and a :class:`ConfigError` says
which tensor disagrees. One exception: ``fuser`` taken from a single-modality checkpoint into
a multi-modality concat fuser is widened by
:meth:`~perception.models.fuser.ConcatFuser.load_single_modality` (the other modalities'
input weights start at zero, so the fused model starts as the single-modality one).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..types import Modality


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
    single_fuser = None
    for source in sources:
        checkpoint = load_checkpoint_file(source.checkpoint, device)
        state = checkpoint["model"]
        for module in source.modules:
            prefix = module + "."
            wanted = [k for k in own if k.startswith(prefix)]
            if not wanted:
                raise ConfigError(f"train.init_from: the model has no module {module!r} "
                                  f"(it has {sorted({k.split('.')[0] for k in own})})")
            if module == "fuser" and _is_single_modality_fuser(model, checkpoint, wanted):
                if single_fuser is not None:
                    raise ConfigError("train.init_from: fuser is named by two sources")
                single_fuser = _single_fuser_source(model, checkpoint, source.checkpoint)
                report[f"{Path(source.checkpoint).name}:fuser"] = len(single_fuser[1])
                continue
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
    if single_fuser is not None:
        if any(k.startswith("fuser.") for k in update):
            raise ConfigError("train.init_from: fuser is named by two sources")
        # Dry run on a copy first: nothing is loaded unless every source fits.
        try:
            copy.deepcopy(model.fuser).load_single_modality(*single_fuser)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"train.init_from: fuser: {exc}") from None
    model.load_state_dict(update, strict=False)
    if single_fuser is not None:
        model.fuser.load_single_modality(*single_fuser)
    return report


def _source_modalities(checkpoint: dict) -> list[Modality]:
    stored = checkpoint.get("config", {}).get("model", {})
    return [m for m in Modality if stored.get(m.value) is not None]


def _is_single_modality_fuser(model: nn.Module, checkpoint: dict, wanted: list[str]) -> bool:
    """True when the fuser must be widened: the source fuses one modality, this model more."""
    state = checkpoint["model"]
    own = model.state_dict()
    same = all(k in state and state[k].shape == own[k].shape for k in wanted)
    return (not same and hasattr(model.fuser, "load_single_modality")
            and len(_source_modalities(checkpoint)) == 1)


def _single_fuser_source(model: nn.Module, checkpoint: dict, path: str
                         ) -> tuple[Modality, dict[str, torch.Tensor]]:
    (modality,) = _source_modalities(checkpoint)
    if modality not in model.fuser.modalities:
        raise ConfigError(f"train.init_from: {path} fuses {modality.value}, which this "
                          f"model's fuser does not take")
    sub = {k[len("fuser."):]: v for k, v in checkpoint["model"].items()
           if k.startswith("fuser.")}
    return modality, sub
