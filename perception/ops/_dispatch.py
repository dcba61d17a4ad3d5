"""Choice of implementation per call: the registered operator (compiled CPU or CUDA kernel,
:mod:`perception.ops._library`), else the PyTorch reference."""

from __future__ import annotations

import torch

from . import _ext, _library


def compiled(device: torch.device) -> bool:
    """True when ``torch.ops.perception.*`` has kernels for ``device``; False means the
    public functions run their PyTorch reference (extension not built, warned once)."""
    if _ext.load_extension() is None:
        return False
    return _library.has_kernel(device)
