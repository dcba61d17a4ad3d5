"""perception.processes.settle_allocator: large blocks stay mapped after the first one is freed."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

PROBE = textwrap.dedent("""
    import ctypes, sys
    from perception.processes import settle_allocator

    class MallInfo2(ctypes.Structure):
        _fields_ = [(name, ctypes.c_size_t) for name in (
            "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = MallInfo2
    libc.malloc.restype = ctypes.c_void_p
    if sys.argv[1] == "settle":
        assert settle_allocator() is not None
    mapped = []
    for _ in range(3):
        block = libc.malloc(300 * 1024)
        mapped.append(libc.mallinfo2().hblkhd)
        libc.free(ctypes.c_void_p(block))
    print(mapped[0], mapped[2])
""")


def _mapped_bytes(mode: str) -> tuple[int, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], check=True, capture_output=True,
                         text=True).stdout.split()
    return int(out[0]), int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt is Linux-only")
def test_settled_allocator_maps_every_large_block():
    try:
        first_plain, third_plain = _mapped_bytes("plain")
    except subprocess.CalledProcessError as exc:  # no mallinfo2: not glibc 2.33 or newer
        pytest.skip(f"no glibc mallinfo2 here: {exc.stderr.strip()[-200:]}")
    # glibc's default: once a mapped block is freed, the next one of its size comes from a heap
    assert third_plain < first_plain
    first, third = _mapped_bytes("settle")
    assert third == first, "a 300 KiB block after the first was not mapped"
