"""What a user does to the window: drop a file on it, open a model and wait for its preview."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QMessageBox

LOAD_TIMEOUT_MS = 180_000


def drop(window, path: Path) -> None:
    data = QMimeData()
    data.setUrls([QUrl.fromLocalFile(str(path))])
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, data, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)


def open_and_wait(qtbot, window, spec: str) -> None:
    assert window.open_model(spec)
    qtbot.waitUntil(lambda: window.session is not None and window.session.spec == spec and window.preview is not None,
                    timeout=LOAD_TIMEOUT_MS)


def visible_boxes(window, name: str) -> list[QMessageBox]:
    return [w for w in window.findChildren(QMessageBox) if w.objectName() == name and w.isVisible()]
