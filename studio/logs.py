"""The studio's log: one rotating file under the cache folder, where unexpected tracebacks go.

A user who meets "internal error" in the window or the CLI gets one line and this file's path; the traceback
a developer needs is in the file instead of lost (the window's jobs used to drop it).
"""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from studio.paths import cache_dir

LOGGER_NAME = "deploy_studio"
MAX_BYTES = 1_000_000  # a few hundred tracebacks; three files kept, so the log never grows without bound
BACKUPS = 3


def log_path() -> Path:
    return cache_dir() / "logs" / "studio.log"


def studio_logger() -> logging.Logger:
    """The studio's logger, writing to ``log_path()`` from the first call on (idempotent, per process)."""
    logger = logging.getLogger(LOGGER_NAME)
    path = log_path()
    if not any(getattr(h, "baseFilename", None) == str(path) for h in logger.handlers):
        for stale in [h for h in logger.handlers if isinstance(h, logging.handlers.RotatingFileHandler)]:
            logger.removeHandler(stale)  # the cache folder moved (a test, a changed setting): follow it
            stale.close()
        path.parent.mkdir(parents=True, exist_ok=True)
        handler = logging.handlers.RotatingFileHandler(path, maxBytes=MAX_BYTES, backupCount=BACKUPS,
                                                       encoding="utf-8", delay=True)
        handler.setFormatter(logging.Formatter("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # a host application's root handlers are not ours to fill
    return logger


def log_unexpected(what: str, exc: BaseException) -> Path:
    """Write ``exc``'s traceback under the heading ``what``; returns the file it went to."""
    studio_logger().error("%s", what, exc_info=(type(exc), exc, exc.__traceback__))
    return log_path()
