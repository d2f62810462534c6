"""Variants side by side: a table of what each costs and keeps, and a latency-vs-fidelity Pareto plot."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ui.model_panel import NumberItem

COLUMNS = ["Variant", "Recipe", "Size MB", "Params", "p50 ms", "Speed-up", "Fidelity"]


class VariantsPanel(QWidget):
    selected = Signal(str)
    preview_a = Signal(str)
    preview_b = Signal(str)
    save_recipe = Signal(str)
    load_recipe = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
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
        self.plot = pg.PlotWidget(title="Pareto: latency vs fidelity (marker size: file size)")
        self.plot.setLabel("bottom", "p50 latency (ms)")
        self.plot.setLabel("left", "fidelity")
        self.plot.showGrid(x=True, y=True, alpha=0.2)
        self.scatter = pg.ScatterPlotItem(hoverable=True)
        self.scatter.sigClicked.connect(self._on_point)
        self.plot.addItem(self.scatter)
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
            cells = [QTableWidgetItem(row["key"]), QTableWidgetItem(row["recipe"]),
                     NumberItem(row["size_mb"], f"{row['size_mb']:.1f}"),
                     NumberItem(row["params"], f"{row['params'] / 1e6:.2f} M"),
                     NumberItem(row["p50_ms"] or 0, "–" if row["p50_ms"] is None else f"{row['p50_ms']:.1f}"),
                     NumberItem(row["speedup"] or 0, "–" if row["speedup"] is None else f"{row['speedup']:.2f}×"),
                     NumberItem(fidelity or 0, "–" if fidelity is None else
                                f"{fidelity:.3f} {row['fidelity_metric']}" if row["key"] != "base" else "reference")]
            for column, cell in enumerate(cells):
                self.table.setItem(index, column, cell)
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
