"""Exception types raised by the package.

Every error the package raises on bad input derives from :class:`PerceptionError`, so a node
or a conversion job can catch one type, log it, count it and go on. The subclasses say which
stage refused the input; their messages name the field, file, record or topic concerned.
"""

from __future__ import annotations


class PerceptionError(Exception):
    """Base class of every error raised by the package on bad input or bad state."""


class ValidationError(PerceptionError, ValueError):
    """A data-contract value (array shape, dtype, finiteness, stamp) is wrong.

    The message starts with the qualified field name, e.g. ``Boxes3D.boxes: ...``.
    """


class ConfigError(PerceptionError, ValueError):
    """A YAML config is invalid: unknown key, wrong type, out-of-range value, bad ``base:``.

    The message names the file and the key path.
    """


class CalibrationError(PerceptionError, ValueError):
    """A calibration is missing, singular or inconsistent with the data it describes."""


class DataError(PerceptionError):
    """A data file or record is corrupt or unsupported (CRC mismatch, bad zlib, bad PCD header).

    Attributes:
        source: file path or topic the bad item came from, if known.
        index: record index within ``source``, if known.
    """

    def __init__(self, message: str, *, source: str | None = None, index: int | None = None):
        where = ""
        if source is not None:
            where = f"{source}"
            if index is not None:
                where += f" [record {index}]"
            where += ": "
        super().__init__(where + message)
        self.source = source
        self.index = index


class ConversionError(PerceptionError, ValueError):
    """A message (e.g. a ROS message) cannot be converted to or from the typed data model."""


class TimestampError(PerceptionError, ValueError):
    """Stamps are out of order, repeated where they must increase, or of the wrong type."""


class OpsError(PerceptionError, ValueError):
    """A custom op got arguments it cannot handle (shape, dtype, range, grid size)."""
