"""Run every benchmark (or those named) and write benchmarks/RESULTS.md.

Usage: ``python -m benchmarks.run [name ...]`` where a name is the part after ``bench_``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from pathlib import Path

from .harness import Report

HERE = Path(__file__).resolve().parent


def available() -> list[str]:
    return sorted(p.stem[len("bench_"):] for p in HERE.glob("bench_*.py"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of "
                                                 f"{available()})")
    parser.add_argument("--out", type=Path, default=HERE / "RESULTS.md")
    args = parser.parse_args(argv)
    names = args.names or available()
    unknown = sorted(set(names) - set(available()))
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; available: {available()}")
    report = Report()
    failed = []
    for name in names:
        t0 = time.perf_counter()
        module = importlib.import_module(f"benchmarks.bench_{name}")
        try:
            module.run(report)
        except Exception:  # one broken benchmark must not hide the others' results
            failed.append(name)
            report.section(f"{name}: FAILED")
            report.line("```\n" + traceback.format_exc() + "```")
        print(f"[bench] {name} took {time.perf_counter() - t0:.1f} s", flush=True)
    args.out.write_text(report.markdown())
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
