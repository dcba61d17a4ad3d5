"""`make setup CUDA=...`: which torch and spconv builds the setup installs
(.ci/cuda_select.py, used by .ci/setup.sh)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("cuda_select", ROOT / ".ci" / "cuda_select.py")
select = importlib.util.module_from_spec(spec)
spec.loader.exec_module(select)


@pytest.mark.parametrize("torch_cuda, package", [
    (None, "spconv"), ("", "spconv"), ("11.8", "spconv-cu118"), ("12.1", "spconv-cu121"),
    ("12.4", "spconv-cu124"), ("12.6", "spconv-cu126"), ("12.8", "spconv-cu126"),
    ("13.0", "spconv-cu126"), ("12.2", "spconv-cu121"), ("11.6", "spconv-cu114")])
def test_spconv_follows_torch_cuda(torch_cuda, package):
    assert select.spconv_package(torch_cuda) == package


def test_spconv_too_old_cuda():
    with pytest.raises(ValueError, match="no spconv"):
        select.spconv_package("10.2")


@pytest.mark.parametrize("request_, have, installed, expect", [
    # default: keep whatever torch is there (a CUDA build included), else the pinned one
    ("", True, "12.6", ("keep", "")),
    ("auto", True, "", ("keep", "")),
    ("", False, "", ("install", "")),
    # an explicit CUDA version: that build, unless it is already the one installed
    ("12.6", True, "", ("install", "https://download.pytorch.org/whl/cu126")),
    ("12.6", False, "", ("install", "https://download.pytorch.org/whl/cu126")),
    ("12.6", True, "12.6", ("keep", "")),
    ("cu128", True, "12.6", ("install", "https://download.pytorch.org/whl/cu128")),
    ("130", True, "12.6", ("install", "https://download.pytorch.org/whl/cu130")),
    # cpu: a CPU torch
    ("cpu", True, "12.6", ("install", "https://download.pytorch.org/whl/cpu")),
    ("cpu", True, "", ("keep", "")),
])
def test_torch_plan(request_, have, installed, expect):
    assert select.torch_plan(request_, installed, have) == expect


def test_bad_cuda_value():
    with pytest.raises(ValueError, match="CUDA"):
        select.parse_cuda("twelve")


def test_command_line_is_what_setup_sources():
    out = subprocess.run([sys.executable, str(ROOT / ".ci" / "cuda_select.py"), "torch", "12.6",
                          "1", ""], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["TORCH_ACTION=install",
                                "TORCH_INDEX_URL=https://download.pytorch.org/whl/cu126"]
    out = subprocess.run([sys.executable, str(ROOT / ".ci" / "cuda_select.py"), "spconv",
                          "12.8"], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "spconv-cu126"
    bad = subprocess.run([sys.executable, str(ROOT / ".ci" / "cuda_select.py"), "torch", "x.y",
                          "0", ""], capture_output=True, text=True)
    assert bad.returncode == 2 and "CUDA" in bad.stderr


def test_setup_wires_the_selection():
    setup = (ROOT / ".ci" / "setup.sh").read_text()
    assert 'cuda_select.py" torch "$CUDA"' in setup
    assert 'cuda_select.py" spconv "$TORCH_CUDA"' in setup
    # The core requirements' CPU spconv pin is replaced by the selected build.
    assert "grep -v -E '^spconv" in setup
    assert "export CUDA" in (ROOT / "Makefile").read_text()


def test_cpu_spconv_on_cuda_is_refused_at_model_build(monkeypatch):
    import torch

    from perception.config import config_dir
    from perception.errors import ConfigError
    from perception.models import detector
    from perception.train.config import load_experiment

    config = load_experiment(config_dir() / "models" / "waymo_lidar.yaml").model
    monkeypatch.setattr(detector, "spconv_build",
                        lambda: {"package": "spconv", "version": "2.3.8", "cuda": None})
    for build in (lambda: detector.build_detector(config, "cuda"),
                  lambda: detector.build_detector(config).to("cuda:0"),
                  lambda: detector.build_detector(config).cuda()):
        with pytest.raises(ConfigError, match="needs a CUDA build of spconv.*CUDA=<version>"):
            build()
    detector.build_detector(config).to("cpu").to(torch.float64)  # the CPU is fine
    monkeypatch.setattr(detector, "spconv_build",
                        lambda: {"package": "spconv-cu126", "version": "2.3.8", "cuda": "12.6"})
    detector.check_device(config, "cuda")  # a CUDA build passes the check


def test_info_names_spconv_and_the_ops_backend():
    from perception.commands.info import collect, format_text

    info = collect()
    text = format_text(info)
    assert "spconv       " in text and "torch.ops.perception" in text or \
        not info["ops"]["compiled"]
