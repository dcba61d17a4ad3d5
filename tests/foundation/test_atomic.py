"""Atomic file writes: the old file or the finished new one, never half of one."""

from __future__ import annotations

import pytest

from perception.atomic import atomic_path, write_text_atomic


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    write_text_atomic(path, '{"new": 1}')
    assert path.read_text() == '{"new": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(path) as tmp:
            tmp.write_text("half of the ne")
            raise RuntimeError("disk full")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_the_temporary_keeps_the_suffix_for_writers_that_choose_a_format_by_it(tmp_path):
    with atomic_path(tmp_path / "pr_VEHICLE.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path
        tmp.write_bytes(b"png")
    assert (tmp_path / "pr_VEHICLE.png").read_bytes() == b"png"

