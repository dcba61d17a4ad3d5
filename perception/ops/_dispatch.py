"""Choice of implementation per call: the compiled CPU or CUDA kernel, else the reference."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch

from . import _ext


def _on_device(fn: Callable, device: torch.device) -> Callable:
    """Call a CUDA binding on ``device`` (made current) with its current stream appended."""

    @functools.wraps(fn)
    def call(*args):
        with torch.cuda.device(device):
            return fn(*args, int(torch.cuda.current_stream(device).cuda_stream))

    return call


def kernel(name: str, device: torch.device) -> tuple[Callable | None, tuple]:
    """The compiled ``{name}_cpu`` / ``{name}_cuda`` function for ``device``, or None when the
    extension (or that kernel) is not built; plus extra trailing arguments (none today: the
    CUDA stream is appended by the wrapper at call time)."""
    ext = _ext.load_extension()
    if ext is None:
        return None, ()
    if device.type == "cpu":
        return getattr(ext, f"{name}_cpu", None), ()
    if device.type == "cuda":
        fn = getattr(ext, f"{name}_cuda", None)
        return (None if fn is None else _on_device(fn, device)), ()
    return None, ()
