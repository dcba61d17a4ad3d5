"""JPEG/PNG decoding of compressed camera images (Pillow), kept out of the data contracts so
that :mod:`perception.types` stays a module of plain validated containers."""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

from .errors import DataError


def decode_image(data: bytes, source: str = "image",
                 check_size: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Decode JPEG or PNG bytes to (H, W, 3) uint8 RGB.

    Args:
        check_size: called with the ``(width, height)`` the header claims, before any pixel is
            decoded; it raises to refuse the image (so a header that claims a huge image costs
            nothing).

    Raises:
        DataError: the bytes are not a decodable JPEG/PNG, or claim more pixels than Pillow's
            decompression-bomb limit; names ``source``.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            if check_size is not None:
                check_size(*img.size)
            return np.asarray(img.convert("RGB"))
    except Image.DecompressionBombError as exc:
        raise DataError(f"image refused: {exc}", source=source) from None
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise DataError(f"cannot decode image bytes: {exc}", source=source) from None
