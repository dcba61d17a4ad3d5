"""The output directory of a replay: written whole or not at all, safe to kill and rerun.

A replay writes every output into a staging directory ``OUT/.replay.partial/``, and only when
all of them are written (and synced to disk) moves them into ``OUT``, ``summary.json`` last.
``summary.json`` is the mark of a finished replay:

* a replay killed (SIGKILL, power loss) at any point leaves ``OUT`` as it was before it
  started, plus the staging directory, which the next run into ``OUT`` removes; the finished
  outputs of an earlier run are never touched until the new ones are complete;
* while outputs are moved into place, the earlier run's ``summary.json`` is removed first, so
  a directory with a ``summary.json`` always holds one run's complete set of outputs;
* a replay that fails (a bad log, a full disk) removes its staging directory and leaves
  ``OUT`` unchanged;
* an exclusive lock (``OUT/.replay.lock``, ``flock``, removed on release) refuses a second
  replay into the same ``OUT`` while one runs (the kernel releases it when a process dies).

Rerunning a killed replay with the same arguments replays the log again: its bag and
``metrics.json`` are then byte-identical to those of an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from ..errors import ConfigError
from .output_bag import replace_path

STAGING = ".replay.partial"
LOCK = ".replay.lock"
FINISHED_MARK = "summary.json"
OUTPUT_NAMES = ("bag", "metrics.json", "replay.gif", "summary.md", FINISHED_MARK)
"""Every output a replay writes; those an earlier run left and this one does not write (e.g.
``metrics.json`` of a log with ground truth) are removed when the new outputs are moved in."""


class StagedOutputs:
    """Lock ``out``, give a fresh staging directory (:attr:`path`), and :meth:`commit` it.

    Use as a context manager: leaving it without a commit (an exception) removes the staging
    directory; the lock is released either way.
    """

    def __init__(self, out: Path):
        self.out = Path(out)
        self.path = self.out / STAGING
        self._lock_fd: int | None = None

    def __enter__(self) -> StagedOutputs:
        self.out.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock(self.out / LOCK)
        try:
            shutil.rmtree(self.path, ignore_errors=True)     # left by a killed run
            self.path.mkdir()
        except BaseException:
            self._release()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            shutil.rmtree(self.path, ignore_errors=True)
        finally:
            self._release()

    def commit(self) -> None:
        """Sync the staged outputs, then move them into ``out`` (the finished mark last)."""
        staged = sorted(p.name for p in self.path.iterdir() if not p.name.startswith("."))
        for name in staged:
            _sync_tree(self.path / name)
        for name in (FINISHED_MARK, *[n for n in OUTPUT_NAMES if n not in staged]):
            target = self.out / name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                with contextlib.suppress(FileNotFoundError):
                    target.unlink()
        _sync_dir(self.out)
        for name in sorted(staged, key=lambda n: n == FINISHED_MARK):
            replace_path(self.path / name, self.out / name)
        _sync_dir(self.out)

    def _release(self) -> None:
        if self._lock_fd is None:
            return
        try:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.out / LOCK)
        finally:
            os.close(self._lock_fd)
            self._lock_fd = None


def _lock(path: Path) -> int:
    """An exclusive ``flock`` on ``path`` (created), or ConfigError when another process holds
    it. A lock file unlinked by its previous holder between our open and our lock is opened
    again, so two processes never both hold it."""
    while True:
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError(f"--out {path.parent}: another replay is writing into this "
                              f"directory (it holds {path.name}); wait for it or choose "
                              f"another --out") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def _sync_tree(path: Path) -> None:
    """``fsync`` a file, or every file and directory under a directory."""
    if path.is_dir():
        for child in sorted(path.rglob("*")):
            if child.is_file():
                _sync_file(child)
        for directory in [p for p in path.rglob("*") if p.is_dir()] + [path]:
            _sync_dir(directory)
    else:
        _sync_file(path)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
