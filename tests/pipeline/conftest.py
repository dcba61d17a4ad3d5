"""Fixtures of the pipeline tests: seeding and one thread, as the detector tests."""

from ..models._helpers import _one_thread, _seeded  # noqa: F401  (pytest fixtures)
