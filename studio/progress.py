"""Progress for the command line: a self-rewriting line on a terminal, nothing when piped.

A parent process that runs the CLI as a worker (``studio.subprocess_job``) sets
``DEPLOY_STUDIO_PROGRESS=lines`` and reads one ``@progress <fraction> <text>`` line per update and one
``@metric <json>`` line per live figure (training loss, held-out fidelity). To ask the worker to stop
early and keep its best result it creates the file named by ``DEPLOY_STUDIO_STOP_FILE`` (a file, not
a signal: the same on Windows, and it cannot interrupt native code half-way).
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

PROGRESS_ENV = "DEPLOY_STUDIO_PROGRESS"
PROGRESS_PREFIX = "@progress "
METRIC_PREFIX = "@metric "
STOP_FILE_ENV = "DEPLOY_STUDIO_STOP_FILE"
STOP_POLL_S = 0.2


def cli_context(workdir: Path | None = None) -> Any:
    """The TaskContext of a command-line run: progress (and metrics) on stderr, stop by file when a parent asks."""
    from studio.tasks import TaskContext

    ctx = TaskContext(on_progress=stderr_progress(), workdir=workdir, on_metric=stderr_metric())
    stop_file = os.environ.get(STOP_FILE_ENV)
    if stop_file:
        _watch_stop_file(Path(stop_file), ctx.stop_event)
    return ctx


def _watch_stop_file(path: Path, event: threading.Event) -> None:
    def watch() -> None:
        while not event.is_set():
            if path.exists():
                event.set()
                return
            time.sleep(STOP_POLL_S)

    threading.Thread(target=watch, name="stop-file", daemon=True).start()


def stderr_metric() -> Callable[[dict[str, Any]], None] | None:
    """``@metric`` lines for a parent process; nothing on a terminal (the progress line says enough)."""
    if os.environ.get(PROGRESS_ENV) != "lines":
        return None
    lock = threading.Lock()

    def write(fields: dict[str, Any]) -> None:
        with lock:
            sys.stderr.write(f"{METRIC_PREFIX}{json.dumps(fields, default=str)}\n")
            sys.stderr.flush()

    return write


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
