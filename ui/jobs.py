"""Long work off the GUI thread: a Qt-free function ``fn(ctx)`` on a Python thread, reported by signals.

The engine's jobs take a ``TaskContext``; here its progress callback becomes a (throttled) Qt signal,
Cancel sets its event, and whatever the function raises arrives as a one-line message: a failing job
never takes the window down.

Figures the function publishes (``ctx.metric``: training loss, held-out fidelity) arrive as the ``metric``
signal, one per figure and unthrottled (a chart must not lose its best point; it redraws on its own
timer). ``request_stop`` is "Stop and keep best": training ends early and the job goes on to publish.

Cancel is answered within ``ABANDON_AFTER_S`` whatever the function is doing: work in a child process
is killed at once (studio.subprocess_job); work in this process stops at its next cancellation check,
and if that check does not come in time (a native call that runs for seconds), the job is abandoned —
reported cancelled, its thread left to unwind in the background with its result discarded, so the
user has the window back.

``JobRunner`` holds one widget's jobs (the window's, a language view's, the optimize panel's checks):
start with done / error / cancelled callbacks, the current job's progress, cancel, and the shutdown of
every job still running, its own and those of the runners it adopted, when the window closes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

from studio.errors import StudioError, first_line
from studio.logs import log_unexpected
from studio.tasks import Cancelled, TaskContext

PROGRESS_INTERVAL_S = 0.1
ABANDON_AFTER_S = 0.8


class Job(QObject):
    """One run of ``fn(ctx)``. Signals are emitted from the worker thread and queued to the GUI."""

    progress = Signal(float, str)
    metric = Signal(dict)  # ctx.metric(**fields): {"kind": "train", "step": …, "loss" or "fidelity": …}
    succeeded = Signal(object)
    failed = Signal(str)
    cancelled = Signal()
    finished = Signal()  # after any of the three above

    def __init__(self, title: str, fn: Callable[[TaskContext], Any], parent: QObject | None = None):
        super().__init__(parent)
        self.title, self.fn = title, fn
        self.ctx = TaskContext(on_progress=self._on_progress, on_metric=self._on_metric)
        self._last = 0.0
        self._thread: threading.Thread | None = None
        self.result: Any = None
        self.error: str | None = None
        self._ended = threading.Event()  # set once cancelled/succeeded/failed has been emitted
        self._lock = threading.Lock()

    def start(self) -> Job:
        self._thread = threading.Thread(target=self._run, name=f"job-{self.title}", daemon=True)
        self._thread.start()
        return self

    def cancel(self) -> None:
        self.ctx.cancel()
        if self._thread is not None and self._thread.is_alive():
            threading.Timer(ABANDON_AFTER_S, self._abandon).start()

    def request_stop(self) -> None:
        """Stop and keep best: long training ends at its next step and the job publishes what it kept."""
        self.ctx.request_stop()

    def _abandon(self) -> None:
        """The function did not reach a cancellation check in time: report it cancelled now."""
        if self._claim_end():
            self._emit(self.cancelled)
            self._emit(self.finished)

    def _claim_end(self) -> bool:
        """True for the first caller only: a job ends exactly once (finished, or abandoned)."""
        with self._lock:
            if self._ended.is_set():
                return False
            self._ended.set()
            return True

    def wait(self, timeout: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout)
        return self._thread is None or not self._thread.is_alive()

    @property
    def running(self) -> bool:
        """Running for the window: False once it ended or was abandoned (its thread may still unwind)."""
        return self._thread is not None and self._thread.is_alive() and not self._ended.is_set()

    def _on_progress(self, fraction: float, text: str) -> None:
        now = time.monotonic()
        if now - self._last >= PROGRESS_INTERVAL_S or fraction >= 1.0:
            self._last = now
            self._emit(self.progress, fraction, text)

    def _on_metric(self, fields: dict[str, Any]) -> None:
        if not self._ended.is_set():  # an abandoned job's late figures would draw on the next job's chart
            self._emit(self.metric, dict(fields))  # a copy: the worker may reuse its dict

    def _emit(self, signal: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the window went away while the job ran: nobody listens
            signal.emit(*args)

    def _run(self) -> None:
        outcome: tuple[Any, ...]
        try:
            result = self.fn(self.ctx)
        except Cancelled:
            outcome = (self.cancelled,)
        except StudioError as exc:
            outcome = (self.failed, str(exc))
        except Exception as exc:  # a bug in a plugin or converter: reported, the window stays up
            log = log_unexpected(f"job {self.title!r} failed", exc)
            outcome = (self.failed, f"{self.title} failed: {type(exc).__name__}: {first_line(exc, 300)} "
                                    f"(the traceback is in {log})")
        else:
            outcome = (self.succeeded, result) if not self.ctx.cancel_event.is_set() else (self.cancelled,)
        if not self._claim_end():
            return  # abandoned after Cancel: whatever it produced is discarded
        if outcome[0] is self.succeeded:
            self.result = outcome[1]
        elif outcome[0] is self.failed:
            self.error = outcome[1]
        self._emit(*outcome)
        self._emit(self.finished)


class JobRunner(QObject):
    """The jobs of one widget (after Orange's ``ConcurrentWidgetMixin``): start, progress, cancel, done, error
    and, when the window closes, the shutdown of every job it and the runners it adopted still run.

    ``current`` is the newest job ``start`` began: kept after it ends, so its title, result and error stay
    readable, until the next ``start`` or ``forget``. ``running`` is that job's ``Job.running`` (False as soon
    as the job ended, before its signals reach the GUI thread); ``busy`` stays True until its ``finished``
    reached the GUI thread (a view's buttons follow that). ``side`` jobs run beside it and never become
    current. With ``latest_only``, what a job no longer current produces or fails with is dropped: a result
    for a target or a session that has since been replaced.
    """

    started = Signal(object)  # the new current job, just before its thread starts
    progress = Signal(float, str)  # the current job's
    ended = Signal(object)  # the current job, once its ``finished`` reached the GUI thread

    def __init__(self, parent: QObject | None = None, *, latest_only: bool = False):
        super().__init__(parent)
        self.latest_only = latest_only
        self.current: Job | None = None
        self.busy = False
        self._jobs: list[Job] = []  # every job whose ``finished`` has not arrived, a cancelled one included
        self._adopted: list[JobRunner] = []

    @property
    def running(self) -> bool:
        return self.current is not None and self.current.running

    def start(self, title: str, fn: Callable[[TaskContext], Any], *, done: Callable[[Any], Any] | None = None,
              error: Callable[[str], Any] | None = None, cancelled: Callable[[], Any] | None = None,
              finished: Callable[[], Any] | None = None) -> Job:
        """Run ``fn(ctx)`` as the current job; the callbacks run on the GUI thread."""
        job = self._job(title, fn, done, error, cancelled, finished)
        self.current, self.busy = job, True
        job.progress.connect(lambda fraction, text: job is self.current and self.progress.emit(fraction, text))
        self.started.emit(job)
        return job.start()

    def side(self, title: str, fn: Callable[[TaskContext], Any], *, done: Callable[[Any], Any] | None = None,
             error: Callable[[str], Any] | None = None) -> Job:
        """Short work beside the current job (never current, never dropped); waited for on shutdown too."""
        return self._job(title, fn, done, error, None, None, side=True).start()

    def _job(self, title, fn, done, error, cancelled, finished, side: bool = False) -> Job:
        job = Job(title, fn, self)

        def wanted() -> bool:
            return side or not self.latest_only or job is self.current

        if done is not None:
            job.succeeded.connect(lambda result: wanted() and done(result))
        if error is not None:
            job.failed.connect(lambda message: wanted() and error(message))
        if cancelled is not None:
            job.cancelled.connect(lambda: wanted() and cancelled())
        job.finished.connect(lambda: self._finished(job, finished))
        self._jobs.append(job)
        return job

    def _finished(self, job: Job, then: Callable[[], Any] | None) -> None:
        if job in self._jobs:
            self._jobs.remove(job)
        if job is self.current and self.busy:
            self.busy = False
            self.ended.emit(job)
        if then is not None:
            then()

    def cancel(self) -> bool:
        """Cancel the current job if it runs (see ``Job.cancel``); whether there was one to cancel."""
        if self.running:
            self.current.cancel()
            return True
        return False

    def forget(self) -> None:
        """The current job is no longer current: it unwinds in the background (waited for on shutdown)."""
        self.current, self.busy = None, False

    def adopt(self, other: JobRunner) -> None:
        """``other``'s jobs (a view's, a panel's, a dialog's) are shut down with this runner's; a runner whose owner
        is deleted (a closed dialog) is dropped, so opening many dialogs does not grow the list."""
        self._adopted.append(other)
        other.destroyed.connect(lambda *_: self._adopted.remove(other) if other in self._adopted else None)

    def cancel_all(self) -> list[Job]:
        """Cancel every unfinished job of this runner and the runners it adopted; those jobs, to be waited for."""
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        return jobs + [job for other in self._adopted for job in other.cancel_all()]

    def shutdown(self, timeout: float) -> None:
        """Cancel everything, then give each job up to ``timeout`` seconds to unwind (closing a window)."""
        wait_all(self.cancel_all(), timeout)


def wait_all(jobs: list[Job], timeout: float) -> None:
    for job in jobs:
        job.wait(timeout)
