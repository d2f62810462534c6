"""Model files and data that travel to the search's workers through Ray's object store.

A model given as ``zoo:NAME`` travels as its name (every node with the studio installed has the zoo's
packages); a file or folder travels as a tar of its bytes, unpacked once per machine into a folder named by
the tar's hash (atomically: unpacked beside it, then renamed), so a worker on another machine opens the same
bytes the user chose.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from studio.errors import BadInputError

LIMIT_BYTES = 4_000_000_000  # beyond this a search's object store would hold more than the data is worth


@dataclass(frozen=True)
class Packed:
    """What a worker needs to find one input again: a zoo name, or the name inside a tar with its hash."""

    name: str  # "zoo:..." or the file/folder name inside the tar
    sha256: str | None = None  # None for a zoo model


def pack(spec: str, extra: tuple[Path, ...] = ()) -> tuple[Packed, bytes | None]:
    """(how to find it, the tar's bytes) for a model spec or a data path; ``extra`` files travel beside it (an
    OpenVINO .xml's .bin)."""
    if spec.startswith("zoo:"):
        return Packed(spec), None
    path = Path(spec).expanduser().resolve()
    members = [path, *[Path(p).resolve() for p in extra if Path(p).resolve() != path]]
    total = sum(_size(p) for p in members)
    if total > LIMIT_BYTES:
        raise BadInputError(f"{total / 1e9:.1f} GB is more than a search sends to its workers "
                            f"({LIMIT_BYTES / 1e9:.0f} GB)", path=path, fix="give a smaller data folder")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for member in members:
            tar.add(member, arcname=member.name)
    blob = buffer.getvalue()
    return Packed(path.name, hashlib.sha256(blob).hexdigest()), blob


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def unpack(packed: Packed, blob: bytes | None) -> str:
    """The spec a worker opens: the zoo name, or the path of the unpacked copy on this machine."""
    if packed.sha256 is None:
        return packed.name
    root = Path(tempfile.gettempdir()) / "deploy-studio-search" / packed.sha256
    if not root.exists():
        if blob is None or hashlib.sha256(blob).hexdigest() != packed.sha256:
            raise BadInputError(f"the bytes of {packed.name} did not arrive intact", fix="run the search again")
        root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{packed.sha256[:12]}-", dir=root.parent))
        try:
            with tarfile.open(fileobj=io.BytesIO(blob), mode="r") as tar:
                tar.extractall(staging, filter="data")  # no links out, no absolute names
            os.rename(staging, root)
        except OSError:
            shutil.rmtree(staging, ignore_errors=True)
            if not root.exists():  # another worker on this machine may have won the rename
                raise
    return str(root / packed.name)
