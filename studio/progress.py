"""Progress for the command line: a self-rewriting line on a terminal, nothing when piped.

A parent process that runs the CLI as a worker (``studio.subprocess_job``) sets
``DEPLOY_STUDIO_PROGRESS=lines`` and reads one ``@progress <fraction> <text>`` line per update.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

PROGRESS_ENV = "DEPLOY_STUDIO_PROGRESS"
PROGRESS_PREFIX = "@progress "


def stderr_progress(min_interval_s: float = 0.2) -> Callable[[float, str], None] | None:
    if os.environ.get(PROGRESS_ENV) == "lines":
        return _line_progress(min_interval_s)
    if not sys.stderr.isatty():
        return None
    last = [0.0]

    def show(fraction: float, text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= min_interval_s or fraction >= 1.0:
            last[0] = now
            sys.stderr.write(f"\r[{fraction * 100:5.1f}%] {text[:70]:<70}")
            if fraction >= 1.0:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return show


def _line_progress(min_interval_s: float) -> Callable[[float, str], None]:
    last = [0.0]

    def emit(fraction: float, text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= min_interval_s or fraction >= 1.0:
            last[0] = now
            sys.stderr.write(f"{PROGRESS_PREFIX}{fraction:.4f} {' '.join(text.split())}\n")
            sys.stderr.flush()

    return emit
