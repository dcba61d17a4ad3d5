"""The fuzzing contract shared by every target of the reliability suite.

Each target feeds generated inputs to one parser or entry point through :func:`contract`:

- it may accept the input, or refuse it with a :class:`perception.errors.PerceptionError`
  (counted per error type);
- anything else fails the test: an untyped exception (``KeyError``, ``LinAlgError``,
  ``OverflowError`` from deep inside NumPy or torch), a call that runs past :data:`TIMEOUT_S`
  (a hang), or one that allocates past :data:`MEMORY_CAP_BYTES` (unbounded memory; the cap
  is enforced with ``RLIMIT_DATA`` so that such an input fails fast instead of exhausting the
  machine).

Two modes, chosen by the environment:

- CI (default): :data:`EXAMPLES` = 200 inputs per target, derandomized (a fixed seed), so a
  CI failure reproduces exactly;
- full (``make reliability``): ``PERCEPTION_FUZZ_EXAMPLES=10000``, a fresh seed per run
  (``PERCEPTION_FUZZ_SEED`` pins one).

With ``PERCEPTION_FUZZ_REPORT=FILE`` the per-target tallies (inputs, accepted, refused by
error type) are merged into that JSON file at the end of the session; ``docs/reliability.md``
quotes them.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import time
from collections import Counter, defaultdict
from pathlib import Path

from hypothesis import HealthCheck, settings

from perception.errors import PerceptionError

EXAMPLES = int(os.environ.get("PERCEPTION_FUZZ_EXAMPLES", "200"))
FULL = EXAMPLES >= 10_000
SEED = os.environ.get("PERCEPTION_FUZZ_SEED")
TIMEOUT_S = 20.0
MEMORY_CAP_BYTES = 2 << 30
REPORT_ENV = "PERCEPTION_FUZZ_REPORT"


def fuzz_settings(examples: int | None = None, ci_examples: int | None = None,
                  **overrides) -> settings:
    """Hypothesis settings of one target: ``examples`` (default :data:`EXAMPLES`) inputs,
    or ``ci_examples`` for a slow target in CI mode (when no count was asked for),
    no per-example deadline (the watchdog in :func:`contract` bounds each call), no example
    database (nothing is written into the repository), derandomized unless in full mode."""
    if examples is None and ci_examples is not None and "PERCEPTION_FUZZ_EXAMPLES" not in \
            os.environ:
        examples = ci_examples
    kwargs = dict(
        max_examples=examples or EXAMPLES, deadline=None, database=None,
        derandomize=not FULL and SEED is None, print_blob=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                               HealthCheck.filter_too_much, HealthCheck.large_base_example,
                               HealthCheck.function_scoped_fixture])
    kwargs.update(overrides)
    return settings(**kwargs)


def seeded(test):
    """Apply ``PERCEPTION_FUZZ_SEED`` to a Hypothesis test when it is set."""
    if SEED is None:
        return test
    from hypothesis import seed

    return seed(int(SEED))(test)


class Hang(BaseException):
    """Raised by the watchdog inside a call that ran past its time (BaseException so that no
    ``except Exception`` in the code under test swallows it)."""


class _Tally:
    def __init__(self) -> None:
        self.inputs = 0
        self.accepted = 0
        self.skipped = 0
        self.refused: Counter[str] = Counter()
        self.messages_skipped: Counter[str] = Counter()
        self.seconds = 0.0

    def to_json(self) -> dict:
        out = {"inputs": self.inputs, "accepted": self.accepted, "skipped": self.skipped,
               "refused": dict(sorted(self.refused.items())),
               "seconds": round(self.seconds, 2)}
        if self.messages_skipped:
            out["messages_skipped"] = dict(sorted(self.messages_skipped.items()))
        return out


TALLIES: dict[str, _Tally] = defaultdict(_Tally)


@contextlib.contextmanager
def _watchdog(seconds: float, what: str):
    def fire(signum, frame):
        raise Hang(f"{what}: still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _data_segment_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmData:"):
            return int(line.split()[1]) * 1024
    return 0


@contextlib.contextmanager
def memory_cap(extra_bytes: int = MEMORY_CAP_BYTES):
    """Limit the data segment (heap and private mappings) to its current size plus
    ``extra_bytes`` while the block runs: a larger allocation fails with MemoryError."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    limit = _data_segment_bytes() + extra_bytes
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def contract(target: str, fn, *args, timeout_s: float = TIMEOUT_S, known=None, **kwargs):
    """Call ``fn(*args, **kwargs)`` under the contract; returns its result, or None when it
    refused the input with a PerceptionError (counted under ``target``).

    ``known(exc) -> str | None`` names an untyped failure that is already reported and pinned
    by a strict xfail regression test (in code this suite may not change); such a failure is
    counted under ``known: NAME`` instead of failing, so the fuzzer goes on looking for new
    ones."""
    tally = TALLIES[target]
    tally.inputs += 1
    t0 = time.perf_counter()
    try:
        with memory_cap(), _watchdog(timeout_s, target):
            result = fn(*args, **kwargs)
    except PerceptionError as exc:
        tally.refused[type(exc).__name__] += 1
        _check_message(exc)
        return None
    except Hang as exc:
        raise AssertionError(f"hang: {exc}") from None
    except MemoryError as exc:
        raise AssertionError(f"{target}: unbounded memory (over "
                             f"{MEMORY_CAP_BYTES >> 20} MiB more): {exc}") from exc
    except Exception as exc:
        name = known(exc) if known is not None else None
        if name is not None:
            tally.refused[f"known: {name}"] += 1
            return None
        raise AssertionError(f"{target}: untyped {type(exc).__module__}."
                             f"{type(exc).__qualname__}: {exc}") from exc
    finally:
        tally.seconds += time.perf_counter() - t0
    tally.accepted += 1
    return result


def count_skip(target: str) -> None:
    """Count an input the harness itself skipped (e.g. one that could not be built)."""
    TALLIES[target].skipped += 1


def count_skipped_messages(target: str, reasons) -> None:
    """Count the messages an accepted input's reader skipped, by reason (a log reader skips a
    message it cannot decode, counts it and goes on; ``reasons``: ``{reason: count}``)."""
    TALLIES[target].messages_skipped.update(reasons)


def _check_message(exc: PerceptionError) -> None:
    text = str(exc)
    assert text.strip(), f"{type(exc).__name__} with an empty message"


def write_report() -> None:
    path = os.environ.get(REPORT_ENV)
    if not path or not TALLIES:
        return
    path = Path(path)
    report = json.loads(path.read_text()) if path.is_file() else {}
    report.setdefault("targets", {})
    for name, tally in TALLIES.items():
        report["targets"][name] = {**tally.to_json(), "mode": "full" if FULL else "ci",
                                   "examples_setting": EXAMPLES}
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=1, sort_keys=True))
    os.replace(tmp, path)
