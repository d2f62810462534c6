"""The read-only, one-row-at-a-time results table the Variants, Formats and Search tabs share."""

from __future__ import annotations

from PySide6.QtWidgets import QAbstractItemView, QTableWidget


def results_table(columns: list[str] | tuple[str, ...], *, stretch_last: bool = True) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setHorizontalHeaderLabels(list(columns))
    table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    table.verticalHeader().setVisible(False)
    table.horizontalHeader().setStretchLastSection(stretch_last)
    return table
