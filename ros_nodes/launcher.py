"""Run the project's ROS 2 YAML launch files without the ROS 2 launch system.

``ros2 launch fusion_perception sim.launch.yaml`` needs ``launch``/``launch_ros``, which are
not on PyPI. This module runs the same files::

    python -m ros_nodes.launcher FILE [name:=value ...]

(``perception launch`` runs it as a subprocess). It supports exactly the subset of the YAML
launch format the project uses, and refuses anything else with a clear error:

* top level: ``launch:`` with a list of ``arg`` and ``node`` entries;
* ``arg``: ``name`` (required), ``default``, ``description``;
* ``node``: ``pkg`` (``fusion_perception`` only), ``exec`` (a ``ros_nodes/<exec>.py`` module),
  ``name``, ``output`` (``screen`` or ``log``; both go to the screen, prefixed), ``param`` (a
  list of ``{from: FILE}`` or ``{name: N, value: V}``), ``remap`` (a list of
  ``{from: A, to: B}``), ``args`` (extra command-line arguments, split like a shell);
* substitutions in strings: ``$(var NAME)``, ``$(find-pkg-share fusion_perception)``,
  ``$(env NAME)`` and ``$(env NAME DEFAULT)``.

Each node runs as its own process (``python -m ros_nodes.<exec> --ros-args ...``) with its
parameters, remappings and arguments. Output lines are prefixed with ``[<node name>]``.
Ctrl-C or SIGTERM stops every node (SIGINT, then SIGTERM, then SIGKILL after grace periods). A
node that exits is reported with its exit code; the launch ends when every node has exited.

Launch arguments that override a parameter file reach the node through its
``launch_overrides`` parameter (see :func:`ros_nodes.params.parse_launch_overrides`), so an
argument left empty leaves the file's value in place, under this runner and ``ros2 launch``
alike.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from perception.errors import ConfigError, PerceptionError
from perception.processes import stop_with_parent

PACKAGE = "fusion_perception"
NODES_PACKAGE = "ros_nodes"
ARG_KEYS = frozenset({"name", "default", "description"})
NODE_KEYS = frozenset({"pkg", "exec", "name", "output", "param", "remap", "args"})
OUTPUTS = ("screen", "log")
SUBSTITUTION = re.compile(r"\$\(([^()]*)\)")
STOP_GRACE_S = 5.0
"""How long nodes get to exit after SIGINT (and again after SIGTERM) before escalation."""


@dataclass(frozen=True)
class LaunchArg:
    name: str
    default: str | None
    description: str = ""


@dataclass(frozen=True)
class NodeSpec:
    """One node to run, with every substitution resolved."""

    pkg: str
    exec: str
    name: str
    params: tuple[tuple[str, str], ...] = ()
    """``("file", path)`` or ``("value", "name:=value")``, in file order."""
    remaps: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()

    def command(self) -> list[str]:
        """The process command line."""
        cmd = [sys.executable, "-m", f"{NODES_PACKAGE}.{self.exec}", *self.args, "--ros-args",
               "-r", f"__node:={self.name}"]
        for kind, value in self.params:
            cmd += ["--params-file", value] if kind == "file" else ["-p", value]
        for source, target in self.remaps:
            cmd += ["-r", f"{source}:={target}"]
        return cmd


@dataclass(frozen=True)
class LaunchDescription:
    path: Path
    args: tuple[LaunchArg, ...]
    nodes: tuple[NodeSpec, ...]


# ------------------------------------------------------------------------------------------
# Parsing
# ------------------------------------------------------------------------------------------

def package_share(package: str) -> Path:
    """Share directory of ``package``. For fusion_perception this is the source directory of
    :mod:`ros_nodes`, which has the installed share layout (``launch/``, ``config/``)."""
    if package != PACKAGE:
        raise ConfigError(f"$(find-pkg-share {package}): only {PACKAGE!r} is supported")
    return Path(__file__).resolve().parent


def resolve_launch_file(name: str) -> Path:
    """A path, or a file name looked up in the package's ``launch/`` directory."""
    path = Path(name)
    if path.is_file():
        return path
    candidate = package_share(PACKAGE) / "launch" / name
    if candidate.is_file():
        return candidate
    raise ConfigError(f"launch file {name!r} not found (neither a path nor in "
                      f"{candidate.parent})")


def substitute(text: str, values: dict[str, str], where: str) -> str:
    """Resolve ``$(...)`` substitutions in ``text`` (see the module doc)."""

    def replace(match: re.Match) -> str:
        parts = match.group(1).split()
        if not parts:
            raise ConfigError(f"{where}: empty substitution $()")
        kind, rest = parts[0], parts[1:]
        if kind == "var" and len(rest) == 1:
            if rest[0] not in values:
                raise ConfigError(f"{where}: $(var {rest[0]}): no launch argument "
                                  f"{rest[0]!r} (declared: {sorted(values)})")
            return values[rest[0]]
        if kind == "find-pkg-share" and len(rest) == 1:
            return str(package_share(rest[0]))
        if kind == "env" and len(rest) in (1, 2):
            if rest[0] in os.environ:
                return os.environ[rest[0]]
            if len(rest) == 2:
                return rest[1]
            raise ConfigError(f"{where}: $(env {rest[0]}): environment variable not set")
        raise ConfigError(f"{where}: unsupported substitution $({match.group(1)}); supported: "
                          f"$(var NAME), $(find-pkg-share {PACKAGE}), $(env NAME [DEFAULT])")

    return SUBSTITUTION.sub(replace, text)


def _text(value: Any, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (str, int, float)):
        return str(value)
    raise ConfigError(f"{where}: expected a string or number, got {type(value).__name__}")


def _mapping(value: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    unknown = sorted(set(value) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unsupported key(s) {unknown}; supported: {sorted(allowed)}")
    return value


def parse_launch_file(path: Path, overrides: dict[str, str]) -> LaunchDescription:
    """Read ``path`` and resolve it with the launch-argument ``overrides``.

    Raises:
        ConfigError: invalid YAML, an unsupported entry, key or substitution, an unknown
            override, or a required argument without a value.
    """
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(data, dict) or set(data) != {"launch"} or not isinstance(data["launch"],
                                                                               list):
        raise ConfigError(f"{path}: the top level must be 'launch:' with a list of entries")
    args: list[LaunchArg] = []
    values: dict[str, str] = {}
    nodes: list[NodeSpec] = []
    for index, entry in enumerate(data["launch"]):
        where = f"{path}: launch[{index}]"
        if not isinstance(entry, dict) or len(entry) != 1:
            raise ConfigError(f"{where}: each entry must be a single 'arg:' or 'node:' mapping")
        (kind, body), = entry.items()
        if kind == "arg":
            arg = _parse_arg(body, values, overrides, f"{where}.arg")
            args.append(arg)
        elif kind == "node":
            nodes.append(_parse_node(body, values, f"{where}.node"))
        else:
            raise ConfigError(f"{where}: unsupported entry {kind!r}; supported: arg, node")
    unknown = sorted(set(overrides) - {a.name for a in args})
    if unknown:
        raise ConfigError(f"{path}: unknown launch argument(s) {unknown}; declared: "
                          f"{[a.name for a in args]}")
    return LaunchDescription(path, tuple(args), tuple(nodes))


def _parse_arg(body: Any, values: dict[str, str], overrides: dict[str, str],
               where: str) -> LaunchArg:
    body = _mapping(body, ARG_KEYS, where)
    if "name" not in body:
        raise ConfigError(f"{where}: 'name' is required")
    name = _text(body["name"], f"{where}.name")
    default = None
    if "default" in body:
        default = substitute(_text(body["default"], f"{where}.default"), values,
                             f"{where}.default")
    value = overrides.get(name, default)
    if value is None:
        raise ConfigError(f"{where}: launch argument {name!r} has no default; give "
                          f"{name}:=VALUE")
    values[name] = value
    return LaunchArg(name, default, str(body.get("description", "")))


def _parse_node(body: Any, values: dict[str, str], where: str) -> NodeSpec:
    body = _mapping(body, NODE_KEYS, where)

    def text(key: str, default: str | None = None) -> str:
        if key not in body:
            if default is None:
                raise ConfigError(f"{where}: '{key}' is required")
            return default
        return substitute(_text(body[key], f"{where}.{key}"), values, f"{where}.{key}")

    pkg = text("pkg")
    if pkg != PACKAGE:
        raise ConfigError(f"{where}.pkg: only nodes of {PACKAGE!r} can be launched, got {pkg!r}")
    exec_name = text("exec")
    module = package_share(PACKAGE) / f"{exec_name}.py"
    if not re.fullmatch(r"[a-z_]+_node", exec_name) or not module.is_file():
        raise ConfigError(f"{where}.exec: no node executable {exec_name!r} in {PACKAGE}")
    output = text("output", "screen")
    if output not in OUTPUTS:
        raise ConfigError(f"{where}.output: expected one of {list(OUTPUTS)}, got {output!r}")
    return NodeSpec(pkg, exec_name, text("name", exec_name.removesuffix("_node")),
                    _parse_params(body.get("param", []), values, f"{where}.param"),
                    _parse_remaps(body.get("remap", []), values, f"{where}.remap"),
                    tuple(shlex.split(text("args", ""))))


def _parse_params(items: Any, values: dict[str, str], where: str
                  ) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a list")
    params = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if isinstance(item, dict) and set(item) == {"from"}:
            path = substitute(_text(item["from"], at), values, at)
            if not Path(path).is_file():
                raise ConfigError(f"{at}: parameter file {path!r} not found")
            params.append(("file", path))
        elif isinstance(item, dict) and set(item) == {"name", "value"}:
            name = substitute(_text(item["name"], f"{at}.name"), values, f"{at}.name")
            value = substitute(_text(item["value"], f"{at}.value"), values, f"{at}.value")
            params.append(("value", f"{name}:={value}"))
        else:
            raise ConfigError(f"{at}: expected {{from: FILE}} or {{name: N, value: V}}, got "
                              f"{item!r}")
    return tuple(params)


def _parse_remaps(items: Any, values: dict[str, str], where: str
                  ) -> tuple[tuple[str, str], ...]:
    if not isinstance(items, list):
        raise ConfigError(f"{where}: expected a list")
    remaps = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict) or set(item) != {"from", "to"}:
            raise ConfigError(f"{at}: expected {{from: TOPIC, to: TOPIC}}, got {item!r}")
        remaps.append((substitute(_text(item["from"], at), values, at),
                       substitute(_text(item["to"], at), values, at)))
    return tuple(remaps)


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["name:=value", ...]`` -> dict; ConfigError on anything else."""
    overrides = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise ConfigError(f"launch argument {item!r}: expected NAME:=VALUE")
        overrides[name] = value
    return overrides


# ------------------------------------------------------------------------------------------
# Running
# ------------------------------------------------------------------------------------------

@dataclass
class _Running:
    spec: NodeSpec
    process: subprocess.Popen
    reader: threading.Thread
    reported: bool = False


@dataclass
class LaunchRunner:
    """Runs the nodes of a :class:`LaunchDescription` (see the module doc)."""

    description: LaunchDescription
    out: TextIO = field(default_factory=lambda: sys.stdout)
    running: list[_Running] = field(default_factory=list)
    stopping: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def say(self, prefix: str, line: str) -> None:
        with self.lock:
            self.out.write(f"[{prefix}] {line}\n")
            self.out.flush()

    def start(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        for spec in self.description.nodes:
            # its own process group: a terminal's Ctrl-C reaches the launcher only, which then
            # stops the nodes in order
            process = subprocess.Popen(spec.command(), stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, text=True, bufsize=1, start_new_session=True,
                                       preexec_fn=stop_with_parent)
            reader = threading.Thread(target=self._pump, args=(spec.name, process), daemon=True)
            reader.start()
            self.running.append(_Running(spec, process, reader))
            self.say("launch", f"started {spec.name} (pid {process.pid}): "
                               f"{' '.join(shlex.quote(c) for c in spec.command())}")

    def _pump(self, name: str, process: subprocess.Popen) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.say(name, line.rstrip("\n"))

    def report_exits(self) -> None:
        for node in self.running:
            code = node.process.poll()
            if code is None or node.reported:
                continue
            node.reader.join(timeout=1.0)  # print the node's last lines first
            node.reported = True
            if code == 0:
                self.say("launch", f"{node.spec.name} exited with code 0")
            elif code < 0:
                self.say("launch", f"{node.spec.name} died: killed by signal "
                                   f"{signal.Signals(-code).name} (exit code {code})")
            else:
                self.say("launch", f"{node.spec.name} died with exit code {code}")

    def all_exited(self) -> bool:
        return all(node.process.poll() is not None for node in self.running)

    def stop(self) -> None:
        """SIGINT every node, then SIGTERM, then SIGKILL, each after a grace period."""
        self.stopping = True
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            alive = [n for n in self.running if n.process.poll() is None]
            if not alive:
                break
            for node in alive:
                try:
                    node.process.send_signal(sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + STOP_GRACE_S
            while time.monotonic() < deadline and not self.all_exited():
                time.sleep(0.05)
        self.report_exits()

    def exit_code(self) -> int:
        """0 when every node exited with 0 (or was stopped cleanly), else 1."""
        codes = [node.process.returncode for node in self.running]
        return 0 if all(code == 0 for code in codes) else 1


def run_launch(path: Path, overrides: dict[str, str], out: TextIO | None = None) -> int:
    """Run a launch file until every node exits, or until SIGINT/SIGTERM (then stop them)."""
    description = parse_launch_file(path, overrides)
    if not description.nodes:
        raise ConfigError(f"{path}: no node to launch")
    runner = LaunchRunner(description, out or sys.stdout)
    stop_requested = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        stop_requested.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT,
                                                                   signal.SIGTERM)}
    try:
        runner.start()
        while not stop_requested.is_set() and not runner.all_exited():
            runner.report_exits()
            stop_requested.wait(0.1)
        if stop_requested.is_set():
            runner.say("launch", "stopping all nodes")
        runner.stop()
    finally:
        if runner.running and not runner.all_exited():
            runner.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return runner.exit_code()


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ros_nodes.launcher",
        description="Run a ROS 2 YAML launch file of fusion_perception without the ROS 2 "
                    "launch system.")
    parser.add_argument("file", help="launch file: a path, or a file name in the package's "
                                     "launch/ directory, e.g. sim.launch.yaml")
    parser.add_argument("overrides", nargs="*", metavar="name:=value",
                        help="launch argument values")
    # the name errors are reported under, so `perception launch` reads as itself
    parser.add_argument("--prog", default=None, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit code: 0 when every node exited with 0, 1 when one did not or the launch file,
    an argument or an override is invalid (one line on stderr, no traceback)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    prog = args.prog or parser.prog
    try:
        return run_launch(resolve_launch_file(args.file), parse_overrides(args.overrides))
    except PerceptionError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
