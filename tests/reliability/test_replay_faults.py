"""``perception replay`` under faults, run as a user would run it (a child process).

- SIGKILL mid-run, at several points: nothing that looks finished (``summary.json``, ``bag/``)
  is left, and rerunning the same command gives outputs byte-for-byte those of an
  uninterrupted run (the bag, ``metrics.json``, ``replay.gif``; ``summary.json`` holds
  wall-clock latencies and is compared without them), with no temporary name left;
- SIGKILL while a replay rewrites a finished output directory: the finished outputs are left
  as they were;
- out of disk space (a small tmpfs in a private mount namespace, where the machine allows
  it): a clear one-line error naming the cause, exit 1, and no partial output.

The log is a 4-frame ``tiny`` simulator scenario written by ``perception convert sim``'s
writer; each run takes a few seconds with the shipped model.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .test_convert_faults import _kill_when, _mount_prefix

REPO = Path(__file__).resolve().parents[2]
FRAMES = 4
WALL_CLOCK_KEYS = ("latency_ms", "wall_s", "frames_per_s")


def _cli(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "perception.cli", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _run(*args: str, timeout: float = 300) -> tuple[int, str]:
    child = _cli(*args)
    out, err = child.communicate(timeout=timeout)
    return child.returncode, out + err


def _args(log: Path, out: Path) -> tuple[str, ...]:
    return ("replay", str(log), "--out", str(out), "--no-progress")


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    from perception.replay import sim_to_bag

    path = tmp_path_factory.mktemp("log") / "drive.mcap"
    sim_to_bag("tiny", path, seed=3, frames=FRAMES, progress=False)
    return path


@pytest.fixture(scope="module")
def reference(log, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "out"
    rc, text = _run(*_args(log, out))
    assert rc == 0, text
    return out


def _tree(root: Path) -> dict[str, bytes]:
    """Every output file but the summaries (wall-clock figures), by relative path; the
    staging directory and the lock file (hidden names) are not outputs."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.startswith("summary.")
            and not any(part.startswith(".") for part in p.relative_to(root).parts)}


def _summary(root: Path) -> dict:
    data = json.loads((root / "summary.json").read_text())
    for key in (*WALL_CLOCK_KEYS, "log", "notes"):
        data.pop(key, None)
    return data


def _assert_same_as(out: Path, reference: Path) -> None:
    assert _tree(out) == _tree(reference), "outputs differ from an uninterrupted run"
    assert _summary(out) == _summary(reference)
    assert (out / "summary.md").is_file()
    assert not list(out.glob(".*")), f"leftovers: {list(out.glob('.*'))}"


def _assert_nothing_finished(out: Path) -> None:
    """A fresh OUT after a kill: no output in place, only the staging directory."""
    visible = sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) \
        if out.exists() else []
    assert visible == [], f"a killed replay left {visible} in place"


def _staged(name: str):
    return lambda out: (out / ".replay.partial" / name).exists()


KILL_POINTS = {
    # the output bag is open and being written (its staging file exists)
    "while_the_bag_is_written": lambda out: any((out / ".replay.partial").glob(
        ".bag.partial/bag/*.mcap")),
    # every frame is done; metrics are staged, the video and summary are being written
    "while_the_outputs_are_staged": _staged("metrics.json"),
}


@pytest.mark.parametrize("point", sorted(KILL_POINTS))
def test_sigkill_then_rerun_gives_the_uninterrupted_output(log, reference, tmp_path, point):
    out = tmp_path / "out"
    killed = _kill_when(_cli(*_args(log, out)), out, KILL_POINTS[point])
    if killed:
        _assert_nothing_finished(out)
    rc, text = _run(*_args(log, out))
    assert rc == 0, text
    _assert_same_as(out, reference)


def test_sigkill_while_rewriting_keeps_the_finished_outputs(log, reference, tmp_path):
    out = tmp_path / "out"
    shutil.copytree(reference, out)
    def finished():
        return {p.name: p.read_bytes() for p in out.iterdir()
                if p.is_file() and not p.name.startswith(".")}

    before = finished()
    killed = _kill_when(_cli(*_args(log, out)), out, KILL_POINTS["while_the_bag_is_written"])
    assert killed, "the replay finished before the kill point"
    # left besides: the staging directory and the (released) lock file, for the next run
    assert finished() == before
    assert _tree(out) == _tree(reference)


@pytest.mark.parametrize("size_kib", [16, 160])
def test_out_of_disk_space_is_a_clear_error(log, tmp_path, size_kib):
    prefix = _mount_prefix(tmp_path)
    if prefix is None:
        pytest.skip("this machine allows no tmpfs mount (not root, no user namespaces)")
    disk, copy = tmp_path / "disk", tmp_path / "copy"
    disk.mkdir()
    out = disk / "out"
    # Inside the namespace: mount a small tmpfs, replay into it, then copy what was left onto
    # the real disk for inspection (the tmpfs goes away with the namespace).
    script = (f"mount -t tmpfs -o size={size_kib}k tmpfs {disk} || exit 99; "
              f"{sys.executable} -m perception.cli replay {log} --out {out} --no-progress; "
              f"rc=$?; cp -a {disk} {copy}; exit $rc")
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    done = subprocess.run([*prefix, "sh", "-c", script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert "No space left on device" in text and "Traceback" not in text, text
    assert "the replay did not finish" in text
    left = copy / "out"
    if left.exists():
        assert sorted(p.name for p in left.iterdir()) == [], \
            f"a full disk left {sorted(p.name for p in left.iterdir())}"
