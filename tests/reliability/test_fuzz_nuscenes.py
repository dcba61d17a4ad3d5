"""Fuzzing the nuScenes inputs: devkit JSON tables and mmdet3d info pickles.

Targets:

- ``nuscenes_tables``: a valid one-sample devkit release whose tables get a value replaced
  by any JSON value (NaN and infinities included), a key deleted, or a row dropped, ->
  :class:`NuScenesDevkit` and every sample read;
- ``nuscenes_table_bytes``: a table file's bytes mutated (broken JSON, invalid UTF-8);
- ``safe_pickle``: arbitrary and mutated pickle bytes -> the restricted unpickler;
- ``nuscenes_info``: a valid mmdet3d info dict with values replaced -> pickled ->
  :class:`NuScenesInfoReader` and every entry read.
"""

from __future__ import annotations

import copy
import json
import pickle

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from perception.data import nuscenes, safe_pickle

from . import _builders
from ._fuzz import contract, fuzz_settings, seeded
from ._strategies import json_values, mutated_bytes, mutated_tree

_TABLES = _builders.devkit_tables()


def _read_devkit(root):
    reader = nuscenes.NuScenesDevkit(root, "v1.0-mini", sweeps=1)
    for i in range(len(reader)):
        reader[i]
    return reader


@seeded
@fuzz_settings()
@given(tables=mutated_tree(_TABLES))
def test_fuzz_nuscenes_tables(tmp_path_factory, tables):
    root = tmp_path_factory.mktemp("devkit")
    _builders.write_devkit(root, tables)
    contract("nuscenes_tables", _read_devkit, root)


@seeded
@fuzz_settings()
@given(name=st.sampled_from(sorted(_TABLES)), data=st.data())
def test_fuzz_nuscenes_table_bytes(tmp_path_factory, name, data):
    root = tmp_path_factory.mktemp("devkit")
    _builders.write_devkit(root, _TABLES)
    path = root / "v1.0-mini" / f"{name}.json"
    path.write_bytes(data.draw(mutated_bytes(path.read_bytes())))
    contract("nuscenes_table_bytes", _read_devkit, root)


_INFO = {
    "metainfo": {"categories": {name: i for i, name in enumerate(nuscenes.MMDET3D_CLASSES)}},
    "data_list": [{
        "token": "t0", "timestamp": 1532402927.6,
        "lidar_points": {"lidar_path": "lidar.bin", "lidar2ego": np.eye(4).tolist()},
        "ego2global": np.eye(4).tolist(), "images": {},
        "instances": [{"bbox_3d": [5.0, 1.0, 0.0, 4.0, 2.0, 1.5, 0.2], "bbox_label_3d": 0,
                       "velocity": [1.0, 0.0], "num_lidar_pts": 12}]}],
}


@seeded
@fuzz_settings()
@given(info=mutated_tree(_INFO, st.one_of(json_values(), st.builds(
    lambda shape: np.full(shape, np.nan), st.lists(st.integers(0, 5), max_size=3)))),
    protocol=st.sampled_from([2, 4, 5]))
def test_fuzz_nuscenes_info(tmp_path_factory, info, protocol):
    root = tmp_path_factory.mktemp("info")
    np.zeros((10, 5), np.float32).tofile(root / "lidar.bin")
    (root / "info.pkl").write_bytes(pickle.dumps(info, protocol=protocol))

    def read():
        reader = nuscenes.NuScenesInfoReader(root / "info.pkl", skip_missing_cameras=True)
        for i in range(len(reader)):
            reader[i]

    contract("nuscenes_info", read)


_PICKLE = pickle.dumps(_INFO, protocol=2) + pickle.dumps({"a": np.arange(4.0)}, protocol=5)


@seeded
@fuzz_settings()
@given(blob=st.one_of(mutated_bytes(_PICKLE), st.binary(max_size=64)))
def test_fuzz_safe_pickle(blob):
    contract("safe_pickle", safe_pickle.loads_restricted, blob, "fuzz.pkl")


# Crashing inputs found by the targets above, kept as regression tests.

def test_table_that_is_not_a_list_of_rows_is_a_data_error(tmp_path):
    import pytest

    from perception.errors import DataError

    tables = copy.deepcopy(_TABLES)
    tables["sample"] = {"token": "x"}
    _builders.write_devkit(tmp_path, tables)
    with pytest.raises(DataError, match="sample.json.*list of objects"):
        nuscenes.NuScenesDevkit(tmp_path, "v1.0-mini")


def test_row_without_token_is_a_data_error(tmp_path):
    import pytest

    from perception.errors import DataError

    tables = copy.deepcopy(_TABLES)
    del tables["ego_pose"][0]["token"]
    _builders.write_devkit(tmp_path, tables)
    with pytest.raises(DataError, match="malformed nuScenes tables: KeyError"):
        nuscenes.NuScenesDevkit(tmp_path, "v1.0-mini")


def test_annotation_with_a_short_size_is_a_data_error(tmp_path):
    import pytest

    from perception.errors import DataError

    tables = copy.deepcopy(_TABLES)
    tables["sample_annotation"][0]["size"] = [1.0]
    _builders.write_devkit(tmp_path, tables)
    reader = nuscenes.NuScenesDevkit(tmp_path, "v1.0-mini")
    with pytest.raises(DataError, match=r"\[record 0\]: malformed sample 'smp0': ValueError"):
        reader[0]


def test_info_with_metainfo_of_the_wrong_type_is_a_data_error(tmp_path):
    import pytest

    from perception.errors import DataError

    info = dict(_INFO, metainfo=[1, 2])
    (tmp_path / "info.pkl").write_bytes(pickle.dumps(info))
    with pytest.raises(DataError, match="malformed metainfo"):
        nuscenes.NuScenesInfoReader(tmp_path / "info.pkl")


def test_devkit_builder_is_valid(tmp_path):
    _builders.write_devkit(tmp_path, _TABLES)
    frame = _read_devkit(tmp_path)[1]
    assert len(frame.boxes) == 1 and len(frame.lidar) == 40
    assert json.loads((tmp_path / "v1.0-mini" / "sample.json").read_text())[0]["token"]


def test_info_with_an_infinite_label_is_a_data_error(tmp_path):
    """``categories: {"car": inf}``: ``int(inf)`` raised OverflowError (found by the
    full-mode run)."""
    import pytest

    from perception.errors import DataError

    info = dict(_INFO, metainfo={"categories": {"car": float("inf")}})
    (tmp_path / "info.pkl").write_bytes(pickle.dumps(info))
    with pytest.raises(DataError, match="malformed metainfo: OverflowError"):
        nuscenes.NuScenesInfoReader(tmp_path / "info.pkl")


def test_table_naming_a_missing_data_file_is_a_data_error(tmp_path):
    """A sample_data ``filename`` that names no file raised FileNotFoundError from
    ``np.fromfile``; a token of 2**31 raised OverflowError (both found by the full-mode run)."""
    import pytest

    from perception.errors import DataError

    tables = copy.deepcopy(_TABLES)
    tables["sample_data"][0]["filename"] = "ramples/LIDAR_TOP/sweep0.pcd.bin"
    _builders.write_devkit(tmp_path, tables)
    with pytest.raises(DataError, match="ramples/LIDAR_TOP/sweep0.pcd.bin: cannot read"):
        _read_devkit(tmp_path)
    tables = copy.deepcopy(_TABLES)
    tables["sample_annotation"][0]["num_lidar_pts"] = 2**31
    _builders.write_devkit(tmp_path, tables)
    with pytest.raises(DataError, match="OverflowError"):
        _read_devkit(tmp_path)
