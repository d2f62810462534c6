"""Write a file so that a crash or a kill at any moment leaves the old version or the new, never half."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """A temporary file beside ``path``, flushed to disk, then renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


@contextlib.contextmanager
def staged_file(target: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``target`` for a library to write to; renamed over ``target`` if the block
    ends without an exception, removed either way. ``suffix`` is for writers that pick a format by it."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


@contextlib.contextmanager
def scratch_folder(beside: Path) -> Iterator[Path]:
    """A hidden folder on the same file system as ``beside`` (so ``publish`` is a rename), removed on exit."""
    beside.parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{beside.name}.", dir=beside.parent))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def publish(produced: Path, target: Path) -> None:
    """Rename a finished file or folder into place. A file replaces atomically; an existing folder is moved
    aside first and removed after, so a reader sees the old folder or the new, never a mix."""
    if target.is_dir() and not target.is_symlink():
        aside = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, aside)
        os.replace(produced, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(produced, target)
