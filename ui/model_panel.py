"""The model panel: what the loaded model is, where it came from, and where its work goes (layers)."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QFormLayout,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from studio.model import ModelHandle, describe_tensor


class NumberItem(QTableWidgetItem):
    """Sorts by its number, not its text."""

    def __init__(self, value: float, text: str):
        super().__init__(text)
        self.setData(Qt.ItemDataRole.UserRole, value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        return float(self.data(Qt.ItemDataRole.UserRole)) < float(other.data(Qt.ItemDataRole.UserRole))


NO_LABELS = {"generate": "none (text in, text out)", "embed": "none (text in, vectors out)"}


class ModelPanel(QWidget):
    FIELDS = ("name", "format", "task", "inputs", "labels", "params", "gflops", "size", "provenance")

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QVBoxLayout(self)
        form = QFormLayout()
        self.values: dict[str, QLabel] = {}
        for name in self.FIELDS:
            label = QLabel("–")
            label.setWordWrap(True)
            label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            label.setObjectName(f"model_{name}")
            self.values[name] = label
            form.addRow(name.capitalize(), label)
        layout.addLayout(form)
        self.form = form
        self.layer_note = QLabel("")
        self.layer_note.setWordWrap(True)
        self.layer_note.setStyleSheet("color: #8e8e93")
        layout.addWidget(self.layer_note)
        self.layers = QTableWidget(0, 4)
        self.layers.setHorizontalHeaderLabels(["Layer", "Type", "Params", "FLOPs %"])
        self.layers.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.layers.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.layers.verticalHeader().setVisible(False)
        self.layers.horizontalHeader().setStretchLastSection(True)
        layout.addWidget(self.layers, 1)

    def add_setting(self, title: str, widget: QWidget) -> None:
        """A per-model setting shown under the model's facts (e.g. its frames for judging)."""
        self.form.addRow(title, widget)

    def show_model(self, handle: ModelHandle) -> None:
        summary = handle.summary()
        image = summary["image_input"]
        inputs = ", ".join(describe_tensor(spec) for spec in summary["inputs"])  # dynamic dims read as ?
        if image:
            inputs += f" · image {image['size'][0]}×{image['size'][1]}" + (" (any size: dynamic)" if image["dynamic"]
                                                                          else "")
        labels = list(handle.labels)
        provenance = summary["provenance"]
        texts = {
            "name": handle.display_name + ("  (RANDOM WEIGHTS)" if handle.random_weights else ""),
            "format": summary["format"], "task": summary["task"], "inputs": inputs,
            "labels": (f"{len(labels)}: " + ", ".join(labels[:12]) + (" …" if len(labels) > 12 else "")
                       if labels else NO_LABELS.get(str(handle.task), "none in the model")),
            "params": "unknown" if handle.params is None else f"{handle.params:,}",
            "gflops": (f"unknown ({handle.gflops_method})" if summary["gflops"] is None
                       else f"{summary['gflops']:.2f} ({handle.gflops_method})"),
            "size": f"{summary['size_mb']:.1f} MB",
            "provenance": " · ".join(str(provenance[k]) for k in ("zoo_name", "path", "loader", "note")
                                     if provenance.get(k)) + f" · sha256 {provenance['sha256'][:12]}…",
        }
        for name, text in texts.items():
            self.values[name].setText(text)
            self.values[name].setToolTip(text)
        if handle.params_method:  # what was counted as a parameter (Constant nodes, quantized weights…)
            self.values["params"].setToolTip(handle.params_method)
        self.layers.setRowCount(0)
        self.layer_note.setText("counting FLOPs per layer…")

    def show_layers(self, table: dict) -> None:
        rows = table["rows"]
        self.layers.setSortingEnabled(False)
        self.layers.setRowCount(len(rows))
        for index, row in enumerate(rows):
            self.layers.setItem(index, 0, QTableWidgetItem(row["name"]))
            self.layers.setItem(index, 1, QTableWidgetItem(row["type"]))
            self.layers.setItem(index, 2, NumberItem(row["params"], f"{row['params']:,}"))
            self.layers.setItem(index, 3, NumberItem(row["flops_share"], f"{100 * row['flops_share']:.2f}"))
        self.layers.setSortingEnabled(True)
        self.layers.resizeColumnsToContents()
        total = table["total_flops"] / 1e9
        rest = table.get("other_flops_share")
        rest_text = f" ({100 * rest:.1f} % in operations without weights)" if rest is not None else ""
        self.layer_note.setText(f"{len(rows)} layers with weights · {total:.2f} GFLOPs{rest_text} · "
                                f"{table['method']}")
