"""A restricted unpickler for info files (mmdet3d ``.pkl``): plain containers and NumPy only.

``pickle`` can run any callable named in the file, so an untrusted ``.pkl`` is code. This
unpickler resolves only an allowlist of globals: harmless builtins (containers, numbers,
strings), what NumPy needs to rebuild arrays, dtypes and scalars, and ``_codecs.encode``
limited to latin-1 (protocol-2 pickles rebuild ``bytes`` with it). Anything else (``os``,
``subprocess``, ``builtins.eval``, arbitrary classes) raises :class:`DataError` naming the file
and the refused global, before anything is called.
"""

from __future__ import annotations

import codecs
import io
import os
import pickle
from typing import Any

import numpy as np

from ..errors import DataError

_SAFE_BUILTINS = frozenset({
    "dict", "list", "tuple", "set", "frozenset", "bytearray", "bytes", "str", "int", "float",
    "complex", "bool", "slice", "range",
})


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles use it for bytes, limited to latin-1."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r} refused")
    return codecs.encode(text, "latin1")


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The NumPy callables that array, dtype and scalar pickles name (NumPy 1.x and 2.x)."""
    reconstruct, _ = np.ndarray.__reduce__(np.zeros(1))[:2]     # numpy's own _reconstruct
    scalar = np.float64(0).__reduce__()[0]                      # numpy's own scalar
    frombuffer = np.zeros(1).__reduce_ex__(5)[0]                # protocol 5: _frombuffer
    allowed = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for module in ("numpy.core.numeric", "numpy._core.numeric"):
        allowed[(module, "_frombuffer")] = frombuffer
    # dtype classes pickled by NumPy >= 1.25, e.g. numpy.dtypes.Float64DType.
    for name in dir(np.dtypes):
        if name.endswith("DType"):
            allowed[("numpy.dtypes", name)] = getattr(np.dtypes, name)
    return allowed


_NUMPY_GLOBALS = _numpy_globals()


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allowlisted builtins and NumPy array machinery."""

    source = "pickle"

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in _SAFE_BUILTINS:
            return getattr(__import__("builtins"), name)
        if (module, name) == ("_codecs", "encode"):
            return _latin1_encode
        if (module, name) in _NUMPY_GLOBALS:
            return _NUMPY_GLOBALS[(module, name)]
        raise DataError(f"refusing to unpickle global {module}.{name} (only builtins and "
                        f"NumPy arrays are allowed)", source=self.source)


def loads_restricted(data: bytes, source: str = "pickle") -> Any:
    """Unpickle ``data`` with :class:`RestrictedUnpickler`."""
    unpickler = RestrictedUnpickler(io.BytesIO(data))
    unpickler.source = source
    try:
        return unpickler.load()
    except DataError:
        raise
    except Exception as exc:  # a damaged pickle fails in many ways; report them as one type
        raise DataError(f"cannot unpickle: {type(exc).__name__}: {exc}", source=source) from None


def load_file(path: str | os.PathLike) -> Any:
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler`."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise DataError(f"cannot read: {exc.strerror or exc}", source=str(path)) from None
    return loads_restricted(data, source=str(path))
