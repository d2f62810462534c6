"""The export dialog: formats, precision, folder; progress and Cancel; the verified report when done.

The formats and precisions are the installed exporters' capability table (``studio.capabilities``), the
one the engine refuses by: a model is offered the precisions some exporter writes for its kind, and a
format that cannot take it at the chosen precision is disabled with the engine's own reason. A
third-party exporter appears as soon as it is installed. A language variant whose weights are already
INT8/INT4 on onnxruntime is exported at its own precision.

Exports run in a child process (``studio.subprocess_job``): Cancel kills the converter outright and
its staging folder is removed, so nothing half-written is ever left in the chosen folder. The dialog's
jobs join its window's ``JobRunner``, so closing the window stops an export the dialog started.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from studio import capabilities
from studio.lm.variants import is_language_model, lm_runtime
from studio.model import ModelHandle
from studio.report_text import export_text
from studio.reports import ExportReport
from studio.subprocess_job import export_in_subprocess
from ui.jobs import JobRunner


@dataclass
class ExportChoice:
    formats: list[str] = field(default_factory=lambda: ["onnx"])
    precision: str = "fp32"
    folder: str = ""
    force: bool = True  # the dialog asks before it replaces (the Replace check box)


def format_rows() -> list[tuple[str, str]]:
    """(format, title) of every installed exporter, a third-party one included."""
    return [(exporter.format, exporter.title) for exporter in capabilities.exporters()]


def precisions_for(handle: ModelHandle | None) -> tuple[str, ...]:
    """The precisions the dialog offers for ``handle`` (None: a vision model's)."""
    if handle is not None and is_language_model(handle) and lm_runtime(handle) in ("genai", "ort_encoder"):
        return (handle.metadata.get("precision", "fp32"),)  # already on onnxruntime: its weights are what they are
    return capabilities.precisions(capabilities.model_kind(handle))


def formats_for(handle: ModelHandle | None, precision: str) -> dict[str, str]:
    """Format → why it cannot be chosen for ``handle`` at ``precision`` (absent: it can)."""
    kind, task = capabilities.model_kind(handle), handle.task if handle is not None else None
    refusals = {e.format: capabilities.refusal(e, kind, precision, task) for e in capabilities.exporters()}
    return {name: str(reason) for name, reason in refusals.items() if reason is not None}


def choice_fits(choice: ExportChoice, handle: ModelHandle | None) -> bool:
    """Whether ``choice`` (e.g. the last export, made for another model) is one the dialog would offer."""
    refused = formats_for(handle, choice.precision)
    return (choice.precision in precisions_for(handle) and bool(choice.formats)
            and not any(name in refused for name in choice.formats))


def verification_lines(report: ExportReport) -> list[str]:
    """How each language-model export was re-opened and checked (``export_text`` gives the numbers)."""
    lines = []
    for item in report["exports"]:
        verified = item.get("verified") or {}
        if verified.get("runtime") or verified.get("method"):
            how = "; ".join(str(verified[k]) for k in ("runtime", "method") if verified.get(k))
            lines.append(f"{item['format']} verified with {how}")
    return lines


def run_export_job(spec: str, recipe: Path | None, choice: ExportChoice, ctx,
                   frames: Path | None = None) -> ExportReport:
    return export_in_subprocess(spec, choice.formats, Path(choice.folder), precision=choice.precision, frames=frames,
                                recipe_path=recipe, force=choice.force, ctx=ctx)


class ExportDialog(QDialog):
    exported = Signal(object, object)  # (ExportChoice, report)

    def __init__(self, spec: str, recipe: Path | None, title: str, choice: ExportChoice,
                 parent: QWidget | None = None, handle: ModelHandle | None = None, frames: Path | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Export — {title}")
        self.setMinimumWidth(620)
        self.spec, self.recipe, self.handle, self.frames = spec, recipe, handle, frames
        self.language = handle is not None and is_language_model(handle)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        formats = QHBoxLayout()
        self.format_boxes: dict[str, QCheckBox] = {}
        for name, label in format_rows():
            box = QCheckBox(label)
            box.setObjectName(f"format_{name}")
            box.setChecked(name in choice.formats)
            self.format_boxes[name] = box
            formats.addWidget(box)
        form.addRow("Formats", formats)
        self.precision = QComboBox()
        offered = precisions_for(handle)
        self.precision.addItems(list(offered))
        self.precision.setCurrentText(choice.precision if choice.precision in offered else offered[0])
        if not self.language:
            self.precision.setToolTip("fp16/int8 are made by each format's own tools and verified against FP32")
        elif len(offered) == 1:
            self.precision.setToolTip(f"This variant's weights are already {offered[0]} (onnxruntime): it is "
                                      "exported as it is; export the base model for another precision")
        else:
            self.precision.setToolTip("int8/int4: weight-only MatMulNBits (onnxruntime-genai's builder for "
                                      "decoders, onnxruntime's quantizers for encoders), checked against the "
                                      "FP32 model; fp16 is not exported for CPU")
        self.precision.currentTextChanged.connect(self._sync_formats)
        form.addRow("Precision", self.precision)
        folder_row = QHBoxLayout()
        self.folder = QLineEdit(choice.folder)
        self.folder.setPlaceholderText("an output folder (never the model's own folder)")
        browse = QPushButton("…")
        browse.clicked.connect(self._browse)
        folder_row.addWidget(self.folder, 1)
        folder_row.addWidget(browse)
        form.addRow("Folder", folder_row)
        self.replace = QCheckBox("Replace files already there")
        self.replace.setChecked(choice.force)
        form.addRow("", self.replace)
        layout.addLayout(form)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.progress)
        layout.addWidget(self.status)
        self.report = QPlainTextEdit()
        self.report.setReadOnly(True)
        self.report.setPlaceholderText("The ExportReport appears here: path, size, time, parity per format.")
        layout.addWidget(self.report, 1)
        buttons = QHBoxLayout()
        self.export_button = QPushButton("Export")
        self.export_button.setDefault(True)
        self.export_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        close = QPushButton("Close")
        close.clicked.connect(self.close)
        buttons.addStretch(1)
        for button in (self.export_button, self.cancel_button, close):
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.jobs = JobRunner(self)
        self.jobs.progress.connect(lambda f, t: (self.progress.setValue(int(f * 1000)), self.status.setText(t)))
        owner = getattr(parent, "jobs", None)
        if isinstance(owner, JobRunner):
            owner.adopt(self.jobs)  # the window's close shuts an export down even while this dialog is open
        self.last_report: ExportReport | None = None
        self._sync_formats(self.precision.currentText())

    def _sync_formats(self, precision: str) -> None:
        """Formats the model cannot be exported to at ``precision`` are disabled, their tooltip says why."""
        refused = formats_for(self.handle, precision)
        for name, box in self.format_boxes.items():
            box.setEnabled(name not in refused)
            box.setToolTip(refused.get(name, ""))

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Export into", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def choice(self) -> ExportChoice:
        return ExportChoice([n for n, box in self.format_boxes.items() if box.isChecked() and box.isEnabled()],
                            self.precision.currentText(), self.folder.text().strip(), self.replace.isChecked())

    def start(self) -> None:
        choice = self.choice()
        if not choice.formats:
            self.status.setText("Choose at least one format.")
            return
        if not choice.folder:
            self.status.setText("Choose an output folder.")
            return
        self.export_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.report.clear()
        self.status.setText("starting the exporter…")
        self.jobs.start("export", lambda ctx: run_export_job(self.spec, self.recipe, choice, ctx, self.frames),
                        done=lambda report: self._done(choice, report),
                        error=lambda message: self._stopped(f"Export failed: {message}"),
                        cancelled=lambda: self._stopped("Cancelled: the exporter was stopped; nothing was written."))

    def cancel(self) -> None:
        if self.jobs.cancel():  # its outcome arrives later, queued: this line shows until then
            self.status.setText("cancelling…")

    def _done(self, choice: ExportChoice, report: ExportReport) -> None:
        self.last_report = report
        self.progress.setValue(1000)
        self.report.setPlainText("\n".join([export_text(report), *verification_lines(report)]))
        self.status.setText(f"Done: {len(report['exports'])} file(s) verified in {choice.folder}")
        self._idle()
        self.exported.emit(choice, report)

    def _stopped(self, message: str) -> None:
        self.status.setText(message)
        self.progress.setValue(0)
        self._idle()

    def _idle(self) -> None:
        self.export_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def closeEvent(self, event) -> None:
        self.jobs.cancel()  # a running export's child process is killed; the dialog can go
        super().closeEvent(event)
