"""benchmarks.run with names replaces only those sections of RESULTS.md."""

from __future__ import annotations

from benchmarks.run import merge_sections

OLD = ("# Benchmark results\n\nMachine: old.\n\n## A\n\na1\n\n## B\n\nb1\nnote kept by hand\n\n"
       "## C\n\nc1\n")
NEW = "# Benchmark results\n\nMachine: new.\n\n## B\n\nb2\n\n## B2\n\nnew section\n"


def test_named_sections_replaced_others_kept_in_place():
    merged = merge_sections(OLD, NEW)
    assert merged == ("# Benchmark results\n\nMachine: new.\n\n## A\n\na1\n\n## B\n\nb2\n\n"
                      "## B2\n\nnew section\n## C\n\nc1\n")


def test_a_section_with_no_predecessor_goes_last():
    merged = merge_sections(OLD, "# Benchmark results\n\n## D\n\nd\n")
    assert merged.endswith("## C\n\nc1\n## D\n\nd\n") and "## A\n\na1" in merged
