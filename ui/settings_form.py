"""A form built from a plugin's settings dataclass: one widget per field, bounds and help included.

The same schema (``studio.plugin_api.settings_schema``) drives the CLI and recipes, so a value the
form accepts is a value ``settings_from_dict`` accepts.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QWidget,
)
from superqt import QLabeledDoubleSlider

from studio.plugin_api import settings_schema


class PathField(QWidget):
    def __init__(self, value: str | None, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.edit = QLineEdit(value or "")
        self.edit.setPlaceholderText("default (bundled media)")
        browse = QPushButton("…")
        browse.setFixedWidth(28)
        browse.clicked.connect(self._browse)
        layout.addWidget(self.edit, 1)
        layout.addWidget(browse)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file (a video, or any image of a folder)")
        if path:
            self.edit.setText(path)

    def value(self) -> str | None:
        return self.edit.text().strip() or None


class SettingsForm(QWidget):
    def __init__(self, settings_cls: type, parent: QWidget | None = None):
        super().__init__(parent)
        self.schema = settings_schema(settings_cls)
        self.widgets: dict[str, QWidget] = {}
        layout = QFormLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for entry in self.schema:
            widget = self._widget(entry)
            tip = entry["help"] or entry["label"]
            if entry["min"] is not None or entry["max"] is not None:
                tip += f" (range {entry['min']}..{entry['max']})"
            widget.setToolTip(tip)
            widget.setObjectName(entry["name"])
            self.widgets[entry["name"]] = widget
            layout.addRow(entry["label"], widget)

    @staticmethod
    def _widget(entry: dict[str, Any]) -> QWidget:
        kind, default = entry["type"], entry["default"]
        if kind == "bool":
            box = QCheckBox()
            box.setChecked(bool(default))
            return box
        if kind == "choice":
            combo = QComboBox()
            combo.addItems([str(c) for c in entry["choices"]])
            combo.setCurrentText(str(default))
            return combo
        if kind == "int":
            spin = QSpinBox()
            spin.setRange(int(entry["min"]) if entry["min"] is not None else -1_000_000,
                          int(entry["max"]) if entry["max"] is not None else 1_000_000)
            spin.setValue(int(default))
            return spin
        bounded = entry["min"] is not None and entry["max"] is not None
        if kind == "float" and bounded and float(entry["max"]) - float(entry["min"]) <= 10:
            slider = QLabeledDoubleSlider(Qt.Orientation.Horizontal)  # a slider with its value beside it
            slider.setDecimals(3)
            slider.setRange(float(entry["min"]), float(entry["max"]))
            slider.setSingleStep(0.01)
            slider.setValue(float(default))
            return slider
        if kind == "float":
            spin = QDoubleSpinBox()
            low = float(entry["min"]) if entry["min"] is not None else -1e9
            high = float(entry["max"]) if entry["max"] is not None else 1e9
            decimals = 6 if 0 < abs(low) < 1e-3 or 0 < abs(float(default)) < 1e-3 else 3
            spin.setDecimals(decimals)
            spin.setRange(low, high)
            spin.setSingleStep(10 ** -min(decimals, 2) if high - low <= 10 else 1.0)
            spin.setValue(float(default))
            return spin
        if kind == "path":
            return PathField(default)
        edit = QLineEdit(", ".join(map(str, default)) if kind == "list" else str(default or ""))
        if kind == "list":
            edit.setPlaceholderText("comma-separated")
        return edit

    def values(self) -> dict[str, Any]:
        """Only the fields that differ from their defaults (what a recipe step stores)."""
        out: dict[str, Any] = {}
        for entry in self.schema:
            value = self._value(entry, self.widgets[entry["name"]])
            if value != entry["default"]:
                out[entry["name"]] = value
        return out

    @staticmethod
    def _value(entry: dict[str, Any], widget: QWidget) -> Any:
        kind = entry["type"]
        if kind == "bool":
            return widget.isChecked()
        if kind == "choice":
            text = widget.currentText()
            return next((c for c in entry["choices"] if str(c) == text), text)
        if kind == "float":
            return round(float(widget.value()), 6)
        if kind == "int":
            return widget.value()
        if kind == "path":
            return widget.value()
        if kind == "list":
            return [part.strip() for part in widget.text().split(",") if part.strip()]
        return widget.text()

    def set_values(self, values: dict[str, Any]) -> None:
        for entry in self.schema:
            if entry["name"] not in values:
                continue
            widget, value = self.widgets[entry["name"]], values[entry["name"]]
            if entry["type"] == "bool":
                widget.setChecked(bool(value))
            elif entry["type"] == "choice":
                widget.setCurrentText(str(value))
            elif entry["type"] in ("int", "float"):
                widget.setValue(value)
            elif entry["type"] == "path":
                widget.edit.setText(str(value or ""))
            elif entry["type"] == "list":
                widget.setText(", ".join(map(str, value)))
            else:
                widget.setText(str(value))
