"""The "Training" dock, a tab beside the live charts: the recovery training of the running job.

A tab of its own rather than a page of the live-charts stack: the preview (and its charts) resumes the
moment an optimisation ends, and the finished curves must stay there to be read.

Every job the window starts is handed over (``watch``); one that never trains leaves the chart as it
was, and the first training figure of a job resets the curves and brings the tab to the front.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow

from ui.jobs import Job
from ui.training_chart import TrainingChart, recovery_reports, recovery_summary


class _Watch(QObject):
    """One job's link to the chart (a QObject, so its slots run on the GUI thread and die with the job)."""

    def __init__(self, job: Job, dock: TrainingDock, device: str):
        super().__init__(job)
        self.dock, self.device, self.training = dock, device, False
        job.metric.connect(self.metric)
        job.progress.connect(self.progress)
        job.succeeded.connect(self.succeeded)
        job.cancelled.connect(self.cancelled)
        job.failed.connect(self.failed)

    def metric(self, fields: dict[str, Any]) -> None:
        if fields.get("kind") != "train":
            return
        if not self.training:
            self.training = True
            self.dock.chart.reset(self.device)
            self.dock.widget.raise_()
        self.dock.chart.add(fields)

    def progress(self, _fraction: float, text: str) -> None:
        if self.training:
            self.dock.chart.set_progress_text(text)

    def succeeded(self, result: Any) -> None:
        if self.training:
            recoveries = recovery_reports(getattr(result, "report", None))
            self.dock.chart.finish("<br>".join(map(recovery_summary, recoveries)) or "Done.")

    def cancelled(self) -> None:
        if self.training:
            self.dock.chart.finish("Cancelled: nothing was kept.")

    def failed(self, message: str) -> None:
        if self.training:
            self.dock.chart.finish(f"Failed: {message}")


class TrainingDock:
    def __init__(self, window: QMainWindow, beside: QDockWidget):
        self.chart = TrainingChart()
        self.widget = QDockWidget("Training", window)
        self.widget.setObjectName("training")
        self.widget.setWidget(self.chart)
        window.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.widget)
        window.tabifyDockWidget(beside, self.widget)
        beside.raise_()  # the live charts stay in front until something trains

    def watch(self, job: Job, device: str) -> None:
        """Show ``job``'s training, if it trains, on ``device`` (words; the report names the real one at the end)."""
        _Watch(job, self, device)
