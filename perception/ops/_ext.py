"""Loading of the compiled extension ``perception._C``, with a once-only warning on fallback.

When the extension is missing (built with ``PERCEPTION_SKIP_EXT=1`` or the build failed), the
ops run their pure-PyTorch references; :func:`extension_status` says which, and
``perception info`` prints it.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from types import ModuleType

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def load_extension() -> ModuleType | None:
    """The compiled ``perception._C`` module, or None (warned once)."""
    try:
        from perception import _C  # type: ignore[attr-defined]
    except ImportError as exc:
        log.warning("perception._C is not available (%s); ops use the PyTorch reference "
                    "implementations. Run `make setup` to build it.", exc)
        return None
    return _C


def extension_status() -> dict[str, object]:
    """How the ops are built: ``{"compiled": bool, "cuda": bool, "openmp": bool, ...}``."""
    ext = load_extension()
    if ext is None:
        return {"compiled": False, "cuda": False, "openmp": False, "backend": "pytorch-reference"}
    info = dict(ext.build_info())
    info["compiled"] = True
    info["backend"] = "cpp+cuda" if info.get("cuda") else "cpp"
    return info
