"""Variants side by side: a table of what each costs and keeps, and a latency-vs-fidelity Pareto plot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.evaluate.evidence import metric_label
from ui.model_panel import NumberItem
from ui.pareto_plot import pareto_plot
from ui.tables import results_table

COLUMNS = ["Variant", "Recipe", "Size MB", "Params", "p50 ms", "Speed-up", "Fidelity", "Evidence"]
THIN = "⚠ thin"


def fidelity_text(row: dict[str, Any]) -> str:
    """'0.740 map50 [0.52–0.88]': the figure with its 95 % bootstrap interval over frames."""
    if row["key"] == "base":
        return "reference"
    if row["fidelity"] is None:
        return "–"
    interval = row.get("fidelity_interval")
    bounds = f" [{interval['low']:.2f}–{interval['high']:.2f}]" if interval else ""
    return f"{row['fidelity']:.3f} {metric_label(row['fidelity_metric'])}{bounds}"


def evidence_text(row: dict[str, Any]) -> str:
    """'26 boxes / 12 frames ⚠ thin' (instances for a task metric): what the fidelity rests on."""
    proof = row.get("fidelity_evidence")
    if not proof:
        return "–"
    unit = next((short for short in ("boxes", "instances") if short in proof["unit"]), proof["unit"])
    count = f"{proof['count']} {unit}" + (f" / {proof['frames']} frames" if unit != "frames" else "")
    return count + (f" {THIN}" if proof["thin"] else "")


def evidence_tooltip(row: dict[str, Any]) -> str:
    proof, interval = row.get("fidelity_evidence") or {}, row.get("fidelity_interval")
    lines = [f"judged on: {row.get('judged_on') or '–'}"]
    if interval:
        lines.append(f"{round(interval['level'] * 100)} % interval {interval['low']}–{interval['high']} "
                     f"({interval['method']})")
    if proof.get("warning"):
        lines.append(proof["warning"])
    return "\n".join(lines)


class VariantsPanel(QWidget):
    selected = Signal(str)
    preview_a = Signal(str)
    preview_b = Signal(str)
    save_recipe = Signal(str)
    load_recipe = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.table = results_table(COLUMNS)
        self.table.itemSelectionChanged.connect(self._on_selection)
        layout.addWidget(self.table, 2)
        buttons = QHBoxLayout()
        for text, handler in (("Preview as A", self.preview_a), ("Preview as B (A/B)", self.preview_b),
                              ("Save recipe…", self.save_recipe)):
            button = QPushButton(text)
            button.clicked.connect(lambda _=False, h=handler: self.current_key() and h.emit(self.current_key()))
            buttons.addWidget(button)
        load = QPushButton("Load recipe…")
        load.clicked.connect(self.load_recipe)
        buttons.addWidget(load)
        layout.addLayout(buttons)
        self.note = QLabel("Latency: onnxruntime, 1 thread, 20 bikes.mp4 frames interleaved with the base model; "
                           "fidelity against the base model on 12 bundled frames (deploy-studio optimize).")
        self.note.setWordWrap(True)
        self.note.setStyleSheet("color: #8e8e93")
        layout.addWidget(self.note)
        self.plot, self.scatter, self.error_bars = pareto_plot("Pareto: latency vs fidelity (marker size: file size)")
        self.scatter.sigClicked.connect(self._on_point)
        layout.addWidget(self.plot, 2)
        self.rows: list[dict[str, Any]] = []

    def current_key(self) -> str | None:
        items = self.table.selectedItems()
        return self.table.item(items[0].row(), 0).text() if items else None

    def set_rows(self, rows: list[dict[str, Any]], select: str | None = None) -> None:
        self.rows = rows
        self.table.setRowCount(len(rows))  # in the order they were made: base first
        for index, row in enumerate(rows):
            fidelity = row["fidelity"]
            evidence = QTableWidgetItem(evidence_text(row))
            evidence.setToolTip(evidence_tooltip(row))
            cells = [QTableWidgetItem(row["key"]), QTableWidgetItem(row["recipe"]),
                     NumberItem(row["size_mb"], f"{row['size_mb']:.1f}"),
                     NumberItem(row["params"], f"{row['params'] / 1e6:.2f} M"),
                     NumberItem(row["p50_ms"] or 0, "–" if row["p50_ms"] is None else f"{row['p50_ms']:.1f}"),
                     NumberItem(row["speedup"] or 0, "–" if row["speedup"] is None else f"{row['speedup']:.2f}×"),
                     NumberItem(fidelity or 0, fidelity_text(row)), evidence]
            cells[6].setToolTip(evidence_tooltip(row))
            for column, cell in enumerate(cells):
                self.table.setItem(index, column, cell)
        judged = next((r["judged_on"] for r in reversed(rows) if r.get("judged_on")), None)
        if judged:
            self.note.setText(f"Latency: onnxruntime, 1 thread, 20 frames interleaved with the base model; fidelity "
                              f"against the base model on {judged}, with its 95 % bootstrap interval over frames "
                              f"(deploy-studio optimize). ⚠ thin: fewer than 50 targets — a hint, not a verdict.")
        self.table.resizeColumnsToContents()
        self._plot_points()
        if select:
            self.select(select)

    def select(self, key: str) -> None:
        for index in range(self.table.rowCount()):
            if self.table.item(index, 0).text() == key:
                self.table.selectRow(index)
                return

    def _plot_points(self) -> None:
        measured = [r for r in self.rows if r["p50_ms"] is not None and r["fidelity"] is not None]
        bounded = [r for r in measured if r.get("fidelity_interval")]
        high = [r["fidelity_interval"]["high"] - r["fidelity"] for r in bounded]
        low = [r["fidelity"] - r["fidelity_interval"]["low"] for r in bounded]
        self.error_bars.setData(x=np.array([r["p50_ms"] for r in bounded], float),
                                y=np.array([r["fidelity"] for r in bounded], float),
                                top=np.array(high, float), bottom=np.array(low, float))
        if not measured:
            self.scatter.setData([])
            return
        sizes = np.array([r["size_mb"] for r in measured], float)
        radius = 8 + 24 * np.sqrt(sizes / max(sizes.max(), 1e-9))
        self.scatter.setData([{"pos": (r["p50_ms"], r["fidelity"]), "size": float(s), "data": r["key"],
                               "brush": pg.mkBrush("#0a84ff" if r["key"] != "base" else "#e5e5ea")}
                              for r, s in zip(measured, radius, strict=True)])

    def _on_selection(self) -> None:
        key = self.current_key()
        if key:
            self.selected.emit(key)

    def _on_point(self, _item, points, *_args) -> None:
        if len(points):
            self.select(points[0].data())
