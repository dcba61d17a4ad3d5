"""The `perception` command: --help, --version, info, logging flags, error handling."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from perception import __version__, cli
from perception.errors import ValidationError


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "perception.cli", *args], capture_output=True,
                          text=True, timeout=120, env={**os.environ, **(env or {})})


def test_help_lists_subcommands():
    out = run_cli("--help")
    assert out.returncode == 0
    for name in ("info", "--verbose", "--quiet", "--version"):
        assert name in out.stdout


def test_version():
    out = run_cli("--version")
    assert out.returncode == 0 and out.stdout.strip() == f"perception {__version__}"


def test_info_runs_and_reports_everything():
    out = run_cli("info", "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["perception"] == __version__
    assert info["torch"] and isinstance(info["cuda_available"], bool)
    assert info["ops"]["backend"] in ("cpp", "cpp+cuda", "pytorch-reference")
    assert isinstance(info["ros"]["rclpy"], bool)
    assert set(info["fixtures"]) >= {"waymo_frame", "kitti_object", "nuscenes_keyframe"}
    text = run_cli("info")
    assert text.returncode == 0 and "ops" in text.stdout and "rclpy" in text.stdout


def test_info_fixture_override_via_environment(tmp_path):
    out = run_cli("info", "--json", env={"PERCEPTION_TEST_DATA": str(tmp_path)})
    info = json.loads(out.stdout)
    assert info["fixtures_root"] == str(tmp_path)
    assert all(path is None for path in info["fixtures"].values())


def test_no_subcommand_prints_help_and_fails():
    out = run_cli()
    assert out.returncode == 2 and "usage:" in out.stdout


def test_unknown_subcommand_is_an_argparse_error():
    out = run_cli("frobnicate")
    assert out.returncode == 2 and "invalid choice" in out.stderr


def test_perception_errors_become_one_line_and_exit_1(monkeypatch, capsys):
    def failing(args):
        raise ValidationError("Boxes3D.boxes: bad")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser.set_defaults(func=failing, command="info")
    assert cli.main(["-q"]) == 1
    err = capsys.readouterr().err
    assert "error: Boxes3D.boxes: bad" in err and "Traceback" not in err


@pytest.mark.parametrize("flags, level", [([], 30), (["-v"], 20), (["-vv"], 10), (["-q"], 40)])
def test_verbosity_flags_set_log_level(flags, level):
    import logging

    args = cli.build_parser().parse_args(flags + ["info"])
    root = logging.getLogger()
    saved = root.level, list(root.handlers)
    root.handlers = []
    try:
        cli.configure_logging(args.verbose, args.quiet)
        assert root.level == level
    finally:
        root.setLevel(saved[0])
        root.handlers = saved[1]
