"""JPEG/PNG decoding of compressed camera images (Pillow), kept out of the data contracts so
that :mod:`perception.types` stays a module of plain validated containers."""

from __future__ import annotations

import io

import numpy as np

from .errors import DataError


def decode_image(data: bytes, source: str = "image") -> np.ndarray:
    """Decode JPEG or PNG bytes to (H, W, 3) uint8 RGB.

    Raises:
        DataError: the bytes are not a decodable JPEG/PNG; names ``source``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"cannot decode image bytes: {exc}", source=source) from None
