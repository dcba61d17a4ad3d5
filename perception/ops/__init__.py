"""Custom ops (C++ on the CPU, CUDA on the GPU) behind one Python function each."""

from ._ext import extension_status, load_extension

__all__ = ["extension_status", "load_extension"]
