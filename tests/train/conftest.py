"""Fixtures of the detector tests: a few ``tiny`` simulator frames, seeding, one thread."""

from ..models._helpers import _one_thread, _seeded, tiny_frames  # noqa: F401  (pytest fixtures)
