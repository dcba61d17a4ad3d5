"""Initialise parts of a detector from other checkpoints (staged fusion training).

BEVFusion-style recipe: train each single-modality detector, then start the fused detector
from their encoders (and the lidar model's BEV backbone and head) and fine-tune. Parts are
named by the detector's top-level modules (``lidar``, ``camera``, ``radar``, ``painter``,
``fuser``, ``backbone``, ``head``); every tensor of a named part must exist in the source
checkpoint with the same shape, otherwise nothing is loaded and a :class:`ConfigError` says
which tensor disagrees. Tensors a module names in ``FRESH_PREFIXES`` (additions that start at
zero, such as the camera's lidar depth prior) may be missing from the source and keep their
initialisation. One exception: ``fuser`` taken from a single-modality checkpoint into
a multi-modality concat fuser is widened by
:meth:`~perception.models.fuser.ConcatFuser.load_single_modality` (the other modalities'
input weights start at zero, so the fused model starts as the single-modality one).
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..models.checkpoint import load_checkpoint_file
from ..types import Modality
from .config import PretrainedSource


def load_pretrained(model: nn.Module, sources: tuple[PretrainedSource, ...] | list,
                    device: torch.device | str = "cpu") -> dict[str, int]:
    """Copy the named modules' tensors from each source into ``model``.

    Returns ``{"<checkpoint>:<module>": tensors copied}``. Nothing is copied unless every
    source agrees with the model.
    """
    own = model.state_dict()
    copies: dict[str, torch.Tensor] = {}
    widenings: list[tuple[str, Modality, dict[str, torch.Tensor]]] = []
    report: dict[str, int] = {}
    claimed: set[str] = set()
    for source in sources:
        checkpoint = load_checkpoint_file(source.checkpoint, device)
        prefix = source.into + "." if source.into else ""
        for module in source.modules:
            target = prefix + module
            if target in claimed:
                raise ConfigError(f"train.init_from: {target} is named by two sources")
            claimed.add(target)
            wanted = [k for k in own if k.startswith(target + ".")]
            if not wanted:
                raise ConfigError(f"train.init_from: the model has no module {target!r} "
                                  f"(it has {sorted({k.split('.')[0] for k in own})})")
            key = f"{Path(source.checkpoint).name}:{target}"
            widening = (None if prefix else
                        _widening(model, module, own, wanted, checkpoint, source.checkpoint))
            if widening is not None:
                widenings.append(widening)
                report[key] = len(widening[2])
                continue
            fresh = tuple(target + "." + p for p in
                          getattr(model.get_submodule(target), "FRESH_PREFIXES", ()))
            wanted = [k for k in wanted
                      if not (k.startswith(fresh) and k[len(prefix):] not in checkpoint["model"])]
            found = _same_tensors(own, [k[len(prefix):] for k in wanted], checkpoint["model"],
                                  module, source.checkpoint, prefix)
            copies.update({prefix + k: v for k, v in found.items()})
            report[key] = len(wanted)
    for module, modality, state in widenings:
        # Dry run on a copy first: nothing is loaded unless every source fits.
        try:
            copy.deepcopy(getattr(model, module)).load_single_modality(modality, state)
        except (KeyError, ValueError) as exc:
            raise ConfigError(f"train.init_from: {module}: {exc}") from None
    model.load_state_dict(copies, strict=False)
    for module, modality, state in widenings:
        getattr(model, module).load_single_modality(modality, state)
    return report


def _same_tensors(own: dict[str, torch.Tensor], wanted: list[str],
                  state: dict[str, torch.Tensor], module: str, path: str, prefix: str = ""
                  ) -> dict[str, torch.Tensor]:
    """The source's tensors for ``wanted`` (source names; the model's are ``prefix + name``);
    every one must exist with the model's shape."""
    out = {}
    for key in wanted:
        if key not in state:
            raise ConfigError(f"train.init_from: {path} has no tensor {key!r}; was it "
                              f"trained with the same {module} config?")
        if tuple(state[key].shape) != tuple(own[prefix + key].shape):
            raise ConfigError(f"train.init_from: {key} is {tuple(state[key].shape)} in {path} "
                              f"but {tuple(own[prefix + key].shape)} in the model")
        out[key] = state[key]
    return out


def _widening(model: nn.Module, module: str, own: dict[str, torch.Tensor],
              wanted: list[str], checkpoint: dict, path: str
              ) -> tuple[str, Modality, dict[str, torch.Tensor]] | None:
    """``(module, modality, its source tensors)`` when ``module`` must be widened from a
    single-modality source (it can, and the shapes differ); None for a plain copy."""
    state = checkpoint["model"]
    target = getattr(model, module)
    stored = checkpoint.get("config", {}).get("model", {})
    source_modalities = [m for m in Modality if stored.get(m.value) is not None]
    same = all(k in state and state[k].shape == own[k].shape for k in wanted)
    if same or not hasattr(target, "load_single_modality") or len(source_modalities) != 1:
        return None
    (modality,) = source_modalities
    if modality not in target.modalities:
        raise ConfigError(f"train.init_from: {path} fuses {modality.value}, which this "
                          f"model's {module} does not take")
    prefix = module + "."
    relative = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
    if hasattr(target, "can_widen") and not target.can_widen(relative):
        return None  # not a widening: the plain copy names the tensor that differs
    return module, modality, relative
