"""Plugin panels, grouped by kind, each built from the plugin's settings; Run makes a new variant.

``check`` can take a second (pruning traces the model), so it runs off the GUI thread whenever the
target variant changes; until it answers, Run stays disabled and says why.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QGroupBox, QLabel, QProgressBar, QPushButton, QScrollArea, QToolBox, QVBoxLayout, QWidget

from studio.model import ModelHandle
from studio.plugin_api import Kind
from studio.torch_lock import TORCH_MODULE_LOCK
from ui.jobs import Job
from ui.settings_form import SettingsForm

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

    def __init__(self, registry, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.target = QLabel("No model loaded.")
        self.target.setWordWrap(True)
        layout.addWidget(self.target)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setFormat("%p% — running")
        self.progress.hide()
        layout.addWidget(self.progress)
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
                box.run_requested.connect(self.run_requested)
                self.boxes[plugin.id] = box
                column.addWidget(box)
            column.addStretch(1)
            scroll = QScrollArea()
            scroll.setWidgetResizable(True)
            scroll.setWidget(page)
            self.toolbox.addItem(scroll, title)
        layout.addWidget(self.toolbox, 1)
        self.check_job: Job | None = None
        self.busy = False
        self.reasons: dict[str, list[str]] = {}

    def set_target(self, key: str, title: str, handle: ModelHandle) -> None:
        """Check every plugin against ``handle`` in the background; Run applies to this variant."""
        self.target.setText(f"Runs apply to <b>{key}</b> ({title}); each run makes a new variant.")
        self.reasons = {}
        for box in self.boxes.values():
            box.set_reasons(None, self.busy)
        plugins = [box.plugin for box in self.boxes.values()]

        def check_all(ctx) -> dict[str, list[str]]:
            results = {}
            for plugin in plugins:
                ctx.check_cancelled()
                try:
                    with TORCH_MODULE_LOCK:  # checks trace the model (torch-pruning): one thread at a time
                        results[plugin.id] = list(plugin.check(handle))
                except Exception as exc:  # a broken check disables its plugin, not the panel
                    results[plugin.id] = [f"check failed: {type(exc).__name__}: {exc}"]
            return results

        if self.check_job is not None:
            self.check_job.cancel()
        job = Job("check plugins", check_all, self)
        job.succeeded.connect(self._show_reasons)
        self.check_job = job.start()

    def _show_reasons(self, results: dict[str, list[str]]) -> None:
        if self.sender() is not self.check_job:
            return  # an answer for a variant that is no longer the target
        self.reasons = results
        for plugin_id, box in self.boxes.items():
            box.set_reasons(results.get(plugin_id, []), self.busy)

    def show_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"%p% — {text[:60]}" if text else "%p%")

    def set_busy(self, busy: bool) -> None:
        self.busy = busy
        self.progress.setVisible(busy)
        self.progress.setValue(0)
        if self.reasons:
            for plugin_id, box in self.boxes.items():
                box.set_reasons(self.reasons.get(plugin_id, []), busy)
