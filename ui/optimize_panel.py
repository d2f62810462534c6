"""Plugin panels, grouped by kind, each built from the plugin's settings; Run makes a new variant.

``check`` can take a second (pruning traces the model), so it runs off the GUI thread whenever the
target variant changes; until it answers, Run stays disabled and says why.

While a job runs, Cancel (discard everything) and "Stop and keep best" (training ends now and the job
goes on to publish its best weights) sit under its progress; Stop is enabled once the job has reported
a training figure. The training devices torch sees are named at the top, probed off the GUI thread.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QToolBox,
    QVBoxLayout,
    QWidget,
)

from studio.model import ModelHandle
from studio.plugin_api import Kind
from ui.jobs import Job, JobRunner
from ui.plugin_checks import plugin_reasons
from ui.settings_form import SettingsForm
from ui.training_devices import DeviceProbe, describe, resolve

KIND_TITLES = {Kind.QUANTIZE: "Quantize", Kind.PRUNE: "Prune", Kind.LOWRANK: "Low-rank",
               Kind.EARLY_EXIT: "Early exit"}


class PluginBox(QGroupBox):
    run_requested = Signal(str, dict)

    def __init__(self, plugin, parent: QWidget | None = None):
        super().__init__(plugin.title, parent)
        self.plugin = plugin
        self.setObjectName(plugin.id)
        layout = QVBoxLayout(self)
        self.form = SettingsForm(plugin.Settings)
        self.reason = QLabel("")
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet("color: #ff9f0a")
        self.run = QPushButton("Run → new variant")
        self.run.setEnabled(False)
        self.run.clicked.connect(lambda: self.run_requested.emit(self.plugin.id, self.form.values()))
        layout.addWidget(self.form)
        layout.addWidget(self.reason)
        layout.addWidget(self.run)

    def set_reasons(self, reasons: list[str] | None, busy: bool) -> None:
        if reasons is None:
            self.run.setEnabled(False)
            self.reason.setText("checking whether it applies…")
            return
        self.run.setEnabled(not reasons and not busy)
        self.reason.setText("Cannot run: " + "; ".join(reasons) if reasons else "")
        self.run.setToolTip("; ".join(reasons) if reasons else f"{self.plugin.id} on the selected variant")


class OptimizePanel(QWidget):
    run_requested = Signal(str, dict)
    job_started = Signal(object, str)  # (job, the device it would train on, in words) for the training chart

    def __init__(self, registry, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.target = QLabel("No model loaded.")
        self.target.setWordWrap(True)
        layout.addWidget(self.target)
        self.devices = QLabel("Training device: not looked for yet (when a model is loaded)")
        self.devices.setWordWrap(True)
        layout.addWidget(self.devices)
        self.jobs = JobRunner(self, latest_only=True)  # the plugin checks: an answer for an old target is dropped
        self.probe = DeviceProbe(self.jobs, self)
        self.probe.found.connect(lambda devices: self.devices.setText(describe(devices)))
        self.probe.failed.connect(lambda message: self.devices.setText(f"Training device: unknown ({message})"))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p% — running")
        self.progress.hide()
        layout.addWidget(self.progress)
        layout.addWidget(self._job_buttons())
        self.toolbox = QToolBox()
        self.boxes: dict[str, PluginBox] = {}
        for kind, title in KIND_TITLES.items():
            plugins = registry.by_kind(kind)
            if not plugins:
                continue
            page = QWidget()
            column = QVBoxLayout(page)
            for plugin in plugins:
                box = PluginBox(plugin)
                box.run_requested.connect(self._remember_device)  # first: the job starts inside the next one
                box.run_requested.connect(self.run_requested)
                self.boxes[plugin.id] = box
                column.addWidget(box)
            column.addStretch(1)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(page)
            self.toolbox.addItem(scroll, title)
        layout.addWidget(self.toolbox, 1)
        self.job: Job | None = None
        self.followed: JobRunner | None = None  # the runner whose current job this panel shows (``follow``)
        self.busy = False
        self.reasons: dict[str, list[str]] = {}
        self.next_device = "auto"

    def _job_buttons(self) -> QWidget:
        self.job_row = QWidget()
        row = QHBoxLayout(self.job_row)
        row.setContentsMargins(0, 0, 0, 0)
        self.cancel = QPushButton("Cancel")
        self.cancel.setToolTip("End the job now; nothing is kept")
        self.cancel.clicked.connect(lambda: self.followed is not None and self.followed.cancel())
        self.stop = QPushButton("Stop and keep best")
        self.stop.setToolTip("End training now and publish the variant with the best weights it has judged so far")
        self.stop.clicked.connect(self._stop)
        row.addWidget(self.cancel)
        row.addWidget(self.stop)
        row.addStretch(1)
        self.job_row.hide()
        return self.job_row

    def _remember_device(self, _plugin_id: str, values: dict[str, Any]) -> None:
        self.next_device = str(values.get("recovery_device", "auto"))

    def _stop(self) -> None:
        if self.job is not None and self.job.running:
            self.job.request_stop()
            self.stop.setEnabled(False)
            self.stop.setText("Stopping — keeping the best weights…")

    def _job_metric(self, fields: dict[str, Any]) -> None:
        if self.sender() is self.job and fields.get("kind") == "train" and not self.job.ctx.stop_requested:
            self.stop.setEnabled(True)  # only a job that trains has something to stop early

    def showEvent(self, event) -> None:
        self.probe.start()  # the user looks at the panel: worth knowing the devices now (once)
        super().showEvent(event)

    def set_target(self, key: str, title: str, handle: ModelHandle) -> None:
        """Check every plugin against ``handle`` in the background; Run applies to this variant."""
        self.target.setText(f"Runs apply to <b>{key}</b> ({title}); each run makes a new variant.")
        self.probe.start()  # torch is being imported for the model anyway; once
        self.reasons = {}
        for box in self.boxes.values():
            box.set_reasons(None, self.busy)
        plugins = [box.plugin for box in self.boxes.values()]

        def check_all(ctx) -> dict[str, list[str]]:
            return plugin_reasons(plugins, handle, ctx)

        self.jobs.cancel()
        self.jobs.start("check plugins", check_all, done=self._show_reasons)

    def _show_reasons(self, results: dict[str, list[str]]) -> None:
        self.reasons = results
        for plugin_id, box in self.boxes.items():
            box.set_reasons(results.get(plugin_id, []), self.busy)

    def follow(self, jobs: JobRunner) -> None:
        """Show ``jobs``' current job here (the window's): its progress, with Cancel and Stop and keep best."""
        self.followed = jobs
        jobs.adopt(self.jobs)  # the plugin checks are shut down with them
        jobs.started.connect(lambda job: self.set_busy(True, job))
        jobs.progress.connect(lambda fraction, text: self.busy and self.show_progress(fraction, text))
        jobs.ended.connect(lambda _job: self.set_busy(False))

    def show_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"%p% — {text[:60]}" if text else "%p%")

    def set_busy(self, busy: bool, job: Job | None = None) -> None:
        """Busy with ``job`` (its Cancel and Stop live here), or idle again."""
        self.busy = busy
        self.progress.setVisible(busy)
        self.progress.setValue(0)
        self.job = job if busy else None
        self.job_row.setVisible(self.job is not None)
        self.stop.setEnabled(False)
        self.stop.setText("Stop and keep best")
        if self.job is not None:
            self.job.metric.connect(self._job_metric)
            self.job_started.emit(self.job, resolve(self.next_device, self.probe.devices))
        self.next_device = "auto"
        if self.reasons:
            for plugin_id, box in self.boxes.items():
                box.set_reasons(self.reasons.get(plugin_id, []), busy)
