"""Security hygiene: subprocess calls, the restricted unpickler, config paths, atomic writes.

- Every subprocess call passes an argument list: no ``shell=True``, no ``os.system`` /
  ``os.popen``, no command given as one string (read from the AST of every source file).
- The restricted unpickler refuses crafted pickles that would run code, by every route a
  pickle has to a callable (GLOBAL, STACK_GLOBAL, REDUCE, BUILD, INST/OBJ, NEWOBJ, extension
  codes), before anything runs.
- Config paths: a ``base:`` is resolved against the config's directory and must be a file;
  path values with a NUL byte are refused with a ConfigError.
- The writers of this package's outputs that a reader treats as finished (checkpoints,
  converted segments, TFRecords, the converted root index) write to a temporary name and
  rename, so a failure leaves no half-written file under the final name.
"""

from __future__ import annotations

import ast
import os
import pickle
import pickletools
from pathlib import Path

import numpy as np
import pytest

from perception.config import load_yaml_with_base
from perception.data import safe_pickle, tfrecord
from perception.errors import ConfigError, DataError

REPO = Path(__file__).resolve().parents[2]
SOURCE_DIRS = ("perception", "ros_nodes", "benchmarks", "tests", "cuda_ops", ".ci")


def _python_files():
    for top in SOURCE_DIRS:
        root = REPO / top
        if root.is_dir():
            for path in sorted(root.rglob("*.py")):
                if "__pycache__" not in path.parts:
                    yield path
    yield REPO / "setup.py"


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    if isinstance(node, ast.Name):
        return node.id
    return "?"


SUBPROCESS_CALLS = {"subprocess.run", "subprocess.call", "subprocess.check_call",
                    "subprocess.check_output", "subprocess.Popen", "asyncio.create_subprocess_exec"}


def test_subprocess_calls_use_argument_lists():
    bad = []
    for path in _python_files():
        rel = path.relative_to(REPO)
        for node in ast.walk(ast.parse(path.read_text(), str(rel))):
            if not isinstance(node, ast.Call):
                continue
            name = _dotted(node.func)
            if name in ("os.system", "os.popen", "subprocess.getoutput",
                        "subprocess.getstatusoutput", "asyncio.create_subprocess_shell"):
                bad.append(f"{rel}:{node.lineno} {name}")
            for kw in node.keywords:
                if kw.arg == "shell" and not (isinstance(kw.value, ast.Constant)
                                              and kw.value.value is False):
                    bad.append(f"{rel}:{node.lineno} shell=")
            if name in SUBPROCESS_CALLS and node.args and isinstance(
                    node.args[0], (ast.Constant, ast.JoinedStr, ast.BinOp)):
                bad.append(f"{rel}:{node.lineno} {name} with a command string")
    assert not bad, f"subprocess calls that go through a shell or a string: {bad}"


# --------------------------------------------------------------------------------------------
# The restricted unpickler
# --------------------------------------------------------------------------------------------

class _System:
    def __reduce__(self):
        return (os.system, ("echo owned > owned.txt",))


class _Eval:
    def __reduce__(self):
        return (eval, ("__import__('os').system('echo owned > owned.txt')",))


class _Build:
    """A class the allowlist lacks, rebuilt through NEWOBJ + BUILD."""

    def __init__(self):
        self.x = 1


_CRAFTED = {
    "reduce_os_system": pickle.dumps(_System(), protocol=2),
    "reduce_builtins_eval": pickle.dumps(_Eval(), protocol=4),
    "newobj_build_foreign_class": pickle.dumps(_Build(), protocol=2),
    "inst_opcode": b"(S'echo owned > owned.txt'\nios\nsystem\n.",
    "obj_opcode": b"(cos\nsystem\nS'echo owned > owned.txt'\no.",
    "global_posix_system": b"cposix\nsystem\n(S'echo owned > owned.txt'\ntR.",
    "stack_global_subprocess": b"\x80\x04\x95\x00\x00\x00\x00\x00\x00\x00\x00\x8c\nsubprocess"
                               b"\x94\x8c\x05Popen\x94\x93\x94.",
    "builtins_getattr_chain": b"cbuiltins\ngetattr\n(cbuiltins\ndict\nS'get'\ntR.",
    "builtins_import": b"cbuiltins\n__import__\n(S'os'\ntR.",
    "numpy_load_allow_pickle": b"cnumpy\nload\n(S'x.npy'\ntR.",
    "numpy_testing_runstring": b"cnumpy.testing._private.utils\nrunstring\n"
                               b"(S'import os'\n(dtR.",
    "codecs_encode_other_encoding": b"c_codecs\nencode\n(S'x'\nS'rot13'\ntR.",
    "extension_registry": b"\x80\x02\x82\x01.",
    "copyreg_reconstructor": b"ccopyreg\n_reconstructor\n(cos\n_wrap_close\ncbuiltins\nobject"
                             b"\nNtR.",
}


@pytest.mark.parametrize("name", sorted(_CRAFTED))
def test_restricted_unpickler_refuses_crafted_pickles(tmp_path, name, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / f"{name}.pkl"
    path.write_bytes(_CRAFTED[name])
    with pytest.raises(DataError) as err:
        safe_pickle.load_file(path)
    assert str(path) in str(err.value)
    assert not (tmp_path / "owned.txt").exists()


def test_crafted_pickles_would_run_code_with_plain_pickle():
    """The crafted pickles above are real: plain pickle names the callables they would run."""
    text = " ".join(op.name for op, _, _ in pickletools.genops(_CRAFTED["reduce_os_system"]))
    assert "GLOBAL" in text or "STACK_GLOBAL" in text
    assert b"system" in _CRAFTED["reduce_os_system"]


def test_restricted_unpickler_still_reads_info_files():
    data = {"data_list": [{"a": np.arange(3.0), "b": np.float32(2), "c": (1, "x", b"y")}],
            "metainfo": {"categories": {"car": 0}}}
    for protocol in (2, 4, 5):
        out = safe_pickle.loads_restricted(pickle.dumps(data, protocol=protocol))
        np.testing.assert_array_equal(out["data_list"][0]["a"], data["data_list"][0]["a"])


# --------------------------------------------------------------------------------------------
# Config paths
# --------------------------------------------------------------------------------------------

def test_config_base_is_resolved_relative_to_the_config(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "parent.yaml").write_text("x: 1\ny: 2\n")
    (tmp_path / "a" / "child.yaml").write_text("base: parent.yaml\ny: 3\n")
    monkeypatch.chdir(REPO)       # not the config's directory
    assert load_yaml_with_base(tmp_path / "a" / "child.yaml") == {"x": 1, "y": 3}


@pytest.mark.parametrize("base, match", [
    ("missing.yaml", "config file not found"),
    (".", "config file not found"),
    ("/dev/null", "config file not found"),
    ("a\\0b", "expected a file path string"),
])
def test_config_base_must_be_a_file(tmp_path, base, match):
    (tmp_path / "child.yaml").write_text(f'base: "{base}"\n')
    with pytest.raises(ConfigError, match=match):
        load_yaml_with_base(tmp_path / "child.yaml")


def test_config_path_value_with_a_nul_byte_is_refused():
    from dataclasses import dataclass

    from perception.config import from_dict

    @dataclass
    class WithPath:
        root: Path

    assert from_dict(WithPath, {"root": "data/x"}).root == Path("data/x")
    with pytest.raises(ConfigError, match="root"):
        from_dict(WithPath, {"root": "data\0x"})


# --------------------------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------------------------

def test_tfrecord_writer_leaves_nothing_on_failure(tmp_path):
    def payloads():
        yield b"one"
        raise RuntimeError("source failed mid-way")

    with pytest.raises(RuntimeError):
        tfrecord.write_records(tmp_path / "out.tfrecord", payloads())
    assert list(tmp_path.iterdir()) == []


def test_weights_writer_is_atomic(tmp_path, monkeypatch):
    import torch

    from perception.models.checkpoint import save_weights
    from perception.models.detector import build_detector
    from perception.train.config import load_experiment

    config = load_experiment(REPO / "configs/models/sim_cpu_lidar.yaml").model
    model = build_detector(config)
    target = tmp_path / "w.pt"
    target.write_bytes(b"previous")

    def failing_save(obj, f, *args, **kwargs):
        Path(f).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError):
        save_weights(target, model, config)
    assert target.read_bytes() == b"previous"


@pytest.mark.parametrize("source, root", [("waymo", "missing_dir"),
                                          ("nuscenes", "missing_info.pkl"),
                                          ("nuscenes", "missing_devkit")])
def test_config_data_roots_that_do_not_exist_are_named(tmp_path, source, root):
    from perception.errors import PerceptionError
    from perception.train.config import DataConfig
    from perception.train.data import build_dataset

    config = DataConfig(source=source, train_root=str(tmp_path / root))
    with pytest.raises(PerceptionError, match=root):
        build_dataset(config, "train")
