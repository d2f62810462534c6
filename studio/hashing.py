"""Content hashes, so that caches and trust decisions follow the bytes, never the file name."""

from __future__ import annotations

import hashlib
from pathlib import Path

_CHUNK = 1 << 20


def sha256_file(*paths: Path) -> str:
    """SHA-256 of the concatenated contents of ``paths`` (several files form one model, e.g. Darknet)."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    return digest.hexdigest()
