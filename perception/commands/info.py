"""``perception info``: versions, build of the ops, ROS 2 availability, fixtures found."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import platform
import subprocess
import sys
from typing import Any

from .. import __version__, fixtures

OPTIONAL_PACKAGES = ("numpy", "scipy", "torch", "open3d", "spconv", "rosbags", "yaml",
                     "google.protobuf", "waymo_open_dataset")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("info", help="show versions, how the ops were built, ROS 2 and fixtures",
                       description=__doc__)
    p.add_argument("--json", action="store_true", help="print machine-readable JSON")
    p.set_defaults(func=run)


def _version_of(module_name: str) -> str | None:
    try:
        module = importlib.import_module(module_name)
    except Exception:  # an optional package that fails to import is reported as absent
        return None
    return str(getattr(module, "__version__", "installed"))


def _torch_info() -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        return {"torch": None}
    return {
        "torch": torch.__version__,
        "torch_cuda_build": torch.version.cuda,
        "cuda_available": bool(torch.cuda.is_available()),
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())],
        "torch_threads": torch.get_num_threads(),
    }


ROS_PROBE = """
import importlib, json
info = {"rclpy": True}
try:
    from rclpy.utilities import get_rmw_implementation_identifier
    info["rmw"] = get_rmw_implementation_identifier()
except Exception as exc:
    info["rmw_error"] = str(exc)
for pkg in ("vision_msgs", "tf2_msgs", "fusion_perception_msgs"):
    try:
        importlib.import_module(pkg + ".msg")
        info[pkg] = True
    except Exception:
        info[pkg] = False
print(json.dumps(info))
"""
ROS_PROBE_TIMEOUT_S = 30.0


def _ros_info() -> dict[str, Any]:
    """ROS 2 availability, probed in a child process: ``perception`` itself never loads
    rclpy (the layering rule), and a broken ROS install cannot take this command down."""
    if importlib.util.find_spec("rclpy") is None:
        return {"rclpy": False, "rclpy_error": "rclpy is not installed"}
    try:
        done = subprocess.run([sys.executable, "-c", ROS_PROBE], capture_output=True,
                              text=True, timeout=ROS_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return {"rclpy": False, "rclpy_error": f"probe timed out after {ROS_PROBE_TIMEOUT_S} s"}
    if done.returncode != 0:
        lines = (done.stderr or "").strip().splitlines() or ["no output"]
        return {"rclpy": False, "rclpy_error": lines[-1]}
    try:
        return json.loads(done.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"rclpy": False, "rclpy_error": f"unreadable probe output {done.stdout!r}"}


def collect() -> dict[str, Any]:
    """Everything ``perception info`` reports, as a JSON-able dict."""
    from ..models.detector import spconv_build
    from ..ops import _library, extension_status

    ops_status = extension_status()
    ops_status["torch_ops"] = [op._qualname for op in _library.OPS] if ops_status["compiled"] \
        else []
    return {
        "perception": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        **_torch_info(),
        "ops": ops_status,
        "spconv": spconv_build(),
        "packages": {name: _version_of(name) for name in OPTIONAL_PACKAGES},
        "ros": _ros_info(),
        "fixtures_root": str(fixtures.data_root()) if fixtures.data_root() else None,
        "fixtures": {f.key: str(p) if p else None for f, p in fixtures.fixture_status()},
    }


def format_text(info: dict[str, Any]) -> str:
    ops = info["ops"]
    backend = ops["backend"]
    if ops["compiled"]:
        backend += f" (OpenMP {'on, ' + str(ops['openmp_max_threads']) + ' threads' if ops['openmp'] else 'off'})"
    if ops.get("torch_ops"):
        backend += f", {len(ops['torch_ops'])} ops registered as torch.ops.perception"
    sp = info.get("spconv") or {}
    spconv_text = ("not installed" if not sp.get("package") else
                   f"{sp['package']} {sp['version']} "
                   f"({'CUDA ' + sp['cuda'] if sp.get('cuda') else 'CPU only'})")
    ros = info["ros"]
    ros_text = (f"available, rmw {ros.get('rmw', '?')}" if ros["rclpy"]
                else f"not available ({ros.get('rclpy_error', '')})")
    lines = [
        f"fusion_perception {info['perception']}  (Python {info['python']}, {info['platform']})",
        f"torch        {info.get('torch')}  CUDA build: {info.get('torch_cuda_build')}  "
        f"CUDA available: {info.get('cuda_available')}",
        f"ops          {backend}",
        f"spconv       {spconv_text}",
        f"rclpy        {ros_text}",
    ]
    if ros["rclpy"]:
        lines.append("ROS msgs     " + ", ".join(
            f"{k} {'yes' if ros[k] else 'no'}" for k in ("vision_msgs", "tf2_msgs",
                                                         "fusion_perception_msgs")))
    lines.append("packages     " + ", ".join(
        f"{k} {v or 'missing'}" for k, v in info["packages"].items()))
    lines.append(f"fixtures     {info['fixtures_root'] or 'not found (set $' + fixtures.ENV_VAR + ')'}")
    for key, path in info["fixtures"].items():
        lines.append(f"  {'found  ' if path else 'missing'} {key}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    info = collect()
    print(json.dumps(info, indent=2) if args.json else format_text(info))
    return 0
