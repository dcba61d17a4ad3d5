"""DDS tests stay on this machine: the loopback Fast DDS profile and a private domain id are
set for this process and every process it starts. Launched processes are always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "ros_nodes" / "fastdds_loopback.xml"
DEADLINE_S = 60.0
"""Guard against hangs only; no test asserts on timing."""

os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(PROFILE)
os.environ["ROS_DOMAIN_ID"] = str(1 + os.getpid() % 100)  # private per test run


class Launched:
    """A ``perception launch`` subprocess whose output is collected by a thread."""

    def __init__(self, args: list[str]):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "perception.cli", "launch", *args], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
        self.lines: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def interrupt(self, sig: int = signal.SIGINT) -> int:
        """Ctrl-C (or ``sig``) the launcher and wait for it (and its nodes) to finish."""
        self.process.send_signal(sig)
        return self.wait()

    def terminate(self) -> int:
        return self.interrupt(signal.SIGTERM)

    def wait(self) -> int:
        code = self.process.wait(timeout=DEADLINE_S)
        self.reader.join(timeout=5)
        if code != 0:  # pytest shows what was printed when the test's assertion then fails
            print(f"launcher {self.process.args[3:]} exited {code}:\n{self.output[-4000:]}")
        return code

    def kill(self) -> None:
        """Last resort: the launcher and every node it started."""
        nodes = _children_of(self.process.pid)  # before the launcher goes and they reparent
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # the launcher stops its nodes
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in nodes:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _children_of(pid: int) -> list[int]:
    """Nodes run in process groups of their own: find them by parent pid."""
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            text = status.read_text()
        except OSError:
            continue
        fields = dict(line.split(":\t", 1) for line in text.splitlines() if ":\t" in line)
        if fields.get("PPid", "").strip() == str(pid):
            children.append(int(status.parent.name))
    return children


@pytest.fixture
def launch() -> Iterator[Callable[[list[str]], Launched]]:
    """``launch([...])`` starts ``perception launch ...``; everything is stopped afterwards."""
    started: list[Launched] = []

    def start(args: list[str]) -> Launched:
        launched = Launched(args)
        started.append(launched)
        return launched

    yield start
    for launched in started:
        launched.kill()


@pytest.fixture
def ros_node():
    """An rclpy node in this process (its own context), destroyed afterwards."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node(f"test_{os.getpid()}", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    node.test_executor = executor
    try:
        yield node
    finally:
        executor.shutdown()
        node.destroy_node()
        rclpy.shutdown(context=context)


def spin_until(node, condition: Callable[[], bool], what: str,
               process: Launched | None = None) -> None:
    """Spin ``node`` until ``condition()``; fail (with the launch output) after the guard."""
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        if time.monotonic() > deadline:
            output = process.output if process is not None else ""
            pytest.fail(f"gave up waiting for {what}\n--- launch output ---\n{output}")
        if process is not None and process.process.poll() is not None:
            process.reader.join(timeout=5)
            pytest.fail(f"launch exited with {process.process.returncode} while waiting for "
                        f"{what}\n--- launch output ---\n{process.output}")
        node.test_executor.spin_once(timeout_sec=0.05)


@pytest.fixture
def spin() -> Callable[..., None]:
    """``spin(node, condition, what, process=None)``: see :func:`spin_until`."""
    return spin_until


class LaunchedWithEnv(Launched):
    """A ``perception launch`` subprocess with environment variables changed or removed."""

    def __init__(self, args: list[str], set_env: dict[str, str] | None = None,
                 unset: tuple[str, ...] = ()):
        env = dict(os.environ, PYTHONUNBUFFERED="1", **(set_env or {}))
        for name in unset:
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "perception.cli", "launch", *args], cwd=REPO,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            start_new_session=True, env=env)
        self.lines = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()


@pytest.fixture
def launch_with_env() -> Iterator[Callable[..., Launched]]:
    """``launch_with_env([...], set_env={...}, unset=(...))``: like :func:`launch`, with the
    launcher's environment changed (this process keeps its own); stopped afterwards."""
    started: list[Launched] = []

    def start(args: list[str], set_env: dict[str, str] | None = None,
              unset: tuple[str, ...] = ()) -> Launched:
        launched = LaunchedWithEnv(args, set_env, unset)
        started.append(launched)
        return launched

    yield start
    for launched in started:
        launched.kill()


ANSWER_WAIT_S = 5.0
"""How long a service call waits for its answer before it is sent again."""


def call_until_answered(node, send: Callable[[], Any], wait: Callable[..., None],
                        what: str) -> Any:
    """``send()`` an idempotent service request and spin until its future is done, sending it
    again every ANSWER_WAIT_S: right after discovery, DDS can take a request before the
    server's reply writer has matched the client ("failed to send response (timeout)"), and
    that answer is lost. ``wait(condition, what)`` spins (and fails after its own guard)."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        future = send()
        resend = time.monotonic() + ANSWER_WAIT_S
        wait(lambda: future.done() or time.monotonic() > min(resend, deadline), what)
        if future.done():
            return future.result()
        if time.monotonic() > deadline:
            pytest.fail(f"no answer for {what} in {DEADLINE_S:.0f} s")
