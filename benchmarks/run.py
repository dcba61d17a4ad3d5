"""Run every benchmark (or those named) and write benchmarks/RESULTS.md.

Usage: ``python -m benchmarks.run [name ...]`` where a name is the part after ``bench_``.
With names, only their sections of an existing RESULTS.md are replaced (or added); the other
sections stay as they were.
"""

from __future__ import annotations

import argparse
import importlib
import re
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
    text = report.markdown()
    if args.names and args.out.is_file():
        text = merge_sections(args.out.read_text(), text)
    args.out.write_text(text)
    print(f"\nwrote {args.out}")
    return 1 if failed else 0


def _split_sections(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(preamble, [(title line, section text)]) of a markdown report split at ``## `` lines."""
    parts = re.split(r"(?m)^(?=## )", text)
    preamble, sections = parts[0], parts[1:]
    return preamble, [(section.split("\n", 1)[0], section) for section in sections]


def merge_sections(old: str, new: str) -> str:
    """``old`` with each section that ``new`` also has replaced by new's; new's other sections
    go right after the section that precedes them in ``new`` (at the end when none does). The
    preamble (machine line) is new's."""
    preamble, new_sections = _split_sections(new)
    _, old_sections = _split_sections(old)
    fresh = dict(new_sections)
    merged = [(title, fresh.get(title, body)) for title, body in old_sections]
    previous = None
    for title, body in new_sections:
        titles = [t for t, _ in merged]
        if title not in titles:
            at = titles.index(previous) + 1 if previous in titles else len(merged)
            merged.insert(at, (title, body))
        previous = title
    return preamble + "".join(body if body.endswith("\n") else body + "\n"
                              for _, body in merged)


if __name__ == "__main__":
    sys.exit(main())
