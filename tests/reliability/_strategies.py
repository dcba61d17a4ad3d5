"""Hypothesis strategies shared by the fuzz targets: byte mutations and hostile numbers."""

from __future__ import annotations

import copy
import math

from hypothesis import strategies as st

# Values that break naive numeric code: non-finite, huge, tiny, signed zero, int64 edges.
EXTREME_FLOATS = (math.nan, math.inf, -math.inf, 1e308, -1e308, 1e-308, -0.0, 0.0, 1e20,
                  -1e20, 2.0**63, -(2.0**63), 3.4e38, 1e-45)
EXTREME_INTS = (0, -1, 1, 2**31 - 1, -(2**31), 2**32, 2**63 - 1, -(2**63), 2**64 - 1)


def hostile_floats() -> st.SearchStrategy[float]:
    return st.one_of(st.sampled_from(EXTREME_FLOATS), st.floats(allow_nan=True,
                                                                 allow_infinity=True),
                     st.floats(-100.0, 100.0))


def hostile_ints(lo: int = -(2**63), hi: int = 2**63 - 1) -> st.SearchStrategy[int]:
    return st.one_of(st.sampled_from([v for v in EXTREME_INTS if lo <= v <= hi]),
                     st.integers(lo, hi), st.integers(max(lo, -3), min(hi, 70)))


@st.composite
def mutated_bytes(draw, base: bytes, max_ops: int = 4) -> bytes:
    """``base`` with up to ``max_ops`` random edits: bit flips, byte overwrites, deletions,
    insertions, duplicated spans and truncation (most mutants stay close to valid, so they
    get past the first check and reach the decoders behind it)."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, max_ops))):
        kind = draw(st.sampled_from(["flip", "set", "delete", "insert", "duplicate",
                                     "truncate"]))
        n = len(data)
        pos = draw(st.integers(0, max(n - 1, 0)))
        if kind == "flip" and n:
            data[pos] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and n:
            data[pos] = draw(st.sampled_from([0x00, 0xFF, 0x7F, 0x80, 0x01]))
        elif kind == "delete" and n:
            del data[pos:pos + draw(st.integers(1, 16))]
        elif kind == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "duplicate" and n:
            span = draw(st.integers(1, 64))
            data[pos:pos] = data[pos:pos + span]
        elif kind == "truncate":
            del data[pos:]
    return bytes(data)


def json_values(max_leaves: int = 6) -> st.SearchStrategy:
    """Any JSON value, NaN and infinities included (Python's json writes and reads them)."""
    scalars = st.one_of(st.none(), st.booleans(), hostile_ints(), hostile_floats(),
                        st.text(max_size=12))
    return st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=max_leaves)


def _paths(tree, prefix=()):
    """Every (path, value) in a JSON tree, containers included."""
    yield prefix, tree
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(tree, list):
        for k, value in enumerate(tree):
            yield from _paths(value, prefix + (k,))


@st.composite
def mutated_tree(draw, base, values=None):
    """A deep copy of ``base`` with 1-3 edits: a value replaced by any JSON value, a key or
    list item deleted."""
    tree = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p, _ in _paths(tree) if p]
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        parent = tree
        for key in path[:-1]:
            parent = parent[key]
        if draw(st.integers(0, 3)) == 0:
            del parent[path[-1]]
        else:
            # a copy: a strategy may hand out one shared list or dict (st.sampled_from does),
            # and two edits placing it inside itself would make the tree a cycle
            parent[path[-1]] = copy.deepcopy(draw(values if values is not None else
                                                  json_values()))
    return tree
