"""Compile checks of the GPU code, which CI machines without a GPU cannot run.

* every ``cuda_ops/csrc/cuda/*.cu`` compiles with ``nvcc -c -std=c++17`` (raw pointers, no
  torch headers), so a syntax error in a kernel fails CI;
* the torch-facing CUDA wrappers (``cuda/*.cpp``) and the bindings with ``WITH_CUDA`` defined
  pass a syntax check against the installed torch headers (they need no CUDA header).

Skipped when ``nvcc`` (resp. a C++ compiler) is not on PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CSRC = REPO / "cuda_ops" / "csrc"
CU_FILES = sorted((CSRC / "cuda").glob("*.cu"))
WRAPPERS = sorted((CSRC / "cuda").glob("*.cpp"))


def test_cuda_sources_exist():
    assert CU_FILES, "no .cu files under cuda_ops/csrc/cuda"
    assert WRAPPERS, "no CUDA wrapper .cpp under cuda_ops/csrc/cuda"


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc not on PATH")
@pytest.mark.parametrize("source", CU_FILES, ids=lambda p: p.name)
def test_nvcc_compiles(source, tmp_path):
    cmd = ["nvcc", "-c", "-std=c++17", "-O3", "-I", str(CSRC), str(source),
           "-o", str(tmp_path / (source.stem + ".o"))]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stdout}\n{res.stderr}"
    assert (tmp_path / (source.stem + ".o")).stat().st_size > 0


def _cxx() -> str | None:
    return shutil.which("g++") or shutil.which("c++")


@pytest.mark.skipif(shutil.which("nvcc") is None or _cxx() is None,
                    reason="nvcc or a C++ compiler not on PATH")
@pytest.mark.parametrize("source", WRAPPERS + [CSRC / "bindings.cpp"], ids=lambda p: p.name)
def test_cuda_wrappers_syntax(source):
    torch_utils = pytest.importorskip("torch.utils.cpp_extension")
    includes = [str(CSRC), sysconfig.get_paths()["include"]]
    includes += torch_utils.include_paths()
    cmd = [_cxx(), "-std=c++17", "-fsyntax-only", "-DWITH_CUDA", "-DTORCH_EXTENSION_NAME=_C"]
    cmd += [f"-I{p}" for p in includes] + [str(source)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, f"{' '.join(cmd)}\n{res.stderr[-4000:]}"
