"""Which torch and spconv builds `make setup` installs (sourced by .ci/setup.sh).

    python3 .ci/cuda_select.py torch REQUEST HAVE_TORCH(0|1) INSTALLED_TORCH_CUDA
        -> shell assignments TORCH_ACTION (keep | install) and TORCH_INDEX_URL
    python3 .ci/cuda_select.py spconv TORCH_CUDA
        -> the spconv distribution for a torch built with TORCH_CUDA ('' for CPU)

REQUEST is the CUDA variable of `make setup CUDA=...`: empty or ``auto`` (keep a torch that is
already there, CUDA or not; else the pinned torch from the default index), ``cpu`` (a CPU
torch), or a CUDA version such as ``12.6`` (the pinned torch built for that CUDA, from the
PyTorch index ``cu126``). spconv follows the torch that ends up installed: its CPU build for
a CPU torch, else the newest ``spconv-cuXXX`` wheel whose CUDA is not newer than torch's
(CUDA 13 torches get ``spconv-cu126``: the wheel brings its own runtime and needs only the
driver). No third-party import: runs with any python3.
"""

from __future__ import annotations

import sys

SPCONV_CUDA = ((11, 4), (11, 8), (12, 1), (12, 4), (12, 6))
"""CUDA versions with an spconv 2.3.8 wheel (spconv-cu114 ... spconv-cu126)."""
TORCH_INDEX = "https://download.pytorch.org/whl"


def parse_cuda(text: str) -> tuple[int, int] | None:
    """``"12.6"`` -> (12, 6); empty, ``None`` or ``cpu`` -> None."""
    text = (text or "").strip().lower().removeprefix("cu")
    if text in ("", "none", "cpu"):
        return None
    if "." not in text and text.isdigit() and len(text) >= 3:  # "126"
        text = f"{text[:-1]}.{text[-1]}"
    major, _, minor = text.partition(".")
    if not (major.isdigit() and minor.split(".")[0].isdigit()):
        raise ValueError(f"CUDA: expected a version such as 12.6, 'cpu' or 'auto', got {text!r}")
    return int(major), int(minor.split(".")[0])


def spconv_package(torch_cuda: str | None) -> str:
    """The spconv distribution matching a torch built with ``torch_cuda`` (None: CPU)."""
    cuda = parse_cuda(torch_cuda or "")
    if cuda is None:
        return "spconv"
    usable = [v for v in SPCONV_CUDA if v <= cuda]
    if not usable:
        raise ValueError(f"no spconv 2.3.8 wheel for CUDA {cuda[0]}.{cuda[1]} (oldest: 11.4)")
    major, minor = usable[-1]
    return f"spconv-cu{major}{minor}"


def torch_plan(request: str, installed_cuda: str | None, have_torch: bool
               ) -> tuple[str, str]:
    """(action, index URL): ``keep`` the installed torch, or ``install`` the pinned one from
    the index (empty URL: the default index)."""
    req = (request or "").strip().lower()
    if req in ("", "auto"):
        return ("keep", "") if have_torch else ("install", "")
    want = parse_cuda(req)
    have = parse_cuda(installed_cuda or "") if have_torch else None
    if want is None:  # cpu
        if have_torch and have is None:
            return "keep", ""
        return "install", f"{TORCH_INDEX}/cpu"
    if have_torch and have == want:
        return "keep", ""
    return "install", f"{TORCH_INDEX}/cu{want[0]}{want[1]}"


def main(argv: list[str]) -> int:
    if argv[:1] == ["torch"] and len(argv) == 4:
        action, url = torch_plan(argv[1], argv[3] if argv[2] == "1" else "", argv[2] == "1")
        print(f"TORCH_ACTION={action}\nTORCH_INDEX_URL={url}")
        return 0
    if argv[:1] == ["spconv"] and len(argv) == 2:
        print(spconv_package(argv[1]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except ValueError as exc:
        print(f"cuda_select: {exc}", file=sys.stderr)
        sys.exit(2)
