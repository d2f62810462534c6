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
    if os.environ.get(PROGRESS_ENV) == "lines":  # a parent process parses these
        return _throttled(lambda f, t: f"{PROGRESS_PREFIX}{f:.4f} {' '.join(t.split())}\n", min_interval_s)
    if not sys.stderr.isatty():
        return None
    return _throttled(lambda f, t: f"\r[{f * 100:5.1f}%] {t[:70]:<70}" + ("\n" if f >= 1.0 else ""), min_interval_s)


def _throttled(render: Callable[[float, str], str], min_interval_s: float) -> Callable[[float, str], None]:
    """Write ``render(fraction, text)`` to stderr at most every ``min_interval_s`` (and always at 100 %)."""
    last = [0.0]

    def write(fraction: float, text: str) -> None:
        now = time.monotonic()
        if now - last[0] >= min_interval_s or fraction >= 1.0:
            last[0] = now
            sys.stderr.write(render(fraction, text))
            sys.stderr.flush()

    return write
