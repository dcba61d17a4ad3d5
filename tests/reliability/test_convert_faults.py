"""``perception convert waymo`` under faults, run as a user would run it (a child process).

- Bad input: an empty, a truncated and a wholly corrupt file, and a directory without
  segments, exit non-zero with a summary of what was skipped and why, and leave no
  directory that looks like a converted segment.
- SIGKILL mid-run, at several points: rerunning the same command resumes, and the output is
  byte-for-byte that of an uninterrupted run; at no point does a segment directory exist
  that is incomplete (everything visible is finished).
- Out of disk space (a small tmpfs in a private mount namespace, where the machine allows
  it): a clear error naming the cause, exit 1, and every segment directory left is complete.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from perception.data import tfrecord

from . import _builders

REPO = Path(__file__).resolve().parents[2]
SEGMENTS = 5
FRAMES = 24


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "perception.cli", *args], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, **kwargs)


def _run(*args: str, timeout: float = 300) -> tuple[int, str]:
    child = _cli(*args)
    out, err = child.communicate(timeout=timeout)
    return child.returncode, out + err


@pytest.fixture(scope="module")
def segments(tmp_path_factory) -> Path:
    """SEGMENTS synthetic Waymo segments of FRAMES lidar + camera frames each."""
    src = tmp_path_factory.mktemp("segments")
    for k in range(SEGMENTS):
        payloads = [_builders.waymo_frame(k * 100 + f).SerializeToString()
                    for f in range(FRAMES)]
        tfrecord.write_records(src / f"segment_{k}.tfrecord", payloads)
    return src


@pytest.fixture(scope="module")
def reference(segments, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference") / "out"
    rc, text = _run("convert", "waymo", str(segments), str(out), "--no-progress")
    assert rc == 0, text
    return out


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def _assert_only_complete_segments(out: Path, reference: Path) -> None:
    """Every visible segment directory is finished and equal to the reference's."""
    for d in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        assert (d / "meta.json").is_file(), f"{d} looks finished but has no meta.json"
        assert _tree(d) == _tree(reference / d.name), f"{d} differs from an uninterrupted run"
    if (out / "index.json").exists():
        json.loads((out / "index.json").read_text())      # never half written


# --------------------------------------------------------------------------------------------
# Nothing to convert
# --------------------------------------------------------------------------------------------

def _bad_inputs(root: Path, segments: Path) -> dict[str, Path]:
    good = (segments / "segment_0.tfrecord").read_bytes()
    cases = {"empty": b"", "truncated": good[:5000],   # inside the first record
             "corrupt": bytes((b ^ 0x5A) for b in good[:20000]),
             "header_only": good[:12]}
    out = {}
    for name, blob in cases.items():
        path = root / f"{name}.tfrecord"
        path.write_bytes(blob)
        out[name] = path
    (root / "no_segments").mkdir()
    out["no_segments"] = root / "no_segments"
    return out


def test_nothing_converted_exits_non_zero_with_the_reasons(segments, tmp_path):
    for name, src in _bad_inputs(tmp_path, segments).items():
        out = tmp_path / f"out_{name}"
        rc, text = _run("convert", "waymo", str(src), str(out), "--no-progress")
        assert rc == 1, f"{name}: exit {rc}\n{text}"
        assert "nothing was converted" in text, f"{name}: {text}"
        if name == "no_segments":
            assert "no *.tfrecord segment found" in text
        else:
            assert f"failed {name}:" in text and "no frame could be converted" in text, text
        assert not [p for p in out.iterdir() if p.is_dir()], f"{name}: a segment dir was left"


def test_truncated_segment_keeps_its_good_frames_and_succeeds(segments, tmp_path):
    good = (segments / "segment_1.tfrecord").read_bytes()
    src = tmp_path / "cut.tfrecord"
    src.write_bytes(good[: len(good) * 2 // 3])
    rc, text = _run("convert", "waymo", str(src), str(tmp_path / "out"), "--no-progress")
    assert rc == 0, text
    meta = json.loads((tmp_path / "out" / "cut" / "meta.json").read_text())
    assert 0 < len(meta["frames"]) < FRAMES and "truncated" in meta["errors"][-1]


# --------------------------------------------------------------------------------------------
# SIGKILL and resume
# --------------------------------------------------------------------------------------------

def _kill_when(child: subprocess.Popen, out: Path, condition, timeout: float = 240) -> bool:
    """SIGKILL ``child`` once ``condition(out)`` holds; False if it finished first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            return False
        if out.is_dir() and condition(out):
            child.send_signal(signal.SIGKILL)
            child.wait()
            return True
        time.sleep(0.01)
    child.kill()
    raise AssertionError("conversion neither finished nor reached the kill point")


def _finished(out: Path) -> int:
    return sum(1 for p in out.glob("*/meta.json"))


KILL_POINTS = {
    "while_the_first_segment_is_written": lambda out: any(out.glob(".*.partial/points.f32")),
    "after_two_segments": lambda out: _finished(out) >= 2,
    "in_the_last_segment": lambda out: _finished(out) >= SEGMENTS - 1
    and any(out.glob(".*.partial")),
}


@pytest.mark.parametrize("point, workers", [(p, 1) for p in sorted(KILL_POINTS)]
                         + [("after_two_segments", 2)])
def test_sigkill_then_rerun_resumes_to_the_same_output(segments, reference, tmp_path, point,
                                                       workers):
    out = tmp_path / "out"
    args = ("convert", "waymo", str(segments), str(out), "--no-progress",
            "--workers", str(workers))
    killed = _kill_when(_cli(*args), out, KILL_POINTS[point])
    # With a pool, workers outlive the killed parent until their segment is done; what is
    # visible is still only finished segments, and the rerun waits on their segment locks
    # rather than racing them.
    _assert_only_complete_segments(out, reference)
    rc, text = _run(*args)
    assert rc == 0, text
    if killed:
        assert "skipped (already done)" in text
    assert _tree(out) == _tree(reference)
    assert not list(out.glob(".*")), f"leftovers: {list(out.glob('.*'))}"


# --------------------------------------------------------------------------------------------
# Out of disk space
# --------------------------------------------------------------------------------------------

def _mount_prefix(tmp_path: Path) -> list[str] | None:
    """A command prefix that runs its command in a private mount namespace (so the tmpfs
    vanishes with it), or None where the machine does not allow mounting."""
    if shutil.which("unshare") is None:
        return None
    probe = tmp_path / "probe"
    probe.mkdir()
    for prefix in (["unshare", "-m"], ["unshare", "-rm"]):
        done = subprocess.run([*prefix, "sh", "-c", f"mount -t tmpfs -o size=64k tmpfs {probe}"],
                              capture_output=True, timeout=30, check=False)
        if done.returncode == 0:
            return prefix
    return None


@pytest.mark.parametrize("size_kib", [8, 400])
def test_out_of_disk_space_is_a_clear_error(segments, reference, tmp_path, size_kib):
    prefix = _mount_prefix(tmp_path)
    if prefix is None:
        pytest.skip("this machine allows no tmpfs mount (not root, no user namespaces)")
    disk, copy = tmp_path / "disk", tmp_path / "copy"
    disk.mkdir()
    out = disk / "out"
    # Inside the namespace: mount a small tmpfs, convert into it, then copy what was left
    # onto the real disk for inspection (the tmpfs goes away with the namespace).
    script = (f"mount -t tmpfs -o size={size_kib}k tmpfs {disk} || exit 99; "
              f"{sys.executable} -m perception.cli convert waymo {segments} {out} "
              f"--no-progress; rc=$?; cp -a {disk} {copy}; exit $rc")
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    done = subprocess.run([*prefix, "sh", "-c", script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    text = done.stdout + done.stderr
    assert done.returncode == 1, text
    assert "No space left on device" in text and "Traceback" not in text, text
    left = copy / "out"
    if left.exists():
        _assert_only_complete_segments(left, reference)
        assert not list(left.glob(".*.partial")), "a partial directory was left behind"
