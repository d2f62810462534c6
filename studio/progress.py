"""Progress for the command line: a self-rewriting line on a terminal, nothing when piped."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def stderr_progress(min_interval_s: float = 0.2) -> Callable[[float, str], None] | None:
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
