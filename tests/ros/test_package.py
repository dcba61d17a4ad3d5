"""The ROS 2 packaging, read from the real files: package.xml exec_depends are imported, every
launch and parameter file is installed, every launched node is an installed executable, the
shipped parameter files validate against the node schemas, and the interface packages carry
upstream's type hashes."""

from __future__ import annotations

import ast
import json
import os
import re
import sys
import xml.etree.ElementTree as ET
from glob import glob
from pathlib import Path

import pytest
import yaml

from perception.config import from_dict, to_dict
from ros_nodes.launcher import parse_launch_file
from ros_nodes.params import (
    DetectorNodeParams,
    SimNodeParams,
    SyncNodeParams,
    TrackerNodeParams,
)

REPO = Path(__file__).resolve().parents[2]
IMPORT_OF_ROSDEP_KEY = {
    "python3-numpy": "numpy", "python3-scipy": "scipy", "python3-yaml": "yaml",
    "python3-tqdm": "tqdm", "python3-pil": "PIL", "python3-pytorch-pip": "torch",
}
"""rosdep keys whose Python import name differs from the key."""
SCHEMA_OF_PARAM_FILE = {"sim.param.yaml": SimNodeParams, "sync.param.yaml": SyncNodeParams,
                        "detector.param.yaml": DetectorNodeParams,
                        "tracker.param.yaml": TrackerNodeParams}


def _exec_depends() -> list[str]:
    root = ET.parse(REPO / "package.xml").getroot()
    return [e.text.strip() for e in root.findall("exec_depend")]


def _imported_modules(folders: tuple[str, ...]) -> set[str]:
    pattern = re.compile(r"^\s*(?:from|import)\s+([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)
    found = set()
    for folder in folders:
        for path in (REPO / folder).rglob("*.py"):
            found.update(pattern.findall(path.read_text()))
    return found


def _setup_function(name: str):
    """A top-level function of setup.py, with setup.py's imports and constants, without
    building anything or calling setup()."""
    tree = ast.parse((REPO / "setup.py").read_text())
    keep = [node for node in tree.body
            if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef))
            or (isinstance(node, ast.Assign) and not isinstance(node.value, ast.Call))
            or (isinstance(node, ast.Assign) and ast.unparse(node.value).startswith("Path("))]
    namespace = {"__file__": str(REPO / "setup.py"), "__name__": "setup_functions"}
    exec(compile(ast.Module(keep, []), "setup.py", "exec"), namespace)
    return namespace[name]


def test_every_exec_depend_is_imported():
    imported = _imported_modules(("perception", "ros_nodes"))
    for key in _exec_depends():
        module = IMPORT_OF_ROSDEP_KEY.get(key, key)
        assert not key.startswith("python3-") or key in IMPORT_OF_ROSDEP_KEY, \
            f"add the import name of rosdep key {key!r} to IMPORT_OF_ROSDEP_KEY"
        assert module in imported, f"exec_depend {key!r}: nothing imports {module!r}"


def test_every_ros_package_the_nodes_import_is_an_exec_depend():
    imported = _imported_modules(("ros_nodes",))
    ros_packages = {m for m in imported if m.endswith(("_msgs", "_interfaces")) or m == "rclpy"}
    missing = sorted(ros_packages - set(_exec_depends()))
    assert not missing, f"package.xml lacks exec_depend {missing}"


def test_launch_and_param_files_are_installed():
    old = os.getcwd()
    os.chdir(REPO)  # setup.py globs relative to the repository root
    try:
        data_files = _setup_function("_data_files")()
    finally:
        os.chdir(old)
    installed = {path for _, paths in data_files for path in paths}
    shipped = glob("ros_nodes/launch/*.yaml", root_dir=REPO) + \
        glob("ros_nodes/config/*.yaml", root_dir=REPO)
    assert len(shipped) >= 4
    assert set(shipped) <= installed
    destinations = {dest for dest, _ in data_files}
    assert {"share/fusion_perception/launch", "share/fusion_perception/config"} <= destinations


def test_launched_nodes_are_installed_executables():
    executables = _setup_function("_ros_node_executables")()
    names = {entry.split(" = ")[0] for entry in executables}
    assert {"sim_node", "sync_node", "detector_node", "tracker_node"} <= names
    for path in (REPO / "ros_nodes" / "launch").glob("*.launch.yaml"):
        for node in parse_launch_file(path, {}).nodes:
            assert node.exec in names, f"{path.name}: {node.exec} is not installed"


@pytest.mark.parametrize("name", sorted(SCHEMA_OF_PARAM_FILE))
def test_param_files_validate_and_list_the_defaults(name):
    path = REPO / "ros_nodes" / "config" / name
    data = yaml.safe_load(path.read_text())
    assert list(data) == ["/**"], "parameters apply to the node whatever its name"
    values = data["/**"]["ros__parameters"]
    schema = SCHEMA_OF_PARAM_FILE[name]
    params = from_dict(schema, values, source=str(path))
    assert to_dict(params) == to_dict(schema()), f"{name} should list the schema defaults"
    assert set(values) == set(to_dict(schema())), f"{name} should list every parameter"
    assert set(SCHEMA_OF_PARAM_FILE) == {p.name for p in path.parent.glob("*.param.yaml")}


# -------------------------------------------------------------------------------------------
# Interface packages
# -------------------------------------------------------------------------------------------

def _built_hash(type_name: str) -> str:
    share = Path(sys.prefix) / "share"
    data = json.loads((share / f"{type_name}.json").read_text())
    return data["type_hashes"][0]["hash_string"]


def test_interface_packages_import_and_build_order():
    import fusion_perception_msgs.msg
    import tf2_msgs.msg
    import vision_msgs.msg

    assert vision_msgs.msg.Detection3DArray and tf2_msgs.msg.TFMessage
    assert fusion_perception_msgs.msg.TrackedObject.STATE_COASTING == 2
    order = [line.split("#")[0].strip() for line in
             (REPO / "ros_nodes" / "interfaces" / "BUILD_ORDER").read_text().splitlines()]
    order = [name for name in order if name]
    assert order.index("vision_msgs") < order.index("fusion_perception_msgs")
    assert set(order) == {p.name for p in (REPO / "ros_nodes" / "interfaces").iterdir()
                          if p.is_dir()}


def test_tf_message_hash_equals_upstream():
    from rosbags.typesys import Stores, get_typestore

    upstream = get_typestore(Stores.LATEST).hash_rihs01("tf2_msgs/msg/TFMessage")
    assert _built_hash("tf2_msgs/msg/TFMessage") == upstream


def test_vision_msgs_hash_agrees_with_an_independent_implementation():
    """rosbags computes RIHS01 hashes on its own; from our .msg files (upstream's names, fields
    and types) it must get the hash the ROS build generated."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.LATEST)
    folder = REPO / "ros_nodes" / "interfaces" / "vision_msgs" / "msg"
    types = {}
    for path in folder.glob("*.msg"):
        types.update(get_types_from_msg(path.read_text(), f"vision_msgs/msg/{path.stem}"))
    store.register(types)
    for name in ("Detection3DArray", "Detection3D", "BoundingBox3D"):
        type_name = f"vision_msgs/msg/{name}"
        assert store.hash_rihs01(type_name) == _built_hash(type_name)
