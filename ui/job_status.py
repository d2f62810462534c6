"""The status bar: one line saying what happened last, and the window's current job with its Cancel."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QProgressBar, QPushButton, QStatusBar

from ui.jobs import Job, JobRunner


class JobStatus:
    """Follows a ``JobRunner``: its current job's title and progress, hidden again when the job ends."""

    def __init__(self, bar: QStatusBar, jobs: JobRunner):
        self.jobs = jobs
        self.text = QLabel("Ready.")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setMaximumWidth(240)
        self.progress.hide()
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.hide()
        self.cancel_button.clicked.connect(self.cancel)
        bar.addWidget(self.text, 1)
        bar.addPermanentWidget(self.progress)
        bar.addPermanentWidget(self.cancel_button)
        jobs.started.connect(self._started)
        jobs.progress.connect(self._progress)
        jobs.ended.connect(self._ended)

    def show(self, text: str) -> None:
        self.text.setText(text)

    def cancel(self) -> None:
        if self.jobs.running:
            self.show(f"cancelling {self.jobs.current.title}…")
            self.jobs.cancel()

    def _started(self, job: Job) -> None:
        self.progress.setValue(0)
        self.progress.show()
        self.cancel_button.show()
        self.show(f"{job.title}…")

    def _progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        if text:
            self.show(f"{self.jobs.current.title}: {text}")

    def _ended(self, _job: Job) -> None:
        self.progress.hide()
        self.cancel_button.hide()
