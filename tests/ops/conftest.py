"""Fixtures of the ops tests."""

from __future__ import annotations

import pytest

from . import _helpers


@pytest.fixture(scope="session")
def mmcv(tmp_path_factory):
    """mmcv's compiled ops, a peer for hard voxelization; skips when the wheel is absent."""
    ext = _helpers.mmcv_ext(tmp_path_factory.mktemp("mmcv"))
    if ext is None:
        pytest.skip("mmcv wheel not found in ../shared/wheels (or not loadable with this torch)")
    return ext
