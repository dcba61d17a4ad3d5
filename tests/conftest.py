"""Shared pytest fixtures.

Real sensor data is read from ``$PERCEPTION_TEST_DATA`` or ``../shared/data``; tests that need
it skip with the reason when it is absent, and never fail for that.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perception import fixtures


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real-data fixtures; skips the test when absent."""
    root = fixtures.data_root()
    if root is None:
        pytest.skip(f"real-data fixtures not found: set ${fixtures.ENV_VAR} or provide "
                    f"../shared/data next to the repository")
    return root


@pytest.fixture(scope="session")
def fixture_file():
    """``fixture_file(key)`` -> Path of a known fixture, skipping the test when it is absent."""

    def get(key: str) -> Path:
        path = fixtures.fixture_path(key)
        if path is None:
            pytest.skip(f"fixture {key!r} not found under ${fixtures.ENV_VAR} or ../shared/data")
        return path

    return get
