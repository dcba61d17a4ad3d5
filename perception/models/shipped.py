"""The weights that ship inside the package (``perception/weights/``), each with a card.

A card (``<name>.card.yaml``) gives the config, the training data, the epochs, the held-out
metrics, the date and the sha256 of the weights file. Loading the shipped model checks the
file against the card first, so a missing, truncated or replaced file is a clear error that
names the file and the expected sha256, never an attempt to unpickle it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import yaml

from ..errors import DataError

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_MODEL = "sim_fusion"
"""The model every entry point uses by default: camera + lidar + radar, trained on the
simulator with modality dropout."""


def card_path(name: str = DEFAULT_MODEL) -> Path:
    return WEIGHTS_DIR / f"{name}.card.yaml"


def read_card(name: str = DEFAULT_MODEL) -> dict:
    """The card of shipped model ``name`` as a dict."""
    path = card_path(name)
    if not path.is_file():
        known = sorted(p.name.removesuffix(".card.yaml") for p in WEIGHTS_DIR.glob("*.card.yaml"))
        raise DataError(f"no shipped model named {name!r} (shipped: {known or 'none'})",
                        source=str(path))
    try:
        card = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DataError(f"unreadable model card: {exc}", source=str(path)) from None
    if not isinstance(card, dict) or not isinstance(card.get("sha256"), str) \
            or not isinstance(card.get("file"), str):
        raise DataError("model card lacks 'file' or 'sha256'", source=str(path))
    return card


def sha256_of(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def hashed_card(name: str = DEFAULT_MODEL) -> dict:
    """The card of shipped model ``name`` with ``card_sha256``, the card file's own sha256 (an
    export records both, so it names exactly the model it came from)."""
    return dict(read_card(name), card_sha256=sha256_of(card_path(name)))


def shipped_weights_path(name: str = DEFAULT_MODEL, verify: bool = True) -> Path:
    """Path of shipped model ``name``'s weights, checked against the sha256 on its card.

    Raises:
        DataError: no such model, the file is missing, or its sha256 differs from the card's
            (the message names the file and the expected sha256).
    """
    card = read_card(name)
    path = WEIGHTS_DIR / card["file"]
    expected = card["sha256"]
    if not path.is_file():
        raise DataError(f"shipped weights are missing (expected sha256 {expected}); "
                        f"reinstall the package or restore the file", source=str(path))
    if verify:
        actual = sha256_of(path)
        if actual != expected:
            raise DataError(f"shipped weights are corrupt or replaced: sha256 {actual}, "
                            f"expected {expected}", source=str(path))
    return path
