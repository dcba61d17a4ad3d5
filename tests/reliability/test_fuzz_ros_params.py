"""Fuzzing the ROS parameter files of the nodes (``ros_nodes/config/*.param.yaml``) and their
launch-argument overrides, against the schemas of :mod:`ros_nodes.params` (which imports no
ROS, so this runs without it).

Targets:

- ``ros_param_values``: a shipped parameter file with 1-3 values replaced by any YAML value
  (NaN, infinities, huge numbers, mixed lists, nested mappings, strings with NUL), or keys
  deleted -> :func:`ros_nodes.params.load_param_file` with the node's schema;
- ``ros_param_text``: a shipped parameter file's text mutated at the byte level, plus hostile
  YAML (alias bombs, deep nesting, tags, invalid UTF-8, other node names);
- ``ros_launch_overrides``: the ``launch_overrides`` string (``name:=value ...``) with mutated
  names and values -> parsed and validated as a node validates it.

Contract: a valid file gives the node's parameters; anything else is a ConfigError naming the
file (or parameter), never another exception.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from perception.config import from_dict
from perception.errors import ConfigError
from ros_nodes.params import (
    DetectorNodeParams,
    SimNodeParams,
    SyncNodeParams,
    TrackerNodeParams,
    load_param_file,
    parse_launch_overrides,
)

from ._fuzz import contract, fuzz_settings, seeded
from ._strategies import json_values, mutated_bytes, mutated_tree

CONFIG = Path(__file__).resolve().parents[2] / "ros_nodes" / "config"
SCHEMAS = {"sim": SimNodeParams, "sync": SyncNodeParams, "detector": DetectorNodeParams,
           "tracker": TrackerNodeParams}
_TEXTS = {name: (CONFIG / f"{name}.param.yaml").read_bytes() for name in SCHEMAS}
_DATA = {name: yaml.safe_load(text) for name, text in _TEXTS.items()}

_HOSTILE_YAML = [
    b"/**:\n  ros__parameters:\n    qos_depth: !!python/object/apply:os.system ['echo x']\n",
    b"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
    b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]\n",
    b"/**:\n  ros__parameters:\n    camera_names: " + b"[" * 2000 + b"]" * 2000 + b"\n",
    b"/**:\n  ros__parameters:\n    " + b"a: {" * 3000 + b"}" * 3000 + b"\n",
    b"\xff\xfe/**:\n  ros__parameters: {}\n",
    b"/**:\n  ros__parameters:\n    timeout_s: .nan\n",
    b"/**:\n  ros__parameters:\n    qos_depth: 1e400\n",
    b"/**:\n  ros__parameters:\n    camera_names: [A, 1, true]\n",
    b"/**:\n  ros__parameters:\n    camera_names: [[A]]\n",
    b"/**:\n  ros__parameters:\n    timeout_s:\n",
    b"/**:\n  ros__parameters:\n    timeout_s: {}\n",
    b"/**:\n  ros__parameters:\n    a.b: 1\n    a: 2\n",
    b"/**:\n  ros__parameters: [1, 2]\n",
    b"/**:\n  params: {timeout_s: 0.1}\n",
    b"/other_node:\n  ros__parameters:\n    nonsense: 1\n",
    b"? [1, 2]\n: {ros__parameters: {}}\n",
    b"--- 1\n--- 2\n", b"/**: *undefined\n", b"\t- x\n", b"", b"~\n", b"[]\n",
]


def _load(tmp_dir: Path, name: str, text: bytes):
    path = tmp_dir / f"{name}.param.yaml"
    path.write_bytes(text)
    return load_param_file(path, SCHEMAS[name], name)


@st.composite
def mutated_param_files(draw):
    name = draw(st.sampled_from(sorted(SCHEMAS)))
    values = st.one_of(json_values(), st.sampled_from(
        ["", "\0", "cuda:99", "fp16", "compressed", "../../etc/passwd", -1, 0, 2**63, 1e309,
         float("nan"), True, None, [], [1, "a"], [[1]], {"a": 1}]))
    return name, draw(mutated_tree(_DATA[name], values))


@seeded
@fuzz_settings()
@given(param_file=mutated_param_files())
def test_fuzz_ros_param_values(tmp_path_factory, param_file):
    name, data = param_file
    text = yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass")
    contract("ros_param_values", _load, tmp_path_factory.getbasetemp(), name, text)


@seeded
@fuzz_settings()
@given(name=st.sampled_from(sorted(SCHEMAS)), data=st.data())
def test_fuzz_ros_param_text(tmp_path_factory, name, data):
    text = data.draw(st.one_of(mutated_bytes(_TEXTS[name]), st.sampled_from(_HOSTILE_YAML)))
    contract("ros_param_text", _load, tmp_path_factory.getbasetemp(), name, text)


def _validate_overrides(name: str, text: str):
    """What a node does with its ``launch_overrides`` over its parameter file's values."""
    values = dict(_DATA[name]["/**"]["ros__parameters"])
    values.update(parse_launch_overrides(text))
    return from_dict(SCHEMAS[name], values, source=f"node {name} parameters")


_OVERRIDE_ITEMS = st.one_of(
    st.builds(lambda k, v: f"{k}:={v}",
              st.sampled_from(["timeout_s", "image_transport", "camera_names", "radar_names",
                               "qos_depth", "device", "preset", "input_topics", "a.b", "x",
                               "rate_factor", "can_spawn_tracks"]),
              st.one_of(st.sampled_from(["", "0.5", "-1", "1e999", ".nan", "[A, B]", "[]",
                                         "[[1]]", "{a: 1}", "true", "cuda:1", "compressed",
                                         "'", "[", "!!python/name:os.system", "\0"]),
                        st.text(max_size=10))),
    st.text(max_size=16))


@seeded
@fuzz_settings()
@given(name=st.sampled_from(sorted(SCHEMAS)), items=st.lists(_OVERRIDE_ITEMS, max_size=4),
       separator=st.sampled_from([" ", "  ", "\t", "\n", ""]))
def test_fuzz_ros_launch_overrides(name, items, separator):
    contract("ros_launch_overrides", _validate_overrides, name, separator.join(items))


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_shipped_param_files_load(name):
    params = load_param_file(CONFIG / f"{name}.param.yaml", SCHEMAS[name], name)
    assert params == SCHEMAS[name]()


def test_param_file_errors_name_the_file_and_parameter(tmp_path):
    bad = {b"/**:\n  ros__parameters:\n    camera_names: [A, 1, true]\n":
           "camera_names: the values of a list must be of one type",
           b"/**:\n  ros__parameters:\n    timeout_s: .nan\n": "timeout_s",
           b"/**:\n  params: {timeout_s: 0.1}\n": "expected a mapping with one key",
           b"/sync:\n  ros__parameters:\n    nonsense: 1\n": "nonsense: unknown key"}
    for text, message in bad.items():
        path = tmp_path / "sync.param.yaml"
        path.write_bytes(text)
        with pytest.raises(ConfigError, match=f"sync.param.yaml.*{message}"):
            load_param_file(path, SyncNodeParams, "sync")
    path.write_bytes(b"/other:\n  ros__parameters:\n    nonsense: 1\n")
    assert load_param_file(path, SyncNodeParams, "sync") == SyncNodeParams()
