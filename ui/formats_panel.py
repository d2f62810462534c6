"""The Formats tab: every format × precision of the open model, each in its own runtime, in one table and one plot.

What ``deploy-studio bench MODEL --formats … --precision …`` prints (``studio.format_bench``), in the window: the
benchmark runs as a child process (``format_bench_in_subprocess``: a converter that crashes takes the child
down, never the window; Cancel kills it), and the files go to the studio's cache, where a later run takes them
instead of exporting again. The formats offered are the installed exporters' capability table for the model's
kind (``studio.capabilities``), so a third-party exporter appears here as it does in the export dialog.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QCheckBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio import capabilities
from studio.evaluate.evidence import metric_label
from studio.lm.variants import is_language_model
from studio.model import ModelHandle
from studio.paths import cache_dir
from studio.subprocess_job import format_bench_in_subprocess
from ui.jobs import Job, JobRunner
from ui.model_panel import NumberItem
from ui.pareto_plot import pareto_plot
from ui.tables import results_table

if TYPE_CHECKING:
    from studio.session import Session

COLUMNS = ["Format", "Precision", "Runtime / device", "Status", "Size MB", "Fidelity", "p50 ms", "p95 ms", "fps",
           "Memory MB"]
STATUS_COLUMN = COLUMNS.index("Status")
FIDELITY_COLUMN = COLUMNS.index("Fidelity")
DEFAULT_RUNS = 30
MARKER = "#0a84ff"
MARKER_SELECTED = "#ff9f0a"
LANGUAGE_REASON = ("Formats are benchmarked for vision models only: a language model's files are timed by "
                   "'deploy-studio bench MODEL' in its own runtime.")


def label(cell: dict[str, Any]) -> str:
    """'tflite int8': how a cell is named on its marker and to the preview."""
    return f"{cell['format']} {cell['precision']}"


def where_text(cell: dict[str, Any]) -> str:
    runtime = cell.get("runtime") or {}
    return " ".join(str(runtime[k]) for k in ("runtime", "execution_provider", "delegate", "device")
                    if runtime.get(k)) or "—"


def status_tooltip(cell: dict[str, Any]) -> str:
    if cell.get("stage"):
        return f"{cell['status']} at {cell['stage']}: {cell['message']}"
    if cell.get("path"):
        return f"{cell.get('provenance') or 'file'}: {cell['path']}"
    return cell["status"]


def fidelity_tooltip(fidelity: dict[str, Any]) -> str:
    """The interval and what the figure rests on (an ok cell's fidelity is never a bare number)."""
    if not fidelity:
        return ""
    lines = [str(fidelity.get("method") or metric_label(fidelity["metric"]))]
    interval = fidelity.get("interval")
    if interval:
        lines.append(f"{round(interval['level'] * 100)} % interval {interval['low']:.3f}–{interval['high']:.3f} "
                     f"({interval['method']})")
    warning = (fidelity.get("evidence") or {}).get("warning")
    if warning:
        lines.append(warning)
    return "\n".join(lines)


def method_caption(report: dict[str, Any]) -> str:
    """How the table was measured: runs, percentile, threads, machine (from the report, never assumed)."""
    method, machine = report["method"], report.get("machine") or {}
    where = f"{machine.get('cpu')} ({machine.get('logical_cores')} cores)" if machine else "—"
    return (f"{report['model']} ({report['task']}) on {where}. Latency: {method['latency']}. "
            f"Fidelity: {method['fidelity']}. Memory: {method['memory']}. Size: {method['size']}. "
            f"Files: {report['out_dir']}")


def table_items(cell: dict[str, Any]) -> list[QTableWidgetItem]:
    """One row, the same columns and figures as ``studio.format_bench.table_text``."""
    latency, fidelity = cell.get("latency_ms") or {}, cell.get("fidelity") or {}
    status = QTableWidgetItem(cell["status"] + (f" at {cell['stage']}" if cell.get("stage") else ""))
    status.setToolTip(status_tooltip(cell))
    score = NumberItem(fidelity.get("value") or 0,
                       f"{metric_label(fidelity['metric'])} {fidelity['value']:.3f}" if fidelity else "—")
    score.setToolTip(fidelity_tooltip(fidelity))

    def number(value: float | None, digits: int) -> NumberItem:
        return NumberItem(value or 0, "—" if value is None else f"{value:.{digits}f}")

    return [QTableWidgetItem(cell["format"]), QTableWidgetItem(cell["precision"]), QTableWidgetItem(where_text(cell)),
            status, number(cell.get("size_mb"), 2), score, number(latency.get("p50"), 1), number(latency.get("p95"), 1),
            number(cell.get("fps"), 1), number(cell.get("memory_mb"), 0)]


def plotted(cells: list[dict[str, Any]]) -> list[int]:
    """Indexes of the cells that ran: timed and judged (one marker each)."""
    return [i for i, c in enumerate(cells) if c["status"] == "ok" and c.get("latency_ms") and c.get("fidelity")]


class FormatsPanel(QWidget):
    """The format × precision table and its Pareto plot for the open model; "Measure formats" fills them.

    ``preview_requested(path, label)``: "Preview this one" on a row that ran — ``path`` is the file (or folder,
    e.g. an OpenVINO IR or a ``.mlpackage``) the benchmark timed, as a user would open it, and ``label`` names the
    cell as its marker does ("tflite int8"). ``job_started(job)``: a measurement began (the window pauses its
    live preview until ``job.finished``, so the two do not share the cores).
    """

    preview_requested = Signal(str, str)
    job_started = Signal(object)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.jobs = JobRunner(self, latest_only=True)  # a result for a model no longer open is dropped
        layout = QVBoxLayout(self)
        self.target = QLabel("No model loaded.")
        self.target.setWordWrap(True)
        layout.addWidget(self.target)
        self.controls = QWidget()
        form = QFormLayout(self.controls)
        form.setContentsMargins(0, 0, 0, 0)
        self.format_boxes = self._boxes(form, "Formats", [(e.format, e.title) for e in capabilities.exporters()])
        offered = capabilities.precisions(capabilities.VISION)
        self.precision_boxes = self._boxes(form, "Precisions", [(p, p) for p in offered])
        self.precision_boxes[offered[0]].setChecked(True)
        self.runs = QSpinBox()
        self.runs.setRange(3, 10_000)
        self.runs.setValue(DEFAULT_RUNS)
        self.runs.setToolTip("timed frames per file, after 3 warm-up frames; every file on the same frames, "
                             "interleaved")
        self.threads = QSpinBox()
        self.threads.setRange(1, os.cpu_count() or 1)
        self.threads.setToolTip("threads each runtime may use")
        form.addRow("Runs", self.runs)
        form.addRow("Threads", self.threads)
        self.force = QCheckBox("Export again (else files an earlier run wrote are taken)")
        form.addRow("", self.force)
        layout.addWidget(self.controls)
        buttons = QHBoxLayout()
        self.measure = QPushButton("Measure formats")
        self.measure.clicked.connect(self.start)
        self.cancel = QPushButton("Cancel")
        self.cancel.setEnabled(False)
        self.cancel.clicked.connect(self.jobs.cancel)
        buttons.addWidget(self.measure)
        buttons.addWidget(self.cancel)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.hide()
        layout.addWidget(self.progress)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self._build_results(layout)
        self.jobs.progress.connect(self._show_progress)
        self.session: Session | None = None
        self.report: dict[str, Any] | None = None
        self._enable(False, "Open a model first.")

    @staticmethod
    def _boxes(form: QFormLayout, title: str, items: list[tuple[str, str]]) -> dict[str, QCheckBox]:
        row = QHBoxLayout()
        boxes = {}
        for name, text in items:
            box = QCheckBox(text)
            box.setObjectName(f"{title.lower()}_{name}")
            boxes[name] = box
            row.addWidget(box)
        row.addStretch(1)
        form.addRow(title, row)
        return boxes

    def _build_results(self, layout: QVBoxLayout) -> None:
        self.table = results_table(COLUMNS, stretch_last=False)
        self.table.itemSelectionChanged.connect(self._on_selection)
        layout.addWidget(self.table, 2)
        self.preview = QPushButton("Preview this one")
        self.preview.setEnabled(False)
        self.preview.setToolTip("Run the selected file in the live preview (rows that ran only)")
        self.preview.clicked.connect(self._preview)
        layout.addWidget(self.preview)
        self.caption = QLabel("")
        self.caption.setWordWrap(True)
        self.caption.setStyleSheet("color: #8e8e93")
        layout.addWidget(self.caption)
        self.plot, self.scatter, self.error_bars = pareto_plot(
            "Pareto: p50 latency vs fidelity, one marker per format × precision", size=12)
        self.scatter.sigClicked.connect(self._on_point)
        self.labels: list[pg.TextItem] = []
        layout.addWidget(self.plot, 2)

    # -- the model -----------------------------------------------------------------------------------
    @property
    def handle(self) -> ModelHandle | None:
        return None if self.session is None else self.session.baseline

    def set_session(self, session: Session | None) -> None:
        """The window's session (``WorkspaceState``'s "session" event): its source model is what is exported and
        benchmarked, on its frames; another model clears the table."""
        if session is self.session:
            return
        self.jobs.cancel()  # a measurement of the previous model is of no use now
        self.jobs.forget()
        self.session = session
        self.show_report(None)
        self.status.setText("")
        handle = self.handle
        if handle is None:
            self.target.setText("No model loaded.")
            self._enable(False, "Open a model first.")
            return
        if is_language_model(handle):
            self.target.setText(LANGUAGE_REASON)
            self._enable(False, LANGUAGE_REASON)
            return
        self.target.setText(f"Exports <b>{handle.display_name}</b> (the session's source model) to each checked "
                            "format × precision, opens each file in its own runtime, times them on the same frames "
                            "and judges them against the source.")
        self._enable(True, "")

    def _enable(self, enabled: bool, reason: str) -> None:
        self.controls.setEnabled(enabled)
        self.measure.setEnabled(enabled and not self.jobs.busy)
        self.measure.setToolTip(reason)
        self.controls.setToolTip(reason)
        if enabled and self.handle is not None:
            kind = capabilities.model_kind(self.handle)
            for exporter in capabilities.exporters():
                box = self.format_boxes.get(exporter.format)
                if box is None:
                    continue
                taken = capabilities.row(exporter, kind, self.handle.task) is not None
                box.setEnabled(taken)
                box.setToolTip("" if taken else f"{exporter.title} does not take {kind} models of this task")
                if taken and not any(b.isChecked() for b in self.format_boxes.values()):
                    box.setChecked(exporter.format == "onnx")

    def chosen(self) -> tuple[list[str], list[str]]:
        """The checked (and enabled) formats and precisions."""
        formats = [n for n, b in self.format_boxes.items() if b.isChecked() and b.isEnabled()]
        precisions = [n for n, b in self.precision_boxes.items() if b.isChecked() and b.isEnabled()]
        return formats, precisions

    def out_dir(self) -> Path:
        """Where the files go: the studio cache, per source model (the engine's own default folder)."""
        assert self.handle is not None, "a model is open"
        return cache_dir() / "format-bench" / self.handle.provenance.sha256[:16]

    # -- the measurement -----------------------------------------------------------------------------
    def start(self) -> Job | None:
        """Measure the checked formats × precisions in a child process; the window stays responsive."""
        formats, precisions = self.chosen()
        session = self.session
        if session is None or self.jobs.busy or not self.controls.isEnabled():
            return None
        if not formats or not precisions:
            self.status.setText("Choose at least one format and one precision.")
            return None
        spec, out, runs, threads = session.spec, self.out_dir(), self.runs.value(), self.threads.value()
        frames, trust, force = session.frames, session.trust, self.force.isChecked()  # the frames chosen now

        def work(ctx) -> dict[str, Any]:
            return format_bench_in_subprocess(spec, formats, precisions, out, runs=runs, threads=threads,
                                              frames=frames, force=force, trust=trust, ctx=ctx)

        self.status.setStyleSheet("")
        self.status.setText(f"Measuring {len(formats) * len(precisions)} file(s)… (files in {out})")
        self.measure.setEnabled(False)
        self.cancel.setEnabled(True)
        self.progress.setValue(0)
        self.progress.show()
        job = self.jobs.start("measure formats", work, done=self._done, error=self._failed,
                              cancelled=self._cancelled, finished=self._idle)
        self.job_started.emit(job)
        return job

    def _show_progress(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(fraction * 1000))
        self.progress.setFormat(f"%p% — {text[:60]}" if text else "%p%")

    def _done(self, report: dict[str, Any]) -> None:
        self.show_report(report)
        ran = len(plotted(report["cells"]))
        self.status.setText(f"Done: {ran} of {len(report['cells'])} file(s) ran here.")

    def _failed(self, message: str) -> None:
        self.status.setStyleSheet("color: #ff453a")
        self.status.setText(f"Measurement failed: {message}")  # the job's one line, with its fix

    def _cancelled(self) -> None:
        kept = "; the previous table is kept" if self.report is not None else ""
        self.status.setText(f"Cancelled: the benchmark was stopped{kept}.")

    def _idle(self) -> None:
        if self.jobs.busy:
            return  # an abandoned measurement ended after a newer one started: that one's controls stay
        self.progress.hide()
        self.cancel.setEnabled(False)
        self.measure.setEnabled(self.controls.isEnabled())

    # -- the results -----------------------------------------------------------------------------------
    def show_report(self, report: dict[str, Any] | None) -> None:
        """Fill the table, the plot and the caption from a format benchmark's report (None: empty them)."""
        self.report = report
        cells = report["cells"] if report else []
        self.table.setRowCount(len(cells))
        for index, cell in enumerate(cells):
            for column, item in enumerate(table_items(cell)):
                self.table.setItem(index, column, item)
        self.table.resizeColumnsToContents()
        self.caption.setText(method_caption(report) if report else "")
        self._plot(cells)
        self._on_selection()

    def _plot(self, cells: list[dict[str, Any]]) -> None:
        for item in self.labels:
            self.plot.removeItem(item)
        self.labels = []
        ran = plotted(cells)
        x = np.array([cells[i]["latency_ms"]["p50"] for i in ran], float)
        y = np.array([cells[i]["fidelity"]["value"] for i in ran], float)
        intervals = [cells[i]["fidelity"].get("interval") or {} for i in ran]
        top = np.array([iv.get("high", v) - v for iv, v in zip(intervals, y, strict=True)], float)
        bottom = np.array([v - iv.get("low", v) for iv, v in zip(intervals, y, strict=True)], float)
        self.error_bars.setData(x=x, y=y, top=top, bottom=bottom)
        if len(ran):  # every file agreeing at 1.000 is common: a flat range would hide the axis' ticks
            low, high = float((y - bottom).min()), float((y + top).max())
            pad = max(high - low, 0.1) * 0.1
            self.plot.setYRange(low - pad, high + pad)
        self.scatter.setData([{"pos": (float(px), float(py)), "data": i, "brush": pg.mkBrush(MARKER)}
                              for i, px, py in zip(ran, x, y, strict=True)])
        for i, px, py in zip(ran, x, y, strict=True):
            text = pg.TextItem(label(cells[i]), color="#d1d1d6", anchor=(0, 1))
            text.setPos(float(px), float(py))
            self.plot.addItem(text)
            self.labels.append(text)

    def markers(self) -> list[Any]:
        """The plot's points, one per cell that ran; each one's ``data()`` is its row."""
        return list(self.scatter.points())

    def current_row(self) -> int | None:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else None

    def _on_point(self, _item, points, *_args) -> None:
        if len(points):
            self.table.selectRow(int(points[0].data()))

    def _on_selection(self) -> None:
        row = self.current_row()
        cells = self.report["cells"] if self.report else []
        for point in self.markers():
            point.setBrush(pg.mkBrush(MARKER_SELECTED if point.data() == row else MARKER))
        cell = cells[row] if row is not None and row < len(cells) else None
        self.preview.setEnabled(cell is not None and cell["status"] == "ok" and bool(cell.get("path")))

    def _preview(self) -> None:
        row = self.current_row()
        if self.report is not None and row is not None:
            cell = self.report["cells"][row]
            if cell["status"] == "ok":
                self.preview_requested.emit(cell["path"], label(cell))
