"""Reliability suite: fuzzing of every input parser, faults, soak, security hygiene.

CI runs the short form (fixed seeds, a few hundred inputs per target); ``make reliability``
runs the full form (``PERCEPTION_FUZZ_EXAMPLES=10000``, ``PERCEPTION_SOAK_FRAMES=10000``) and
writes the per-target counts to ``outputs/reliability/fuzz.json``. See docs/reliability.md.
"""

from __future__ import annotations

import pytest

from . import _fuzz


@pytest.fixture(scope="session", autouse=True)
def _fuzz_report():
    yield
    _fuzz.write_report()
