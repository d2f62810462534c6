"""Long work off the GUI thread: a Qt-free function ``fn(ctx)`` on a Python thread, reported by signals.

The engine's jobs take a ``TaskContext``; here its progress callback becomes a (throttled) Qt signal,
Cancel sets its event, and whatever the function raises arrives as a one-line message: a failing job
never takes the window down.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.errors import StudioError
from studio.tasks import Cancelled, TaskContext

PROGRESS_INTERVAL_S = 0.1


class Job(QObject):
    """One run of ``fn(ctx)``. Signals are emitted from the worker thread and queued to the GUI."""

    progress = Signal(float, str)
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()  # after any of the three above

    def __init__(self, title: str, fn: Callable[[TaskContext], Any], parent: QObject | None = None):
        super().__init__(parent)
        self.title, self.fn = title, fn
        self.ctx = TaskContext(on_progress=self._on_progress)
        self._last = 0.0
        self._thread: threading.Thread | None = None
        self.result: Any = None
        self.error: str | None = None

    def start(self) -> Job:
        self._thread = threading.Thread(target=self._run, name=f"job-{self.title}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.ctx.cancel()

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _on_progress(self, fraction: float, text: str) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S or fraction >= 1.0:
            self._last = now
            self._emit(self.progress, fraction, text)

    def _emit(self, signal: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the window went away while the job ran: nobody listens
            signal.emit(*args)

    def _run(self) -> None:
        try:
            self.result = self.fn(self.ctx)
        except Cancelled:
            self._emit(self.cancelled)
        except StudioError as exc:
            self.error = str(exc)
            self._emit(self.failed, self.error)
        except Exception as exc:  # a bug in a plugin or converter: reported, the window stays up
            first = (str(exc).splitlines() or [""])[0][:300]
            self.error = f"{self.title} failed: {type(exc).__name__}: {first}"
            self._emit(self.failed, self.error)
        else:
            self._emit(self.succeeded, self.result)
        finally:
            self._emit(self.finished)


def cancel_and_wait(jobs: list[Job], timeout: float) -> None:
    """Cancel every job, then give each up to ``timeout`` seconds to unwind (closing a view or window)."""
    for job in jobs:
        job.cancel()
    for job in jobs:
        job.wait(timeout)
