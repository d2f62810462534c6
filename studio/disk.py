"""A full disk (or a file-size limit) while writing: one clear line instead of an internal error.

Converters fail in their own ways when a write fails: an ``OSError`` with ENOSPC from Python, or a
RuntimeError from native code whose text says "No space left on device". Both become a StudioError
naming the folder and how much room is left there.
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path

from studio.errors import StudioError

DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}
_DISK_FULL_TEXTS = ("no space left on device", "disk quota exceeded", "file too large")


def _free_mb(path: Path) -> float | None:
    for candidate in (path, *path.parents):
        try:
            return shutil.disk_usage(candidate).free / 1e6
        except OSError:
            continue
    return None


def disk_full_error(exc: BaseException, folder: Path | None = None) -> StudioError | None:
    """The StudioError to raise for ``exc`` when it is a full disk; None when it is something else."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:  # the cause may be wrapped by a converter
        seen.add(id(current))
        full = (isinstance(current, OSError) and current.errno in DISK_FULL_ERRNOS) or any(
            text in str(current).lower() for text in _DISK_FULL_TEXTS)
        if full:
            # The file that failed names the full disk best (a cache may fill before the output folder).
            filename = getattr(current, "filename", None)
            where = Path(filename).parent if filename else folder
            free = _free_mb(where) if where is not None else None
            room = f" ({free:,.1f} MB free there with the partial files removed; it needs more)" if free else ""
            return StudioError(f"the disk is full: writing ran out of space{room}; nothing was published", path=where,
                               fix="free some space or choose a folder on another disk, then try again")
        current = current.__cause__ or current.__context__
    return None
