"""Checkpoint files: fuzzing, the never-unpickle rule, and the messages a new user sees.

Target ``checkpoint``: files given to :func:`read_detector`: random bytes, a valid weights
file mutated at the byte level (the zip container and the pickle inside it), truncated at
any point, and well-formed files holding hostile contents (wrong format tag, non-tensor
values, tensors of wrong shapes, a model config of another or of a huge network, bad
``data`` counts).
"""

from __future__ import annotations

import ast
import io
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from perception.config import to_dict
from perception.errors import ConfigError, DataError
from perception.models.checkpoint import (
    WEIGHTS_FORMAT,
    load_checkpoint_file,
    read_detector,
    save_weights,
)
from perception.models.detector import build_detector
from perception.train.config import load_experiment

from ._fuzz import contract, fuzz_settings, seeded
from ._strategies import json_values, mutated_bytes, mutated_tree

REPO = Path(__file__).resolve().parents[2]
_CONFIG = load_experiment(REPO / "configs/models/sim_cpu_lidar.yaml").model
_MODEL = build_detector(_CONFIG)


def _weights_bytes(tmp: Path) -> bytes:
    path = save_weights(tmp / "w.pt", _MODEL, _CONFIG)
    return path.read_bytes()


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> bytes:
    return _weights_bytes(tmp_path_factory.mktemp("weights"))


def _state(model_tensors, model_config, data) -> dict:
    return {"format": WEIGHTS_FORMAT, "model": model_tensors,
            "config": {"model": model_config, "data": data}}


@st.composite
def hostile_states(draw):
    tensors = {k: v.half() for k, v in _MODEL.state_dict().items()}
    kind = draw(st.sampled_from(["tensors", "config", "data", "format"]))
    config = to_dict(_CONFIG)
    data = {"lidar_sweeps": 1, "radar_scans": 1}
    if kind == "tensors":
        name = draw(st.sampled_from(sorted(tensors)))
        tensors[name] = draw(st.sampled_from([
            torch.zeros(0), torch.zeros(3, 1), torch.full((2,), float("nan")), "x", 1.5,
            None, [1, 2], torch.zeros(1, dtype=torch.int8)]))
        if draw(st.booleans()):
            tensors[draw(st.text(max_size=8))] = torch.zeros(1)
    elif kind == "config":
        config = draw(mutated_tree(config, st.one_of(json_values(), st.sampled_from(
            [4096, 10**6, 2**31, 0, -1, [1e6, 1e6], "gated", "sparse"]))))
    elif kind == "data":
        data = draw(st.one_of(json_values(), mutated_tree(data)))
    else:
        return {"format": draw(st.one_of(st.text(max_size=8), st.sampled_from([None, 1]))),
                "model": tensors, "config": {"model": config}}
    return _state(tensors, config, data)


def _save(state) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


@seeded
@fuzz_settings(ci_examples=100)
@given(data=st.data())
def test_fuzz_checkpoint(tmp_path_factory, weights, data):
    blob = data.draw(st.one_of(
        mutated_bytes(weights), st.binary(max_size=256),
        st.builds(lambda n: weights[:n], st.integers(0, len(weights))),
        st.builds(_save, hostile_states())))
    path = tmp_path_factory.getbasetemp() / "fuzz.pt"
    path.write_bytes(blob)
    contract("checkpoint", read_detector, path)


# --------------------------------------------------------------------------------------------
# Regression tests for crashing inputs, and the checks of the issue
# --------------------------------------------------------------------------------------------

def test_checkpoint_with_non_tensor_values_is_a_data_error(tmp_path):
    state = _state({k: "x" for k in _MODEL.state_dict()}, to_dict(_CONFIG), {})
    (tmp_path / "w.pt").write_bytes(_save(state))
    with pytest.raises(DataError, match="tensor names to tensors"):
        read_detector(tmp_path / "w.pt")


def test_checkpoint_with_bad_data_counts_is_a_data_error(tmp_path):
    state = _state(_MODEL.state_dict(), to_dict(_CONFIG), {"lidar_sweeps": "many"})
    (tmp_path / "w.pt").write_bytes(_save(state))
    with pytest.raises(DataError, match="lidar_sweeps"):
        read_detector(tmp_path / "w.pt")


def test_checkpoint_of_a_huge_network_is_refused_before_it_is_built(tmp_path):
    """A config naming a network far larger than its tensors fails on shapes alone: the
    network is checked on the meta device and never allocated."""
    config = to_dict(_CONFIG)
    config["backbone"]["channels"] = [16384 for _ in config["backbone"]["channels"]] \
        if isinstance(config.get("backbone", {}).get("channels"), list) else 16384
    state = _state(_MODEL.state_dict(), config, {})
    (tmp_path / "w.pt").write_bytes(_save(state))
    from ._fuzz import memory_cap

    with memory_cap(512 << 20), pytest.raises((ConfigError, DataError)):
        read_detector(tmp_path / "w.pt")


def test_checkpoint_whose_config_overflows_torch_is_a_config_error(tmp_path):
    """``backbone.channels: [2**31, 2**31]`` passes the config's checks, and building it
    (even on the meta device) raised torch's RuntimeError "Storage size calculation
    overflowed" (found by the full-mode run)."""
    config = to_dict(_CONFIG)
    config["backbone"]["channels"] = [2**31, 2**31]
    (tmp_path / "w.pt").write_bytes(_save(_state(_MODEL.state_dict(), config, {})))
    with pytest.raises(ConfigError, match="does not build a network"):
        read_detector(tmp_path / "w.pt")


def test_checkpoint_for_another_config_names_the_first_mismatch(tmp_path, weights):
    (tmp_path / "w.pt").write_bytes(weights)
    other = load_experiment(REPO / "configs/models/sim_cpu_radar.yaml").model
    with pytest.raises(ConfigError, match="tensor"):
        read_detector(tmp_path / "w.pt", config=other)


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04" + bytes(60)])
def test_corrupt_or_truncated_checkpoint_is_a_data_error(tmp_path, weights, content):
    for blob in (content, weights[: len(weights) // 2]):
        (tmp_path / "w.pt").write_bytes(blob)
        with pytest.raises(DataError, match="not a checkpoint of this package"):
            load_checkpoint_file(tmp_path / "w.pt")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("echo owned > owned.txt",))


def test_code_running_checkpoint_is_never_unpickled(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"format": WEIGHTS_FORMAT, "model": {}, "config": {"x": _Exploit()}}, path)
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(DataError) as err:
            load_checkpoint_file(path)
    finally:
        os.chdir(cwd)
    assert not (tmp_path / "owned.txt").exists()
    assert "weights_only=False" not in str(err.value)


def _cli(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    return subprocess.run([sys.executable, "-m", "perception.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def test_eval_with_a_random_file_says_it_is_not_a_checkpoint(tmp_path):
    """``perception eval CONFIG random.pt``, as a new user would run it: one line, exit 1,
    and never torch's advice to retry with ``weights_only=False``."""
    random_pt = tmp_path / "random.pt"
    random_pt.write_bytes(os.urandom(4096))
    evil_pt = tmp_path / "evil.pt"
    torch.save({"x": _Exploit()}, evil_pt)
    for ckpt in (random_pt, evil_pt):
        done = _cli("eval", str(REPO / "configs/models/sim_cpu_lidar.yaml"), str(ckpt),
                    cwd=tmp_path)
        assert done.returncode == 1, done.stderr
        assert "not a checkpoint of this package" in done.stderr
        assert "weights_only=False" not in done.stderr + done.stdout
        assert "Traceback" not in done.stderr
        assert not (tmp_path / "owned.txt").exists()


# --------------------------------------------------------------------------------------------
# Grep tests: no torch.load without weights_only=True, no pickle.load of untrusted files
# --------------------------------------------------------------------------------------------

SOURCE_DIRS = ("perception", "ros_nodes", "benchmarks")
# pickle.load / Unpickler uses that are allowed, with why.
PICKLE_ALLOWED = {
    # The restricted unpickler itself: allowlisted builtins and NumPy arrays only.
    "perception/data/safe_pickle.py",
}


def _python_files():
    for top in SOURCE_DIRS:
        for path in sorted((REPO / top).rglob("*.py")):
            if "__pycache__" not in path.parts:
                yield path


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            yield node


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


def test_every_torch_load_passes_weights_only_true():
    bad = []
    for path in _python_files():
        if "from torch import load" in path.read_text():
            bad.append(f"{path.relative_to(REPO)}: from torch import load")
    for path in _python_files():
        text = path.read_text()
        for call in _calls(ast.parse(text, str(path))):
            if _dotted(call.func) != "torch.load":
                continue
            ok = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
                     and k.value.value is True for k in call.keywords)
            if not ok:
                bad.append(f"{path.relative_to(REPO)}:{call.lineno}")
    assert not bad, f"torch.load without weights_only=True: {bad}"


def test_no_pickle_load_outside_the_restricted_unpickler():
    bad = []
    for path in _python_files():
        rel = str(path.relative_to(REPO))
        text = path.read_text()
        for call in _calls(ast.parse(text, rel)):
            name = _dotted(call.func)
            if name in ("pickle.load", "pickle.loads", "pickle.Unpickler", "cPickle.load",
                        "dill.load", "joblib.load", "pd.read_pickle", "pandas.read_pickle"):
                if rel not in PICKLE_ALLOWED:
                    bad.append(f"{rel}:{call.lineno} {name}")
            if name in ("np.load", "numpy.load"):
                allow = [k for k in call.keywords if k.arg == "allow_pickle"]
                if allow and not (isinstance(allow[0].value, ast.Constant)
                                  and allow[0].value.value is False):
                    bad.append(f"{rel}:{call.lineno} np.load(allow_pickle=...)")
        if "from pickle import load" in text:
            bad.append(f"{rel}: from pickle import load")
    assert not bad, f"unpickling outside perception/data/safe_pickle.py: {bad}"


def test_grep_tests_see_a_bad_call():
    """The two grep tests above do find what they look for."""
    # the calls are assembled, so that this file itself holds no bare unpickling call
    loads = [f"{module}.{'load'}({arg})" for module, arg in (("torch", "p"), ("pickle", "f"))]
    tree = ast.parse("import torch, pickle\n" + "\n".join(loads) + "\n")
    names = [_dotted(c.func) for c in _calls(tree)]
    assert "torch.load" in names and "pickle.load" in names
    assert pickle.dumps(1)   # keeps the import honest
