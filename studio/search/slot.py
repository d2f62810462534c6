"""One exclusive measurement slot per machine: latency is never timed while another trial works on its cores.

Building and judging a variant hold the machine's slot *shared*; timing holds it *exclusively*, so a timing run
waits until every build on this machine has finished its current phase, and no build starts until the timing is
done. Two ``flock`` files in the machine's temp folder, so every process of every search on this machine (Ray
workers included) takes part, and a killed process releases its hold with its file descriptors:

- ``gate``: a timing run holds it while it waits for, and holds, the slot; a build passes through it before
  taking its shared hold. So a waiting timing run is not starved by builds that keep starting (writer priority).
- ``slot``: shared by builds, exclusive for timing.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def slot_folder() -> Path:
    folder = Path(os.environ.get("DEPLOY_STUDIO_SLOT_DIR") or tempfile.gettempdir()) / "deploy-studio-measure"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _open(name: str) -> int:
    return os.open(slot_folder() / name, os.O_RDWR | os.O_CREAT, 0o666)


@contextmanager
def building() -> Iterator[None]:
    """Hold this machine's slot shared: work that uses the cores (building, judging)."""
    gate, slot = _open("gate"), _open("slot")
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)  # wait behind any timing run that is waiting or running
        fcntl.flock(slot, fcntl.LOCK_SH)
        fcntl.flock(gate, fcntl.LOCK_UN)
        yield
    finally:
        os.close(slot)  # closing releases the flock
        os.close(gate)


@contextmanager
def measuring(waited: dict[str, float] | None = None) -> Iterator[None]:
    """Hold this machine's slot exclusively: timing. ``waited['seconds']`` receives how long it waited."""
    gate, slot = _open("gate"), _open("slot")
    start = time.perf_counter()
    try:
        fcntl.flock(gate, fcntl.LOCK_EX)
        fcntl.flock(slot, fcntl.LOCK_EX)
        if waited is not None:
            waited["seconds"] = time.perf_counter() - start
        yield
    finally:
        os.close(slot)
        os.close(gate)
