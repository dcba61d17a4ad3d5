"""Fuzzing YAML configs through :mod:`perception.config`.

Targets:

- ``config_values``: a shipped experiment, simulator or tracker config (its ``base:`` merged)
  with 1-3 values replaced by any YAML value, or keys deleted -> the schema's loader (the
  simulator's also runs its cross-checks);
- ``config_text``: a shipped config's text mutated at the byte level, plus hostile YAML
  (tags, aliases that expand into billions of values, deep nesting, invalid UTF-8, ``base:``
  paths that are not files).
"""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from perception.config import config_dir, load_yaml_with_base
from perception.data.sim.presets import load_sim_config
from perception.errors import ConfigError
from perception.tracking.config import load_tracker_config
from perception.train.config import load_experiment

from ._fuzz import contract, fuzz_settings, seeded
from ._strategies import json_values, mutated_bytes, mutated_tree

_CONFIGS = {
    "experiment": ("models/sim_cpu_camera_lidar_radar.yaml", load_experiment),
    "experiment_waymo": ("models/waymo_lidar.yaml", load_experiment),
    "simulator": ("sim/tiny.yaml", load_sim_config),
    "tracker": ("tracking/sim.yaml", load_tracker_config),
}
_MERGED = {name: load_yaml_with_base(config_dir() / rel) for name, (rel, _) in _CONFIGS.items()}
_TEXTS = {name: (config_dir() / rel).read_bytes() for name, (rel, _) in _CONFIGS.items()
          if "base:" not in (config_dir() / rel).read_text()}

_HOSTILE_YAML = [
    b"model: !!python/object/apply:os.system ['echo owned']\n",
    b"a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
    b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c]\n"
    b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e]\n",
    b"model: " + b"[" * 5000 + b"]" * 5000 + b"\n",
    b"model: {" + b"a: {" * 3000 + b"}" * 3001 + b"\n",
    b"\xff\xfe model: 1\n",
    b"base: /dev/null\n", b"base: .\n", b"base: ''\n", b"base: [1]\n", b"base: \"a\\0b\"\n",
    b"? [1, 2]\n: 3\n", b"--- 1\n--- 2\n", b"model: *undefined\n", b"\t- x\n",
]


@st.composite
def mutated_configs(draw):
    name = draw(st.sampled_from(sorted(_CONFIGS)))
    values = st.one_of(json_values(), st.sampled_from(["", "\0", "../../etc/passwd",
                                                       "~", -1, 0, 1e309, True, None]))
    return name, draw(mutated_tree(_MERGED[name], values))


def _load(tmp_dir, name: str, text: bytes):
    path = tmp_dir / f"{name}.yaml"
    path.write_bytes(text)
    return _CONFIGS[name][1](path)


@seeded
@fuzz_settings(ci_examples=100)
@given(config=mutated_configs())
def test_fuzz_config_values(tmp_path_factory, config):
    name, data = config
    text = yaml.safe_dump(data, allow_unicode=True).encode("utf-8", "surrogatepass")
    contract("config_values", _load, tmp_path_factory.getbasetemp(), name, text)


@seeded
@fuzz_settings(ci_examples=100)
@given(name=st.sampled_from(sorted(_TEXTS)), data=st.data())
def test_fuzz_config_text(tmp_path_factory, name, data):
    text = data.draw(st.one_of(mutated_bytes(_TEXTS[name]), st.sampled_from(_HOSTILE_YAML)))
    contract("config_text", _load, tmp_path_factory.getbasetemp(), name, text)


# Crashing inputs found by the targets above, kept as regression tests.

@pytest.mark.parametrize("text, match", [
    (_HOSTILE_YAML[1], "aliases are expanded"),
    (_HOSTILE_YAML[2], "nested too deeply|invalid YAML"),
    (_HOSTILE_YAML[4], "not a UTF-8 text file"),
    (b"base: \"a\\0b\"\n", "base: expected a file path string"),
])
def test_hostile_yaml_is_a_config_error(tmp_path, text, match):
    with pytest.raises(ConfigError, match=match):
        _load(tmp_path, "tracker", text)


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan", "1.0e+400"])
def test_non_finite_float_is_a_config_error(tmp_path, value):
    """``arm_length_m: .inf`` passed the range checks and failed deep in the simulator
    (``cannot convert float NaN to integer``)."""
    text = _TEXTS["simulator"].replace(b"arm_length_m: 80.0", f"arm_length_m: {value}".encode())
    assert text != _TEXTS["simulator"]
    with pytest.raises(ConfigError, match="arm_length_m: expected a finite float"):
        _load(tmp_path, "simulator", text)
