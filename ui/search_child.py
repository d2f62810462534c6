"""``deploy-studio search`` as a child process of the window: Ray never runs inside the window's process.

The search starts Ray (a local cluster, or a client of a remote one) and its workers; a native crash or a hang
there must not take the window down, so the window runs the CLI, exactly as a user would, and reads the
results from the search's folder (``studio.search.driver.read_rows``) while it runs.

Stop is SIGINT to the child alone: the driver catches it, cancels its Ray tasks, marks the trials in flight
cancelled (the study stays consistent: the same folder resumes) and shuts Ray down. Only when the child does
not end within ``STOP_GRACE_S`` (or, on closing the window, ``CANCEL_GRACE_S``) is it killed with all it
started. Qt-free: ``run`` is a job function (``ui.jobs``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from studio.child_python import module_command
from studio.errors import StudioError
from studio.tasks import Cancelled, TaskContext

POLL_S = 0.1
STOP_GRACE_S = 60.0  # Stop: the driver cancels its Ray tasks and shuts Ray down (seconds on a busy machine)
CANCEL_GRACE_S = 2.5  # closing the window: the window waits 3 s for each job (MainWindow.closeEvent)
KEEP_LINES = 200


def search_args(model: str, spec: Path, out: Path, *, workers: int, cluster: str | None = None,
                frames: Path | None = None, trust: bool = False) -> list[str]:
    """The CLI's arguments: what the window runs is what a user would type."""
    args = ["search", model, "--spec", str(spec), "-o", str(out), "--workers", str(workers)]
    if cluster:
        args += ["--cluster", cluster]
    if frames is not None:
        args += ["--frames", str(frames)]
    if trust:
        args.append("--trust")
    return args


def kill_tree(pid: int) -> None:
    """SIGKILL the child and every process it started (Ray's own processes may have left its group)."""
    import psutil

    try:
        children = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        children = []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for child in children:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


class SearchChild:
    """One ``deploy-studio search`` child: its stderr lines (``lines``, newest last) and how it ended."""

    def __init__(self, args: list[str]):
        self.args = args
        self.lines: list[str] = []
        self.lock = threading.Lock()
        self.process: subprocess.Popen | None = None
        self.interrupted_at: float | None = None

    def last_line(self) -> str:
        with self.lock:
            return self.lines[-1] if self.lines else ""

    def _read(self, stream: Any) -> None:
        for line in stream:
            line = line.rstrip()
            # Ray's own chatter (token authentication, log deduplication) is not the search's progress
            if line.startswith(("trial ", "deploy-studio")):
                with self.lock:
                    self.lines.append(line)
                    del self.lines[:-KEEP_LINES]

    def interrupt(self) -> None:
        """SIGINT to the child alone, once: the driver stops its trials and leaves the study resumable."""
        if self.process is not None and self.interrupted_at is None and self.process.poll() is None:
            self.interrupted_at = time.monotonic()
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.process.pid, signal.SIGINT)

    def run(self, ctx: TaskContext) -> dict[str, Any]:
        """Run to the end; Stop (``ctx.request_stop``) interrupts, Cancel interrupts and kills after a moment.
        Returns ``{"stopped": bool, "returncode": int}``; a search that failed raises its one-line error."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(module_command("studio.cli", *self.args, "--json"), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True, env=env,
                                        start_new_session=True)  # its own group: a kill reaches Ray's processes
        assert self.process.stderr is not None, "stderr is a pipe"
        reader = threading.Thread(target=self._read, args=(self.process.stderr,), daemon=True)
        reader.start()
        try:
            while self.process.poll() is None:
                if ctx.stop_requested or ctx.cancel_event.is_set():
                    self.interrupt()
                grace = CANCEL_GRACE_S if ctx.cancel_event.is_set() else STOP_GRACE_S
                if self.interrupted_at is not None and time.monotonic() - self.interrupted_at > grace:
                    kill_tree(self.process.pid)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=POLL_S)
        finally:
            if self.process.poll() is None:
                kill_tree(self.process.pid)
                self.process.wait()
            reader.join(timeout=5)
        if ctx.cancel_event.is_set():
            raise Cancelled()
        code = self.process.returncode
        if self.interrupted_at is not None:
            return {"stopped": True, "returncode": code}
        if code != 0:
            errors = [line for line in self.lines if line.startswith("deploy-studio")]
            message = (errors[-1].removeprefix("deploy-studio: ").removeprefix("error: ") if errors
                       else f"the search process ended with code {code}")
            raise StudioError(message)
        return {"stopped": False, "returncode": code}
