"""``deploy-studio gui MODEL --smoke [--smoke-export DIR]``: the real window, driven to a verdict and closed.

Used to check an installation (or a packaged bundle) end to end without a person: the window opens,
the model loads, the preview runs ``frames`` frames (a language model: its view is shown), the model
is optionally exported to ONNX and re-verified, and the process exits 0 — or 1 with one line saying
what failed (a load error, a preview error, an export error, or the time running out).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

POLL_MS = 100


class Smoke:
    def __init__(self, app, window, *, frames: int = 20, export_dir: Path | None = None, timeout_s: float = 600):
        from PySide6.QtCore import QTimer

        self.app, self.window, self.frames, self.export_dir = app, window, frames, export_dir
        self.deadline = time.monotonic() + timeout_s
        self.stage = "loading"
        self.export_job = None
        self.timer = QTimer(interval=POLL_MS, timeout=self.poll)
        self.timer.start()

    def finish(self, code: int, line: str) -> None:
        self.timer.stop()
        print(f"smoke: {line}", file=sys.stderr if code else sys.stdout, flush=True)
        self.window.close()
        self.app.exit(code)

    def _error(self) -> str | None:
        status = self.window.status_text.text()
        box = self.window.findChild(object, "job_error")
        if box is not None and box.isVisible():
            return status
        preview = self.window.preview
        return f"preview: {preview.error}" if preview is not None and preview.error else None

    def poll(self) -> None:
        error = self._error()
        if error:
            return self.finish(1, f"failed while {self.stage}: {error}")
        if time.monotonic() > self.deadline:
            return self.finish(1, f"timed out while {self.stage}")
        window = self.window
        if self.stage == "loading" and window.session is not None and not window.job.running:
            self.stage = "previewing"
        if self.stage == "previewing":
            from studio.lm.variants import is_language_model

            previewed = window.preview is not None and window.preview.processed >= self.frames
            if previewed or is_language_model(window.session.baseline):  # a language model has no frames
                self.stage = "exporting"
        if self.stage == "exporting":
            if self.export_dir is None:
                return self.finish(0, self._summary())
            if self.export_job is None:
                self._start_export()
            elif not self.export_job.running:
                if self.export_job.error:
                    return self.finish(1, f"export failed: {self.export_job.error}")
                item = self.export_job.result["exports"][0]
                return self.finish(0, f"{self._summary()}; exported {item['path']} ({item['size_mb']} MB, verified)")

    def _summary(self) -> str:
        window = self.window
        name = window.session.baseline.display_name
        if window.preview is None:
            return f"opened {name} ({window.session.baseline.task})"
        return f"opened {name}, previewed {window.preview.processed} frames"

    def _start_export(self) -> None:
        from studio.export import run_export

        spec, out = self.window.session.spec, self.export_dir
        # Beside the window's current job, and shut down with it when the window closes.
        self.export_job = self.window.jobs.side("smoke export",
                                                lambda ctx: run_export(spec, ["onnx"], out, force=True, ctx=ctx))
